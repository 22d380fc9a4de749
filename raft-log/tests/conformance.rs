//! The storage conformance suite (shared with `MemStorage`) against the RocksDB store, once
//! with a cache that holds everything and once with no cache, so both read paths are checked.

mod support;

mod cached {
    use super::support::{new_log, test_options};
    raft_core::storage_conformance_tests!(|conf| new_log(
        conf,
        test_options().cache_bytes(1 << 20)
    ));
}

mod uncached {
    use super::support::{new_log, test_options};
    raft_core::storage_conformance_tests!(|conf| new_log(conf, test_options().cache_bytes(0)));
}

mod small_cache {
    use super::support::{new_log, test_options};
    raft_core::storage_conformance_tests!(|conf| new_log(conf, test_options().cache_bytes(300)));
}
