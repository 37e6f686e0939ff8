//! The one integration-test binary: every test runs the real `auth-service` binary (servers on
//! `127.0.0.1` port 0, real HTTP, a real `kong-sim`; tools on real files in temp dirs).

mod analysis_truth;
mod bench;
mod config;
mod contract;
mod hardening;
mod kong_failures;
mod kong_sim;
mod load;
mod profile;
mod profiler_cost;
mod profiling;
mod serve;
mod sla;
mod support;
mod telemetry;
mod tokens;
mod tools;
mod workflows;
