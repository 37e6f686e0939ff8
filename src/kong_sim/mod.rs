//! Kong Admin API simulator (placeholder).
