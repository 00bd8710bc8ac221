-- The revocation feed's epoch: a random value chosen once per database (at the first
-- start after this migration) and written into every feed cursor, so that a cursor of
-- another deployment, or of this one before its database was recreated, is refused.
create table feed_epoch (
    id integer primary key check (id = 1),
    epoch text not null
);
