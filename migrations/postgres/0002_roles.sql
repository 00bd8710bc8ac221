-- Roles and permissions, user-role assignments; revoked token ids in the change feed.
create table roles (
    id text primary key,
    name text not null,
    description text not null default '',
    builtin boolean not null default false,
    created_at bigint not null,
    updated_at bigint not null
);
alter table roles add constraint roles_name_key unique (name);

create table role_permissions (
    role_id text not null references roles (id) on delete cascade,
    permission text not null,
    primary key (role_id, permission)
);

create table user_roles (
    user_id text not null references users (id) on delete cascade,
    role_id text not null references roles (id) on delete cascade,
    assigned_at bigint not null,
    primary key (user_id, role_id)
);
create index user_roles_role on user_roles (role_id);

alter table changes add column jti text;

insert into roles (id, name, description, builtin, created_at, updated_at) values
    ('00000000-0000-4000-8000-000000000001', 'anonymous', 'What a request without a token may do', true, 0, 0),
    ('00000000-0000-4000-8000-000000000002', 'user', 'What every signed-up user may do', true, 0, 0),
    ('00000000-0000-4000-8000-000000000003', 'subscriber', 'May watch films released less than three years ago', false, 0, 0);
insert into role_permissions (role_id, permission) values
    ('00000000-0000-4000-8000-000000000003', 'films:watch_recent');
