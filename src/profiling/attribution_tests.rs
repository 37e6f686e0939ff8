//! Unit tests of `attribution` (kept apart so `attribution.rs` stays readable).
use super::*;

fn check(frames: &[&str], thread: &str, expected: Subsystem) {
    let charge = charge(frames, thread);
    assert_eq!(charge.subsystem, expected, "{frames:?} on {thread}");
}

#[test]
fn frames_name_subsystems_or_are_transparent() {
    let cases: &[(&str, Option<Subsystem>)] = &[
        (
            "auth_service::kong::cache::CredentialCache::get",
            Some(Subsystem::KongLookups),
        ),
        ("ureq::agent::Agent::run", Some(Subsystem::KongLookups)),
        ("lru::LruCache<K,V,S>::attach", Some(Subsystem::KongLookups)),
        (
            "core::core_arch::x86::sha::_mm_sha256rnds2_epu32",
            Some(Subsystem::JwtSigning),
        ),
        (
            "<sha2::core_api::Sha256VarCore as digest::core_api::UpdateCore>::update_blocks",
            Some(Subsystem::JwtSigning),
        ),
        (
            "<&mut serde_json::ser::Serializer<W> as serde::ser::Serializer>::serialize_str",
            Some(Subsystem::Json),
        ),
        (
            "core::ptr::drop_in_place<tiny_http::request::Writer>",
            Some(Subsystem::Http),
        ),
        (
            "<tiny_http::conn::SocketReader as std::io::Read>::read",
            Some(Subsystem::Http),
        ),
        (
            "auth_service::handlers::health::health",
            Some(Subsystem::Handlers),
        ),
        (
            "auth_service::profiling::workload::spin_cpu",
            Some(Subsystem::Profiler),
        ),
        ("log::__private_api::log", Some(Subsystem::Logging)),
        (
            "auth_service::monitor::window::Window::push",
            Some(Subsystem::Telemetry),
        ),
        (
            "<auth_service::profiling::alloc::CountingAlloc as core::alloc::global::GlobalAlloc>::alloc",
            None,
        ),
        ("__libc_send", None),
        ("syscall", None),
        ("malloc", None),
        ("base64::engine::Engine::encode", None),
        ("std::sys::pal::unix::futex::futex_wait", None),
        ("sha2x::f", None),
        ("[unknown]", None),
        (
            "opentelemetry_sdk::trace::span::Span::end",
            Some(Subsystem::Otel),
        ),
        (
            "auth_service::telemetry::trace::Tracing::start_request",
            Some(Subsystem::Otel),
        ),
        // prost runs for pprof and OTLP alike: the frame above decides.
        ("prost::encoding::varint::encode_varint", None),
    ];
    for (function, expected) in cases {
        assert_eq!(classify_frame(function), *expected, "{function}");
    }
}

/// OTLP encoding is export wherever it runs, pprof encoding the profiler's; the SDK's export
/// threads are export all through, their ureq and socket frames included.
#[test]
fn opentelemetry_is_charged_to_its_own_subsystem() {
    let otel_encode = [
        "prost::encoding::varint::encode_varint",
        "<opentelemetry_proto::proto::tonic::common::v1::AnyValue as prost::message::Message>::encoded_len",
        "auth_service::server::adapter::serve",
    ];
    assert_eq!(charge(&otel_encode, "worker-1").subsystem, Subsystem::Otel);
    let pprof_encode = [
        "prost::encoding::varint::encode_varint",
        "auth_service::profiling::pprof_out::cpu_pprof_gz",
    ];
    assert_eq!(
        charge(&pprof_encode, "profiler-session").subsystem,
        Subsystem::Profiler
    );
    let export_send = [
        "__libc_send",
        "ureq::unversioned::transport::tcp::TcpTransport::transmit_output",
        "auth_service::telemetry::transport::UreqClient::send_blocking",
    ];
    let charged = charge(&export_send, "OpenTelemetry.Traces.BatchProcessor");
    assert_eq!(charged.subsystem, Subsystem::Otel);
    assert!(!charged.kong_call);
    assert_eq!(
        charge(&["malloc"], "OpenTelemetry.Metrics.PeriodicReader").subsystem,
        Subsystem::Otel
    );
    // The same ureq frames on a worker are a Kong call.
    assert_eq!(
        charge(&export_send[..2], "worker-1").subsystem,
        Subsystem::KongLookups
    );
}

/// Kernel and libc frames go to the subsystem that called them.
#[test]
fn syscalls_are_charged_to_their_caller() {
    let send_to_kong = [
        "__libc_send",
        "std::sys::net::connection::socket::Socket::send_with_flags",
        "<std::net::tcp::TcpStream as std::io::Write>::write",
        "ureq::unversioned::transport::tcp::TcpTransport::transmit_output",
        "auth_service::kong::client::KongClient::fetch_credential",
        "auth_service::handlers::tokens::issue",
        "auth_service::server::adapter::serve",
    ];
    check(&send_to_kong, "worker-2", Subsystem::KongLookups);
    assert!(charge(&send_to_kong, "worker-2").kong_call);
    let send_response = [
        "__libc_send",
        "<std::net::tcp::TcpStream as std::io::Write>::write",
        "tiny_http::conn::writer::ConnWriter::send",
        "auth_service::server::adapter::serve",
    ];
    check(&send_response, "worker-2", Subsystem::SocketIo);
    let recv_request = [
        "__libc_recv",
        "std::io::default_read_buf",
        "<tiny_http::conn::SocketReader as std::io::Read>::read",
        "tiny_http::conn::serve",
    ];
    check(&recv_request, "http-conn", Subsystem::SocketIo);
    // A futex under the request queue is the kernel side of the hand-off to a worker.
    check(
        &[
            "syscall",
            "std::sys::pal::unix::futex::futex_wait",
            "tiny_http::util::messages_queue::MessagesQueue<T>::pop_timeout",
            "auth_service::server::pool::work",
        ],
        "worker-0",
        Subsystem::HttpKernel,
    );
    // Under Kong the same futex is Kong's (a worker waiting for another's lookup).
    check(
        &[
            "syscall",
            "std::sys::pal::unix::futex::futex_wait",
            "auth_service::kong::Shared::follow",
        ],
        "worker-0",
        Subsystem::KongLookups,
    );
    // malloc inside signing is signing, and counts as allocation.
    let malloc_in_jwt = [
        "_int_malloc",
        "__GI___libc_malloc",
        "<auth_service::profiling::alloc::CountingAlloc as core::alloc::global::GlobalAlloc>::alloc",
        "alloc::raw_vec::RawVec<T,A>::grow_one",
        "auth_service::jwt::Issuer::issue",
    ];
    check(&malloc_in_jwt, "worker-0", Subsystem::JwtSigning);
    assert!(charge(&malloc_in_jwt, "worker-0").allocation);
    check(
        &[
            "core::core_arch::x86::sha::_mm_sha256rnds2_epu32",
            "[unknown]",
        ],
        "worker-0",
        Subsystem::JwtSigning,
    );
}

#[test]
fn stacks_naming_nothing_go_by_thread_then_to_other() {
    let thread_start = [
        "__GI___mmap64",
        "std::sys::pal::unix::stack_overflow::imp::make_handler",
        "<std::sys::pal::unix::stack_overflow::Handler>::new",
        "std::sys::thread::unix::Thread::new::thread_start",
        "start_thread",
    ];
    let on_worker = charge(&thread_start, "worker-3");
    assert_eq!(on_worker.subsystem, Subsystem::KongLookups);
    assert!(on_worker.kong_call && on_worker.decided_by.is_none());
    // A connection thread being created: the kernel side of serving.
    check(&thread_start, "http-accept", Subsystem::HttpKernel);
    check(&thread_start, "main", Subsystem::Other);
    // Socket calls with no naming frame on a connection thread are still inherent I/O.
    check(
        &["__libc_recv", "[unknown]"],
        "http-conn",
        Subsystem::SocketIo,
    );
    check(&[], "", Subsystem::Other);
}

#[test]
fn memcpy_is_allocation_only_inside_the_allocator() {
    assert!(leaf_in_allocator(&[
        "__memcpy_avx_unaligned_erms",
        "realloc"
    ]));
    assert!(!leaf_in_allocator(&[
        "__memcpy_avx_unaligned_erms",
        "core::ptr::copy_nonoverlapping",
        "realloc",
    ]));
    assert!(leaf_in_allocator(&["tcache_get", "malloc"]));
    assert!(!leaf_in_allocator(&["auth_service::jwt::sign"]));
}

#[test]
fn lock_contention_is_a_contended_lock_not_a_condvar_wait() {
    let contended = [
        "syscall",
        "std::sys::pal::unix::futex::futex_wait",
        "std::sys::sync::mutex::futex::Mutex::lock_contended",
        "auth_service::kong::cache::CredentialCache::get",
    ];
    let c = charge(&contended, "worker-1");
    assert!(c.lock_contention);
    assert_eq!(c.subsystem, Subsystem::KongLookups);
    assert!(!c.kong_call, "cache work, not a call to Kong");
    assert!(
        !charge(
            &[
                "syscall",
                "<std::sys::sync::condvar::futex::Condvar>::wait_optional_timeout",
                "auth_service::server::pool::work",
            ],
            "worker-1"
        )
        .lock_contention
    );
}

#[test]
fn shares_sum_to_all_samples() {
    let kong: &[&str] = &[
        "__libc_recv",
        "ureq::run",
        "auth_service::kong::client::get",
    ];
    let jwt: &[&str] = &["core::core_arch::x86::sha::_mm_sha256msg1_epu32"];
    let socket: &[&str] = &["__libc_send", "tiny_http::conn::writer::ConnWriter::send"];
    let http: &[&str] = &["tiny_http::conn::head::read"];
    let other: &[&str] = &["internal_signal_restore_set"];
    let stacks = vec![
        (kong, "worker-0", 40),
        (jwt, "worker-1", 25),
        (socket, "worker-1", 20),
        (http, "http-conn", 10),
        (other, "main", 5),
    ];
    let attribution = attribute(stacks);
    assert_eq!(attribution.samples, 100);
    let sum: u64 = attribution.shares.iter().map(|s| s.samples).sum();
    assert_eq!(sum, 100);
    let get = |s| attribution.share(s).samples;
    assert_eq!(get(Subsystem::KongLookups), 40);
    assert_eq!(get(Subsystem::JwtSigning), 25);
    assert_eq!(get(Subsystem::SocketIo), 20);
    assert_eq!(get(Subsystem::Http), 10);
    assert_eq!(get(Subsystem::Other), 5);
    assert_eq!(attribution.kong_calls, 40);
    assert_eq!(
        attribution.share(Subsystem::KongLookups).deciders[0],
        ("ureq::run".to_owned(), 40)
    );
    assert_eq!(
        attribution.other_stacks,
        [("internal_signal_restore_set (thread main)".to_owned(), 5)]
    );
    for subsystem in Subsystem::ALL {
        assert_eq!(Subsystem::from_key(subsystem.key()), Some(subsystem));
    }
}
