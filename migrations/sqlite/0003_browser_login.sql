-- Browser login (OIDC authorization code flow): session families, browser sessions,
-- remembered consents; cinema-web may use the authorization code flow.
alter table sessions add column parent_sid text;
create index sessions_parent on sessions (parent_sid);

create table browser_sessions (
    id text primary key,
    data text not null,
    expires_at integer not null
);
create index browser_sessions_expiry on browser_sessions (expires_at);

create table consents (
    user_id text not null references users (id) on delete cascade,
    client_id text not null references clients (client_id) on delete cascade,
    scope text not null,
    granted_at integer not null,
    primary key (user_id, client_id)
);

update clients set grant_types = 'password refresh_token authorization_code'
where client_id = 'cinema-web';
