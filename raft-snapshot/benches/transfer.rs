//! Snapshot transfer throughput over QUIC (placeholder; filled in below).
fn main() {}
