//! `raft-net-quic`: the peer transport for Raft messages on QUIC (quinn + rustls).
//!
//! One connection per peer, authenticated both ways by certificates from the cluster CA,
//! with a stream per traffic class (control, replication, client forwarding, snapshots) so a
//! heartbeat never waits behind bulk data. Frames are length-prefixed messages encoded with
//! [`raft_core::wire`].
//!
//! Status: placeholder; the implementation lands with the transport issue.
