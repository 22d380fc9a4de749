//! `raft-snapshot`: streams a snapshot (a manifest plus its files) in checksummed chunks over
//! any byte stream, resumes a broken transfer from the last verified offset and installs the
//! result atomically.
//!
//! Status: placeholder; the implementation lands with the snapshot issue.
