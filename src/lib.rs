//! auth-service: issues and validates short-lived JWTs for Kong consumers, and profiles itself.
//!
//! # Bird's-eye view
//!
//! Kong authenticates a caller and forwards `X-Consumer-ID` / `X-Consumer-Username`. `/tokens`
//! looks up that consumer's JWT credential in the Kong Admin API (through a cache, a circuit
//! breaker and single-flight), signs an HS256 JWT that Kong's jwt plugin accepts, and
//! `/tokens/validate` checks one. Around that sit health, Prometheus metrics, an in-process
//! CPU and heap profiler, and offline tools that analyze, compare, archive and clean up the
//! profiles it writes. One binary, `auth-service`, with one subcommand per job (`src/cmd/`).
//!
//! # Code map
//!
//! **Connections** (`src/vendor/tiny_http`, our fork): one thread per connection reads its
//! socket with a deadline on every wait (head, body, keep-alive idle), checks the framing
//! strictly, and queues one request at a time; health, metrics and debug requests go to an
//! urgent lane. Workers send responses without ever blocking (a slow client's rest goes to
//! one flusher thread with a write deadline). `server` raises the fd limit, derives the
//! connection cap and passes the limits (`config::ConnectionConfig`).
//!
//! **Request path** (`serve`): `server` binds tiny_http and runs a fixed pool of worker
//! threads (`server::pool`) plus two `ops` threads for the urgent lane. Of the workers only
//! as many as cores take requests at a time
//! (`blocking::Turns`); a worker about to wait on Kong hands its turn to a reserve worker
//! (`blocking::section`). Each worker takes a request off tiny_http's queue and hands it to
//! `server::adapter`, which turns it into our `http::Request`, calls `http::router::route`
//! inside `catch_unwind`, and writes our `http::Response` back with the request id and CORS
//! headers. The router is one `match`; handlers live in `handlers/` (`tokens`, `health`,
//! `metrics`, `openapi`, `debug`). `/tokens` asks `kong::CredentialStore` for the consumer's
//! credential (`kong::cache` → single-flight → `kong::breaker` → `kong::client`, one
//! `ureq::Agent`) and signs with `jwt::Issuer`. An expired entry is served stale while its
//! refresh is in flight, and at most `KONG_MAX_WAITING_WORKERS` workers wait on Kong at once
//! (beyond: stale, or 503 at once). Errors become problem+json in `http::problem`.
//!
//! **Kong side threads** (`kong`): the store owns two `kong-refresh` threads, fed by a bounded
//! channel that a request `try_send`s to once per entry when the entry nears the end of its
//! fresh TTL (refresh-ahead), and one `kong-health` thread that probes Kong at start-up and
//! when a health request finds the last result older than `HEALTH_KONG_CACHE_MS`. Health
//! handlers only read that result. The threads end when the store (in `App`) is dropped.
//!
//! **Side path** (`monitor`): as a response is handed to the socket the adapter records it in
//! `metrics` (fixed arrays of atomics: service time, queue wait) and offers one `Copy` sample
//! (route, latency from the request's first byte being read to the response, so queueing
//! counts, and status) with `try_send` on a bounded channel.
//! One monitor thread owns the receiver and the rolling window per route, computes
//! nearest-rank p95/p99 every tick, publishes a snapshot for `/health` and `/metrics`, and
//! starts guarded automatic profiles (throttle, busy, storage quota, overhead, shutdown)
//! through `profiling::Profiler`.
//!
//! **Telemetry** (`telemetry`): with `TELEMETRY_MODE=otlp|both` the adapter starts a
//! server span per request (continuing the caller's `traceparent`) and keeps its context in a
//! worker thread-local for the duration of the request, where `kong::client` finds the parent
//! of the client span it opens per Kong call (and sends `traceparent` to Kong) and the Kong
//! store and `http::problem` add cache, breaker and error-code notes. Ended spans go to the
//! SDK's batch processor through a bounded, counting gate; metrics are asynchronous instruments
//! reading `metrics`' atomics. Both export on the SDK's own two threads through a blocking
//! `ureq` client (no async runtime); those threads run at nice 19, so under CPU saturation they
//! fall behind and drop spans (counted) rather than take CPU from requests, and after a failed
//! export batches are dropped unencoded for a 1-30 s backoff. In console mode (the default)
//! nothing is built and a request pays one branch.
//!
//! **Profiling**: `profiling` owns the one CPU sampler (SIGPROF) and the sampling state of our
//! global allocator (`profiling::alloc::CountingAlloc`, installed in `main.rs`), and writes
//! Markdown, pprof and flamegraph artifacts atomically. `/debug/*`, the exit profile of
//! `serve --cpu-prof*`/`--heap-prof*` and the SLA monitor all go through `App::profiler`.
//!
//! **Tools**: `tools` (analyze, compare, archive, cleanup) read and write the `profiles/`
//! tree only. `tools::storage` owns that tree (`sets`: which files are one run; `archive`,
//! with the flat baseline names; `cleanup`, which deletes whole sets), and `tools::digest`
//! renders the 100-column terminal summary of a run. `cmd::profiled` is what `profile` and
//! `load --profile` share after a run: the metadata rows (per-route p95/p99, throughput
//! variation), `analysis.md`/`.json` beside the profiles, the summary. `loadgen` is the
//! keep-alive load engine behind `load` and `profile` (one thread and one connection per
//! virtual user, pre-rendered requests); `kong_sim` is a faithful Kong
//! Admin API simulator for tests, demos and load; `bench` measures the service as child
//! processes with wrk or `loadgen`, in alternating A/B windows.
//!
//! **Cross-cutting**: `config` reads every environment variable, `.env` entry and flag once
//! and validates it (exit 2 on a bad value); `logging` sets up env_logger and states the log
//! policy; `ids` makes UUIDs and Kong-style keys from batched OS randomness; `timefmt` formats
//! ISO-8601 without a date crate; `process` reads RSS, CPU time and the kernel's fd and thread
//! limits.
//!
//! # Architecture invariants
//!
//! - tiny_http request and response types appear only in `server/adapter.rs` (and in the
//!   simulator, which is its own server); handlers never see them.
//! - `std::env` is read only in `config/env.rs` (and `logging.rs` for `RUST_LOG`).
//! - The cache mutex is never held across a Kong call; concurrent misses for one consumer make
//!   one Kong call. Infrastructure failures never become AUTH_002. Only a consumer with no
//!   cache entry (or the one request leading an expired entry's refresh) waits on Kong, at
//!   most `KONG_MAX_WAITING_WORKERS` workers at once; health checks never call Kong.
//! - A worker never reads a client socket or waits on one; every socket wait of the
//!   connection layer has a deadline, and open connections are capped.
//! - A request never blocks on the side path: samples are `try_send`, dropped when full; an
//!   ended span is dropped (and counted) when the export queue is full, and no request waits
//!   on a collector.
//! - Exactly one owner of the CPU sampler: `profiling::Profiler`.
//! - `tools` never imports `server`, `handlers` or `kong`; `cleanup` and `archive` refuse paths
//!   outside the profiles directory.
//! - `jwt`, `kong::breaker`, `kong::cache` and the router read no clock: time is passed in.
//! - No global mutable state besides env_logger's logger, the CPU sampler's signal-handler
//!   tables and the allocator's counters (all three imposed by their mechanisms), and the
//!   per-thread current trace context of `telemetry::trace`, set and cleared by the adapter
//!   around one request.
//!
//! # Shutdown order
//!
//! SIGTERM/SIGINT (signal-hook, on the main thread): readiness turns 503 and responses close
//! their connections; workers answer what is queued until it is quiet or
//! `SHUTDOWN_GRACE_SECONDS` runs out and are joined; the listener closes; telemetry
//! is flushed and stopped (`Telemetry::shutdown`, joining its export threads); the `App` is
//! dropped, which ends the Kong store's side threads (one inside a Kong call is not waited for
//! past 250 ms) and lets the SLA monitor see its channel disconnect; the monitor drains it and
//! finishes an automatic session; the exit profile is written; exit 0.

pub mod app;
pub mod bench;
pub mod blocking;
pub mod cmd;
pub mod config;
pub mod handlers;
pub mod http;
pub mod ids;
pub mod jwt;
pub mod kong;
pub mod kong_sim;
pub mod loadgen;
pub mod logging;
pub mod metrics;
pub mod monitor;
pub mod process;
pub mod profiling;
pub mod server;
pub mod telemetry;
pub mod timefmt;
pub mod tools;
