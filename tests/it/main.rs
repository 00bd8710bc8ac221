//! usher's integration tests: one binary. Each behaviour test runs against SQLite +
//! in-process state and, when `USHER_TEST_DATABASE_URL` and `USHER_TEST_REDIS_URL` are
//! set, against PostgreSQL + Redis (see `harness`).

#![allow(
    unreachable_pub,
    reason = "a test binary exports nothing; pub marks the harness API"
)]

mod harness;

mod account;
mod admin_clients;
mod admin_grants;
mod admin_roles;
mod admin_users;
mod authorize;
mod authz_check;
mod browser;
mod browser_sessions;
mod cli;
mod code_flow;
mod discovery;
mod end_session;
mod errors;
mod faults;
mod first_party;
mod introspection;
mod login_race;
mod movie_api;
mod oidc_client;
mod openapi;
mod page_input;
mod page_limits;
mod pages;
mod parked_requests;
mod revocations;
mod sessions;
mod store_conformance;
mod token_password;
mod token_refresh;
mod userinfo;
