-- usher foundation: users, clients, sessions, refresh tokens, login history, change feed.
create table users (
    id text primary key,
    login text not null,
    login_key text not null,
    email text,
    email_key text,
    password_hash text not null,
    superuser boolean not null default false,
    blocked boolean not null default false,
    created_at bigint not null,
    updated_at bigint not null,
    last_login_at bigint
);
alter table users add constraint users_login_key unique (login_key);
alter table users add constraint users_email_key unique (email_key);

create table clients (
    client_id text constraint clients_client_id_key primary key,
    client_name text not null,
    secret_hash text,
    token_endpoint_auth_method text not null,
    grant_types text not null,
    redirect_uris text not null default '[]',
    post_logout_redirect_uris text not null default '[]',
    scope text not null,
    first_party boolean not null default false,
    builtin boolean not null default false,
    created_at bigint not null,
    updated_at bigint not null
);
insert into clients (client_id, client_name, secret_hash, token_endpoint_auth_method, grant_types,
                     scope, first_party, builtin, created_at, updated_at)
values ('cinema-web', 'Cinema web site', null, 'none', 'password refresh_token',
        'openid profile email roles offline_access', true, true, 0, 0);

create table sessions (
    id text primary key,
    user_id text not null references users (id) on delete cascade,
    client_id text not null,
    scope text not null,
    started_at bigint not null,
    last_used_at bigint not null,
    auth_time bigint not null,
    expires_at bigint not null,
    ip text,
    user_agent text,
    ended_at bigint,
    end_reason text
);
create index sessions_user on sessions (user_id, started_at);

create table refresh_tokens (
    token_hash text primary key,
    session_id text not null references sessions (id) on delete cascade,
    client_id text not null,
    created_at bigint not null,
    expires_at bigint not null,
    used_at bigint
);
create index refresh_tokens_session on refresh_tokens (session_id);
create index refresh_tokens_expiry on refresh_tokens (expires_at);

create table login_events (
    id bigint generated always as identity primary key,
    user_id text not null references users (id) on delete cascade,
    at bigint not null,
    ip text,
    user_agent text,
    method text not null,
    outcome text not null
);
create index login_events_user on login_events (user_id, id);

create table changes (
    seq bigint generated always as identity primary key,
    kind text not null,
    sid text,
    sub text,
    at bigint not null
);
create index changes_at on changes (at);
