-- Creation order of sessions: the tie-break of the session list between sessions
-- started in the same second (their ids are random). Filled by the insert statement
-- (`max + 1` under the store's writer lock); existing rows keep their insertion order.
alter table sessions add column seq integer;
update sessions set seq = rowid;
create index sessions_seq on sessions (seq);
