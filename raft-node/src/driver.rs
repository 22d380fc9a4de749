//! The driver task: the one owner of the protocol state.
//!
//! It feeds `raft-core` its inputs (ticks, peer messages, proposals, read requests) and
//! carries out each `Ready`: messages to the transport, writes to the log writer thread
//! (group commit), committed entries to the apply thread. Everything slow runs beside it and
//! reports back as an [`Event`], so a tick or a heartbeat never waits for a disk.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use raft_core::{
    ConfChange, ConfState, EntryKind, LogIndex, Message, MessageBody, NodeId, RawNode, Ready, Role,
    SnapshotMeta, Status,
};
use raft_log::{LogStore, LogWrite};
use raft_net_quic::{Messages, SendError, Transport};
use tokio::sync::{mpsc, oneshot, watch};

use crate::apply::{Applier, Waiter, Waiters};
use crate::command::Outcome;
use crate::error::{NodeError, RequestError};
use crate::snapshot::Snapshots;

/// A request from a client task.
pub(crate) enum Input {
    Propose {
        data: Bytes,
        reply: oneshot::Sender<Result<Outcome, RequestError>>,
        proposed: Instant,
    },
    Read {
        reply: oneshot::Sender<Result<LogIndex, RequestError>>,
    },
    Status {
        reply: oneshot::Sender<Status>,
    },
    Snapshot {
        reply: oneshot::Sender<Result<LogIndex, String>>,
    },
    Transfer {
        to: NodeId,
        reply: oneshot::Sender<Result<(), String>>,
    },
    /// A membership change, answered once applied like a write.
    ConfChange {
        cc: ConfChange,
        reply: oneshot::Sender<Result<Outcome, RequestError>>,
        proposed: Instant,
    },
}

/// A report from a thread or task working beside the driver.
pub(crate) enum Event {
    Persisted {
        number: u64,
        result: Result<(), raft_log::LogError>,
    },
    /// A snapshot and the size of its files, or `None`: nothing newer than the last one.
    SnapshotTaken(Result<Option<(SnapshotMeta, u64)>, String>),
    SnapshotRecorded(Result<SnapshotMeta, String>),
    SnapshotSent {
        peer: NodeId,
        index: LogIndex,
        ok: bool,
    },
    Fatal(String),
}

/// What client tasks see of the node's role, updated on every change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RoleInfo {
    /// This node.
    pub id: NodeId,
    /// Its role.
    pub role: Role,
    /// The leader it knows, or none.
    pub leader: NodeId,
}

pub(crate) struct Driver {
    /// When a message too large to send was last logged (the leader retries it every
    /// heartbeat: logged once a minute, counted every time).
    pub(crate) too_large_logged: Option<Instant>,
    pub(crate) faults: Arc<crate::fault::Faults>,
    pub(crate) raw: RawNode<LogStore>,
    pub(crate) log: LogStore,
    pub(crate) transport: Arc<Transport>,
    pub(crate) snapshots: Snapshots,
    pub(crate) apply: Applier,
    pub(crate) waiters: Waiters,
    /// How far the apply thread got; read whenever the driver runs, not reported per batch
    /// (one wake-up of the driver less per applied batch).
    pub(crate) applied: watch::Receiver<LogIndex>,
    /// The applied index last acknowledged to the core.
    pub(crate) applied_acked: LogIndex,
    pub(crate) events_tx: mpsc::UnboundedSender<Event>,
    pub(crate) events: mpsc::UnboundedReceiver<Event>,
    pub(crate) inputs: mpsc::Receiver<Input>,
    pub(crate) messages: Messages,
    pub(crate) role: watch::Sender<RoleInfo>,
    /// The configuration in effect, for RAFT.INFO.
    pub(crate) members: watch::Sender<ConfState>,
    pub(crate) directory: crate::members::Directory,
    pub(crate) tick: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) shutdown: watch::Receiver<bool>,
    pub(crate) reads: HashMap<u64, (Instant, oneshot::Sender<Result<LogIndex, RequestError>>)>,
    pub(crate) next_read: u64,
    /// A snapshot is being taken (at most one at a time).
    pub(crate) snapshotting: bool,
    /// Whether a periodic snapshot the core suggests is taken.
    pub(crate) snapshot_policy: crate::snapshot::Policy,
    /// Taken but not yet applied as far as the core knows (the apply thread's report may
    /// come after the snapshot thread's).
    pub(crate) snapshot_taken: Option<SnapshotMeta>,
    pub(crate) snapshot_waiters: Vec<oneshot::Sender<Result<LogIndex, String>>>,
    pub(crate) sending: HashSet<NodeId>,
    /// The newest ready whose write is durable, not yet acknowledged to the core.
    pub(crate) persisted: Option<u64>,
    /// The newest ready whose write went to the log writer, and the newest reported durable.
    pub(crate) submitted: u64,
    pub(crate) durable: u64,
    /// The newest ready with nothing to write that came after `submitted`: durable as soon
    /// as `submitted` is.
    pub(crate) empty_after: Option<u64>,
    /// The hard state last handed to the log writer.
    pub(crate) written_hs: raft_core::HardState,
    /// A newer hard state that differs from `written_hs` only in its commit index, not
    /// written yet (see `handle_ready`).
    pub(crate) deferred_hs: Option<raft_core::HardState>,
}

impl Driver {
    /// Runs until shutdown or a fatal failure.
    pub(crate) async fn run(mut self) -> Result<(), NodeError> {
        let mut ticker = tokio::time::interval(self.tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        self.publish_role();
        loop {
            // Wait for anything, then take everything else that is already there: one
            // ready covers the lot, and no source can starve the others.
            let mut proposals = Vec::new();
            let mut woken_by_client = false;
            tokio::select! {
                _ = self.shutdown.changed() => return Ok(()),
                Some(ev) = self.events.recv() => self.on_event(ev)?,
                Some(m) = self.messages.recv() => self.step(m),
                _ = ticker.tick() => self.on_tick(),
                Some(input) = self.inputs.recv() => {
                    self.on_input(input, &mut proposals);
                    woken_by_client = true;
                }
            }
            if woken_by_client && !crate::apply::lock(&self.waiters).is_empty() {
                // Other proposals in flight mean other clients: tokio polls the task a client
                // just woke (us) before any other, so this ready would hold one proposal. Let
                // the clients whose requests are already readable run first, and their
                // proposals share this ready (one log write, one append per follower). A
                // lone client does not pay the extra scheduler turn.
                tokio::task::yield_now().await;
            }
            while let Ok(ev) = self.events.try_recv() {
                self.on_event(ev)?;
            }
            self.ack_applied();
            self.release_persisted()?;
            for _ in 0..1024 {
                match self.messages.try_recv() {
                    Some(m) => self.step(m),
                    None => break,
                }
            }
            for _ in 0..4096 {
                match self.inputs.try_recv() {
                    Ok(i) => self.on_input(i, &mut proposals),
                    Err(_) => break,
                }
            }
            self.propose(proposals);
            loop {
                while self.raw.has_ready() {
                    let rd = self.raw.ready();
                    self.handle_ready(rd).await?;
                }
                // A ready with nothing to write is durable at once when no write is in
                // flight; its answers go now, and they may make another ready.
                if self.persisted.is_none() {
                    break;
                }
                self.release_persisted()?;
            }
        }
    }

    fn ack_applied(&mut self) {
        let applied = *self.applied.borrow();
        if applied > self.applied_acked {
            self.applied_acked = applied;
            if let Err(e) = self.raw.on_applied(applied) {
                tracing::debug!(index = %applied, error = %e, "applied acknowledgement refused");
            }
            self.try_snapshot_taken();
        }
    }

    fn step(&mut self, m: Message) {
        if self.faults.blocks(m.from) {
            return;
        }
        if let MessageBody::InstallSnapshot(s) = &m.body {
            // The leader sends this message only after the snapshot's files were streamed to
            // us and installed in the snapshot store; without them it cannot be acted on.
            if !self.snapshots.has(s.meta.index, s.meta.term) {
                tracing::warn!(from = %m.from, index = %s.meta.index, "InstallSnapshot without its files; dropped");
                return;
            }
        }
        let from = m.from;
        if let Err(e) = self.raw.step(m) {
            tracing::debug!(from = %from, error = %e, "message refused");
            metrics::counter!("raft_messages_refused_total").increment(1);
        }
    }

    fn on_tick(&mut self) {
        self.raw.tick();
        let now = Instant::now();
        let timeout = self.request_timeout;
        self.reads
            .retain(|_, (asked, _)| now.duration_since(*asked) < timeout);
        crate::metrics::record_status(&self.raw.status());
        self.snapshot_policy.record();
    }

    fn on_input(&mut self, input: Input, proposals: &mut Vec<(Bytes, Waiter)>) {
        match input {
            Input::Propose {
                data,
                reply,
                proposed,
            } => proposals.push((
                data,
                Waiter {
                    term: Default::default(),
                    reply,
                    proposed,
                },
            )),
            Input::Read { reply } => {
                let id = self.next_read;
                self.next_read += 1;
                match self
                    .raw
                    .read_index(Bytes::copy_from_slice(&id.to_be_bytes()))
                {
                    Ok(()) => {
                        self.reads.insert(id, (Instant::now(), reply));
                    }
                    Err(raft_core::Error::NotLeader { leader }) => {
                        let _ = reply.send(Err(RequestError::NotLeader { leader }));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "read index refused");
                        let _ = reply.send(Err(RequestError::Dropped));
                    }
                }
            }
            Input::Status { reply } => {
                let _ = reply.send(self.raw.status());
            }
            Input::Snapshot { reply } => {
                self.snapshot_waiters.push(reply);
                self.start_snapshot();
            }
            Input::ConfChange {
                cc,
                reply,
                proposed,
            } => {
                let desc = format!("{:?}", cc.changes);
                match self.raw.propose_conf_change(cc) {
                    Ok((index, term)) => {
                        tracing::info!(node = %self.raft_id(), index = %index, changes = %desc, "membership change proposed");
                        crate::apply::lock(&self.waiters).insert(
                            index,
                            Waiter {
                                term,
                                reply,
                                proposed,
                            },
                        );
                    }
                    Err(raft_core::Error::NotLeader { leader }) => {
                        let _ = reply.send(Err(RequestError::NotLeader { leader }));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(RequestError::Remote(format!("ERR {e}"))));
                    }
                }
            }
            Input::Transfer { to, reply } => {
                let result = self.raw.transfer_leader(to).map_err(|e| e.to_string());
                if result.is_ok() {
                    tracing::info!(node = %self.raft_id(), to = %to, "leadership transfer started");
                }
                let _ = reply.send(result);
            }
        }
    }

    /// Proposes a batch as consecutive entries and registers their waiters with the apply
    /// thread, before any of them can be handed out to apply.
    fn propose(&mut self, proposals: Vec<(Bytes, Waiter)>) {
        if proposals.is_empty() {
            return;
        }
        let n = proposals.len() as u64;
        let (data, waiters): (Vec<_>, Vec<_>) = proposals.into_iter().unzip();
        metrics::counter!("raft_proposals_total").increment(n);
        match self.raw.propose_batch(data) {
            Ok((last, term)) => {
                let first = last.get() + 1 - n;
                let mut registered = crate::apply::lock(&self.waiters);
                for (i, mut w) in waiters.into_iter().enumerate() {
                    w.term = term;
                    registered.insert(LogIndex(first + i as u64), w);
                }
            }
            Err(e) => {
                let err = match e {
                    raft_core::Error::NotLeader { leader } => RequestError::NotLeader { leader },
                    // The leadership is moving to `to`: ask there once it leads.
                    raft_core::Error::TransferInProgress { to } => {
                        RequestError::NotLeader { leader: to }
                    }
                    other => {
                        tracing::warn!(error = %other, "proposal refused");
                        RequestError::Dropped
                    }
                };
                metrics::counter!("raft_proposals_refused_total").increment(n);
                for w in waiters {
                    let _ = w.reply.send(Err(err.clone()));
                }
            }
        }
    }

    fn on_event(&mut self, ev: Event) -> Result<(), NodeError> {
        match ev {
            Event::Persisted { number, result } => {
                if let Err(e) = result {
                    return Err(NodeError::Fatal(format!("log write failed: {e}")));
                }
                // Acknowledged once per drain of the events (`release_persisted`): writes
                // complete in order, and the last one acknowledges all before it.
                self.durable = number;
                let mut upto = number;
                if number == self.submitted {
                    upto = upto.max(self.empty_after.take().unwrap_or(0));
                }
                self.persisted = self.persisted.max(Some(upto));
            }
            Event::SnapshotTaken(Ok(Some((meta, bytes)))) => {
                self.snapshot_policy.snapshot(bytes);
                self.snapshot_taken = Some(meta);
                self.try_snapshot_taken();
            }
            Event::SnapshotTaken(Ok(None)) => {
                self.snapshotting = false;
                self.ack_applied();
                let applied = self.raw.status().applied;
                for w in self.snapshot_waiters.drain(..) {
                    let _ = w.send(Ok(applied));
                }
            }
            Event::SnapshotTaken(Err(e)) | Event::SnapshotRecorded(Err(e)) => {
                tracing::error!(error = %e, "snapshot failed");
                metrics::counter!("raft_snapshots_total", "kind" => "taken", "outcome" => "error")
                    .increment(1);
                self.snapshotting = false;
                for w in self.snapshot_waiters.drain(..) {
                    let _ = w.send(Err(e.clone()));
                }
            }
            Event::SnapshotRecorded(Ok(meta)) => {
                self.snapshotting = false;
                for w in self.snapshot_waiters.drain(..) {
                    let _ = w.send(Ok(meta.index));
                }
            }
            Event::SnapshotSent { peer, index, ok } => {
                self.sending.remove(&peer);
                self.raw.report_snapshot(peer, index, ok);
            }
            Event::Fatal(e) => return Err(NodeError::Fatal(e)),
        }
        Ok(())
    }

    /// Sends the answers that waited for the writes acknowledged since the last call. A
    /// follower whose writer synced several readies at once would answer each of them; the
    /// successful append answers to one leader are cumulative (each says "I hold everything
    /// up to index i"), so only the highest is sent: fewer messages on both sides.
    fn release_persisted(&mut self) -> Result<(), NodeError> {
        let Some(number) = self.persisted.take() else {
            return Ok(());
        };
        let answers = self.raw.on_persisted(number)?;
        let mut highest: HashMap<(NodeId, raft_core::Term), LogIndex> = HashMap::new();
        for m in &answers {
            if let MessageBody::AppendEntriesResponse(r) = &m.body {
                if r.reject.is_none() {
                    let e = highest.entry((m.to, m.term)).or_default();
                    *e = (*e).max(r.index);
                }
            }
        }
        for m in answers {
            if let MessageBody::AppendEntriesResponse(r) = &m.body {
                if r.reject.is_none() {
                    // Send the highest once, then forget it so equal duplicates are dropped.
                    match highest.get(&(m.to, m.term)) {
                        Some(&top) if top == r.index => {
                            highest.remove(&(m.to, m.term));
                        }
                        _ => continue,
                    }
                }
            }
            self.send(m);
        }
        Ok(())
    }

    /// Hands a taken snapshot to the core once the core knows its index is applied, then
    /// records it in the log and compacts.
    fn try_snapshot_taken(&mut self) {
        let Some(meta) = self.snapshot_taken.take() else {
            return;
        };
        if meta.index > self.raw.status().applied {
            self.snapshot_taken = Some(meta);
            return;
        }
        if let Err(e) = self.raw.on_snapshot_taken(meta.clone()) {
            let _ = self
                .events_tx
                .send(Event::SnapshotRecorded(Err(e.to_string())));
            return;
        }
        // The log compacts only up to the commit index it stores; a commit index held back
        // (see `handle_ready`) goes with the record.
        let hs = self.deferred_hs.take();
        if let Some(hs) = hs {
            self.written_hs = hs;
        }
        self.snapshots
            .record_and_compact(self.log.clone(), meta, hs, self.events_tx.clone());
    }

    fn start_snapshot(&mut self) {
        if self.snapshotting {
            return;
        }
        // The snapshot lands at whatever index the apply thread has reached, between the
        // applied index acknowledged here and the last entry handed out. One membership change
        // at most can be pending in that window: with none, the configuration there is the
        // one in effect; with one, wait until it is applied.
        let conf = self.raw.conf_state().clone();
        if self.raw.conf_state_at(self.applied_acked).as_ref() != Some(&conf) {
            tracing::debug!(node = %self.raft_id(), "snapshot postponed: a membership change is not applied yet");
            for w in self.snapshot_waiters.drain(..) {
                let _ = w.send(Err("a membership change is being applied; try again".into()));
            }
            return;
        }
        self.snapshotting = true;
        self.snapshots.take(conf, self.events_tx.clone());
    }

    fn send(&mut self, m: Message) {
        if self.faults.blocks(m.to) {
            if let MessageBody::InstallSnapshot(s) = &m.body {
                // Lost in the cut network: the core tries again later.
                self.raw.report_snapshot(m.to, s.meta.index, false);
            }
            return;
        }
        if let MessageBody::InstallSnapshot(s) = &m.body {
            let peer = m.to;
            if self.sending.insert(peer) {
                let meta = s.meta.clone();
                self.snapshots
                    .send(self.transport.clone(), m, meta, self.events_tx.clone());
            }
            return;
        }
        let to = m.to;
        match self.transport.send(m) {
            Ok(()) => {}
            Err(SendError::Full(_)) => {
                metrics::counter!("raft_send_queue_full_total").increment(1);
                self.raw.report_unreachable(to);
            }
            // Proposals are kept small enough to replicate (`NodeHandle::max_entry_bytes`),
            // so this is a bug, and replication to the peer stops behind the message.
            Err(e @ SendError::TooLarge { .. }) => {
                metrics::counter!("raft_send_too_large_total").increment(1);
                let now = Instant::now();
                if self
                    .too_large_logged
                    .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(60))
                {
                    self.too_large_logged = Some(now);
                    tracing::error!(node = %self.raft_id(), to = %to, error = %e, "message too large to send; replication to this peer is stuck");
                }
            }
            Err(e) => tracing::debug!(to = %to, error = %e, "message not sent"),
        }
    }

    async fn handle_ready(&mut self, rd: Ready) -> Result<(), NodeError> {
        if let Some(ss) = rd.soft_state {
            let st = self.raw.status();
            tracing::info!(node = %st.id, term = %st.term, role = ?ss.role, leader = %ss.leader, "role or leader changed");
            self.publish_role();
            if ss.role != Role::Leader {
                self.sending.clear();
            }
        }
        // New members' addresses travel with the changes that add them: connect before the
        // messages of this ready go out.
        for e in rd
            .entries
            .iter()
            .filter(|e| e.kind == EntryKind::ConfChange)
        {
            if let Ok(cc) = ConfChange::decode(&e.data[..]) {
                if let Some((id, addr)) = self.directory.learn(&cc) {
                    if id != self.raft_id() {
                        tracing::info!(node = %self.raft_id(), member = %id, addr = %addr, "member address learned");
                        self.transport.set_peer(id, addr);
                    }
                }
            }
        }
        if let Some(cs) = &rd.conf_state {
            tracing::info!(node = %self.raft_id(), voters = ?cs.voters, outgoing = ?cs.voters_outgoing, learners = ?cs.learners, "configuration changed");
            let missing = self.directory.missing(cs, self.raft_id());
            if !missing.is_empty() {
                tracing::warn!(node = %self.raft_id(), members = ?missing, "no address for members: list them in --peers");
            }
            self.members.send_replace(cs.clone());
        }
        for m in rd.messages {
            self.send(m);
        }
        if let Some(meta) = &rd.snapshot {
            // The state machine takes the snapshot before the log restarts after it: the
            // other order would leave, after a crash between the two, a log that starts past
            // the state machine with nothing to fill the gap.
            let dir = self
                .snapshots
                .dir_of(meta.index, meta.term)
                .ok_or_else(|| {
                    NodeError::Fatal(format!("snapshot {} is not in the store", meta.index))
                })?;
            let (done, wait) = oneshot::channel();
            self.apply.install(dir, meta.index, meta.term, done);
            match wait.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(NodeError::Kv(e)),
                Err(_) => return Err(NodeError::Fatal("the apply thread stopped".into())),
            }
            tracing::info!(node = %self.raft_id(), index = %meta.index, term = %meta.term, "installed snapshot from the leader");
            self.snapshot_policy
                .snapshot(self.snapshots.bytes_of(meta.index, meta.term));
            metrics::counter!("raft_snapshots_total", "kind" => "installed", "outcome" => "ok")
                .increment(1);
        }
        // Term and vote must be durable before the answers that depend on them; the commit
        // index need not be durable at all (a restarted node learns it again, and starts at
        // least at its applied index). So a ready whose only change is the commit index
        // writes nothing: its commit rides along with the next write that syncs anyway.
        // Otherwise every replicated entry would cost a second fsync for the commit it
        // caused, and the next entry's fsync would queue behind it.
        let must_sync = !rd.entries.is_empty() || rd.snapshot.is_some();
        let mut hs_to_write = None;
        if let Some(hs) = rd.hard_state {
            let commit_only = hs.term == self.written_hs.term && hs.vote == self.written_hs.vote;
            if commit_only && !must_sync {
                self.deferred_hs = Some(hs);
            } else {
                hs_to_write = Some(hs);
            }
        } else if must_sync {
            hs_to_write = self.deferred_hs;
        }
        self.snapshot_policy.appended(&rd.entries);
        let mut write = LogWrite::entries(rd.entries);
        if let Some(hs) = hs_to_write {
            self.written_hs = hs;
            self.deferred_hs = None;
            write = write.with_hard_state(hs);
        }
        if let Some(meta) = rd.snapshot {
            write = write.with_restore(meta);
        }
        let number = rd.number;
        let nothing_to_write = write.is_empty();
        if nothing_to_write {
            // Its answers may go once every earlier write is durable: now, or with the
            // write in flight. Not through the writer: that would cost two thread wake-ups.
            if self.durable == self.submitted {
                self.persisted = self.persisted.max(Some(number));
            } else {
                self.empty_after = Some(number);
            }
        } else {
            self.submitted = number;
            self.empty_after = None;
            let events = self.events_tx.clone();
            self.log.submit(write, move |result| {
                let _ = events.send(Event::Persisted {
                    number,
                    result: result.map(|_| ()),
                });
            });
        }
        if !rd.committed_entries.is_empty() && self.apply.apply(rd.committed_entries).is_err() {
            return Err(NodeError::Fatal("the state machine failed to apply".into()));
        }
        for rs in rd.read_states {
            if let Some((_, reply)) = self.reads.remove(&read_id(&rs.ctx)) {
                let _ = reply.send(Ok(rs.index));
            }
        }
        for ctx in rd.failed_reads {
            if let Some((_, reply)) = self.reads.remove(&read_id(&ctx)) {
                let _ = reply.send(Err(RequestError::Dropped));
            }
        }
        // A periodic one may wait for the log to grow further (the core suggests it again
        // an interval later); one a follower needs may not.
        if rd.snapshot_due.is_some()
            && (self.raw.snapshot_needed() || self.snapshot_policy.worth_taking())
        {
            self.start_snapshot();
        }
        Ok(())
    }

    fn raft_id(&self) -> NodeId {
        self.role.borrow().id
    }

    fn publish_role(&self) {
        let st = self.raw.status();
        self.role.send_replace(RoleInfo {
            id: st.id,
            role: st.role,
            leader: st.leader,
        });
    }
}

fn read_id(ctx: &[u8]) -> u64 {
    ctx.try_into().map(u64::from_be_bytes).unwrap_or(u64::MAX)
}
