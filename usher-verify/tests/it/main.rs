//! usher-verify against a fake usher served on 127.0.0.1 (one test binary, as the
//! server's own `tests/it`). The end-to-end tests against a real usher live in the
//! server's test binary.

mod axum_layers;
mod feed;
mod keys;
mod live;
mod support;
mod tokens;
