//! The one integration-test binary: every test starts the real `auth-service` binary on
//! `127.0.0.1` port 0 and talks real HTTP to it (and to a real `kong-sim`).

mod kong_sim;
mod profiling;
mod sla;
mod support;
mod tokens;
mod tools;
