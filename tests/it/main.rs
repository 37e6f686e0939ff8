//! The one integration-test binary: every test starts the real `auth-service` binary on
//! `127.0.0.1` port 0 and talks real HTTP to it (and to a real `kong-sim`).

mod config;
mod kong_failures;
mod kong_sim;
mod profiling;
mod serve;
mod support;
mod tokens;
mod tools;
