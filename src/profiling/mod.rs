//! In-process CPU and heap profiling (placeholder).

pub mod alloc;
