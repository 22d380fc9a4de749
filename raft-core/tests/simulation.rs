//! Deterministic simulation: 3- and 5-node clusters on a network that drops, duplicates,
//! delays and reorders messages, with partitions, crashes (losing everything not durable)
//! and random client proposals. Half the seeds also ask the leader to hand leadership over to
//! a random node now and then (thesis §3.10). Every step is checked by `support::Checker`
//! (plus, for transfers: a leader refuses proposals exactly while it runs one, and never runs
//! one longer than an election timeout); at the end all faults heal and the cluster must
//! elect a leader and commit within a bounded time.
//!
//! Clients also read (ReadIndex, thesis §6.4) on random nodes. A third of the seeds run
//! without CheckQuorum, a third with it, and a third with it and lease reads (§6.4.1); in all
//! of them every read must be linearizable: the index a `ReadState` carries is at least every
//! commit index any node had reached when the read was requested (any entry up to there may
//! already have been acknowledged to a client).
//!
//! Half the seeds also change the membership while all this goes on (§6, thesis chapter 4):
//! two spare nodes start empty, waiting to join; the leader is asked now and then to add a
//! learner, promote one, demote or remove a voter (the leader itself included), swap voters
//! through a joint configuration (left automatically or explicitly), or leave one — while
//! messages drop and partitions come and go. On top of the checks above: every leader is
//! elected with a configuration whose quorums intersect those of the committed configuration
//! and at most one change ahead of it (no two disjoint majorities), only voters campaign,
//! committed entries are durable on a quorum of the configuration that committed them, and at
//! the end the members of the final configuration hold every acknowledged entry.
//!
//! `SIM_SEEDS=N` runs N seeds (default 4000, split over the 3- and 5-node tests);
//! `SIM_SEED=S` replays one seed.

mod support;

use std::cell::Cell;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use bytes::Bytes;
use raft_core::{
    ConfChange, ConfChangeSingle, ConfChangeTransition, ConfState, Config, Error, LogIndex,
    MemStorage, Message, MessageBody, NodeId, Role, Term,
};
use support::checker::is_quorum;
use support::{Checker, SimNode};

/// SplitMix64: the simulation's only randomness.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
}

#[derive(Clone, Copy)]
struct Faults {
    drop: f64,
    dup: f64,
    /// Message delay is uniform in 1..=max_delay time units (a tick is 10 units).
    max_delay: u64,
}

const CALM: Faults = Faults {
    drop: 0.0,
    dup: 0.0,
    max_delay: 3,
};

enum Event {
    Deliver(Message),
    Persist(NodeId),
    Tick,
    /// Cut the node off from everybody else.
    Isolate(NodeId),
}

const TICK: u64 = 10;
/// The nodes' election timeout T, in ticks.
const ELECTION_TICKS: u32 = 10;

struct Sim {
    rng: Rng,
    nodes: BTreeMap<NodeId, SimNode>,
    checker: Checker,
    now: u64,
    seq: u64,
    events: BinaryHeap<Reverse<(u64, u64)>>,
    payloads: BTreeMap<u64, Event>,
    faults: Faults,
    /// Partition group per node; messages across groups are dropped.
    group: BTreeMap<NodeId, u8>,
    /// Proposals accepted by a leader: (proposer, index, term, data).
    proposals: Vec<(NodeId, LogIndex, Term, Bytes)>,
    next_value: u64,
    /// The committed index last checked for quorum durability.
    commit_checked: u64,
    /// Leadership transfers started: (leader, its term) -> (target, start time).
    transfers: BTreeMap<(NodeId, Term), (NodeId, u64)>,
    /// Transfers whose outcome is not known yet: (target, the old leader's term, start time).
    transfer_watch: Vec<(NodeId, Term, u64)>,
    /// Reads requested and not answered yet: ctx -> the cluster's highest commit index when
    /// the read was requested (the answer's index must be at least that).
    reads: BTreeMap<Bytes, u64>,
    /// Faults are over: the liveness check runs.
    healed: bool,
}

/// Nodes that start empty, waiting to join, in seeds that change the membership.
const SPARES: u64 = 2;

impl Sim {
    /// `n` voters, plus [`SPARES`] nodes waiting to join when `membership`.
    fn new(seed: u64, n: u64, membership: bool) -> Sim {
        let voters = ConfState::new((1..=n).map(NodeId));
        let pool = if membership { n + SPARES } else { n };
        let nodes = (1..=pool)
            .map(|i| {
                let mut c = Config::new(NodeId(i));
                c.seed = seed;
                c.election_ticks = ELECTION_TICKS;
                c.heartbeat_ticks = 2;
                // Vary flow control per seed: one entry per message exposes the most
                // interleavings (e.g. Figure 8: a quorum holding an old entry but not the new
                // leader's no-op).
                c.max_inflight_msgs = [1, 4, 64][(seed % 3) as usize];
                c.max_size_per_msg = [1, 256, 1 << 20][(seed / 3 % 3) as usize];
                // Snapshots and compaction (§7): often, now and then, never. A follower that
                // falls behind the compaction point catches up by snapshot.
                c.snapshot_interval = [10, 40, 0][(seed / 9 % 3) as usize];
                // CheckQuorum off, on, on with lease reads (mixed so that the first seeds,
                // which the heavier tests run, cover all three); the lease with and without a
                // margin for clock drift (the nodes' ticks are in lockstep here, so even no
                // margin must be safe).
                let mode = (seed / 27 + seed) % 3;
                c.check_quorum = mode > 0;
                c.read_lease = mode == 2;
                c.max_clock_drift_ticks = [0, 2][(seed / 81 % 2) as usize];
                // Followers told the commit index at once, or with the next append or tick.
                c.defer_commit_notice = seed / 2 % 2 == 1;
                let conf = if i <= n {
                    voters.clone()
                } else {
                    ConfState::default()
                };
                (NodeId(i), SimNode::new(c, MemStorage::new(conf)))
            })
            .collect();
        let mut checker = Checker::default();
        checker.track_conf(voters);
        let mut s = Sim {
            rng: Rng(seed ^ 0xA5A5_5A5A),
            nodes,
            checker,
            now: 0,
            seq: 0,
            events: BinaryHeap::new(),
            payloads: BTreeMap::new(),
            faults: CALM,
            group: BTreeMap::new(),
            proposals: Vec::new(),
            next_value: 0,
            commit_checked: 0,
            transfers: BTreeMap::new(),
            transfer_watch: Vec::new(),
            reads: BTreeMap::new(),
            healed: false,
        };
        s.schedule(TICK, Event::Tick);
        s
    }

    fn schedule(&mut self, delay: u64, e: Event) {
        self.seq += 1;
        self.events.push(Reverse((self.now + delay, self.seq)));
        self.payloads.insert(self.seq, e);
    }

    /// The caller's side of a snapshot transfer: it reports how the transfer ended.
    fn report_snapshot(&mut self, m: &Message, ok: bool) {
        let MessageBody::InstallSnapshot(s) = &m.body else {
            return;
        };
        if ok {
            bump(&SNAPSHOTS_DELIVERED);
        }
        if let Some(raw) = self.nodes.get_mut(&m.from).and_then(|n| n.raw.as_mut()) {
            raw.report_snapshot(m.to, s.meta.index, ok);
        }
    }

    fn send(&mut self, msgs: Vec<Message>) {
        for m in msgs {
            if self.rng.chance(self.faults.drop) {
                self.report_snapshot(&m, false);
                continue;
            }
            let copies = if self.rng.chance(self.faults.dup) {
                2
            } else {
                1
            };
            for _ in 0..copies {
                let d = 1 + self.rng.below(self.faults.max_delay);
                self.schedule(d, Event::Deliver(m.clone()));
            }
        }
    }

    /// Drains `id`'s effects; new writes become durable after a random delay.
    fn settle(&mut self, id: NodeId) {
        let mut out = Vec::new();
        let n = self.nodes.get_mut(&id).unwrap();
        let before = n.writes.len();
        n.drain(false, &mut self.checker, &mut out);
        let added = n.writes.len().saturating_sub(before);
        let answered: Vec<_> = n.read_states.drain(..).collect();
        let failed = n.failed_reads.len();
        for ctx in n.failed_reads.drain(..) {
            self.reads.remove(&ctx);
        }
        READS_FAILED.with(|c| c.set(c.get() + failed));
        for r in answered {
            bump(&READS_SERVED);
            match self.reads.remove(&r.ctx) {
                Some(floor) if r.index.get() < floor => self.checker.violations.push(format!(
                    "stale read on node {id}: {} answered at index {} but {floor} was \
                     committed when it was requested",
                    String::from_utf8_lossy(&r.ctx),
                    r.index
                )),
                Some(_) => {}
                None => self.checker.violations.push(format!(
                    "node {id} answered read {} that is not pending",
                    String::from_utf8_lossy(&r.ctx)
                )),
            }
        }
        for _ in 0..added {
            let d = self.rng.below(5);
            self.schedule(d, Event::Persist(id));
        }
        self.send(out);
    }

    /// A client asks node `id` for a linearizable read.
    fn read(&mut self, id: NodeId) {
        let n = self.nodes.get_mut(&id).unwrap();
        let Some(raw) = n.raw.as_mut() else { return };
        self.next_value += 1;
        let ctx = Bytes::from(format!("r{}-{}", id, self.next_value));
        let floor = self.checker.max_committed();
        let st = raw.status();
        match raw.read_index(ctx.clone()) {
            Ok(()) => {
                bump(&READS_REQUESTED);
                if st.lease_valid {
                    bump(&READS_ON_LEASE);
                }
                self.reads.insert(ctx, floor);
            }
            Err(Error::NotLeader { .. }) if st.role != Role::Leader => {}
            Err(e) => self
                .checker
                .violations
                .push(format!("node {id}: unexpected read error {e}")),
        }
        self.settle(id);
    }

    fn step_event(&mut self) -> bool {
        let Some(Reverse((at, seq))) = self.events.pop() else {
            return false;
        };
        self.now = at;
        match self.payloads.remove(&seq).unwrap() {
            Event::Tick => {
                let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
                for id in ids {
                    if let Some(raw) = self.nodes.get_mut(&id).unwrap().raw.as_mut() {
                        raw.tick();
                        self.settle(id);
                    }
                }
                self.check_transfers();
                self.schedule(TICK, Event::Tick);
            }
            Event::Deliver(m) => {
                let to = m.to;
                let same_side = self.group.get(&m.from).copied().unwrap_or(0)
                    == self.group.get(&to).copied().unwrap_or(0);
                let n = self.nodes.get_mut(&to).unwrap();
                let delivered = same_side && n.is_up();
                let from = m.from;
                let report = matches!(m.body, MessageBody::InstallSnapshot(_)).then(|| m.clone());
                if delivered {
                    if let Err(e) = n.raw().step(m) {
                        self.checker
                            .violations
                            .push(format!("node {to}: step error {e}"));
                    }
                    self.settle(to);
                }
                if let Some(m) = report {
                    self.report_snapshot(&m, delivered);
                    if self.nodes[&from].is_up() {
                        self.settle(from);
                    }
                }
            }
            // (Not once everything healed for the liveness check.)
            Event::Isolate(id) if !self.healed => {
                self.group.clear();
                self.group.insert(id, 1);
            }
            Event::Isolate(_) => {}
            Event::Persist(id) => {
                let mut out = Vec::new();
                let n = self.nodes.get_mut(&id).unwrap();
                if n.persist_one(&mut self.checker, &mut out) {
                    self.send(out);
                    self.settle(id);
                }
            }
        }
        true
    }

    fn run_for(&mut self, units: u64) -> Result<(), String> {
        let until = self.now + units;
        while self
            .events
            .peek()
            .is_some_and(|Reverse((t, _))| *t <= until)
        {
            self.step_event();
            self.check_commit_durable()?;
            self.checker.ok()?;
        }
        self.now = until;
        Ok(())
    }

    /// Committed means durable on a quorum: whenever the cluster's commit index advances, a
    /// quorum of the configuration the leader counted (both halves of a joint one) holds the
    /// entry at that index with its term in their durable stores.
    fn check_commit_durable(&mut self) -> Result<(), String> {
        let c = self.checker.max_committed();
        if c <= self.commit_checked {
            return Ok(());
        }
        self.commit_checked = c;
        let Some(conf) = self
            .checker
            .commit_confs
            .range(c..)
            .next()
            .map(|(_, cs)| cs.clone())
        else {
            return Err(format!("index {c} committed but no leader committed it"));
        };
        self.checker.commit_confs = self.checker.commit_confs.split_off(&c);
        let term = self.checker.committed_term(c);
        let holders: Vec<NodeId> = self
            .nodes
            .values()
            .filter(|n| term.is_some() && n.durable_term(LogIndex(c)) == term)
            .map(|n| n.id)
            .collect();
        if !is_quorum(&conf, &holders) {
            return Err(format!(
                "index {c} committed but durable only on {holders:?}, not a quorum of {conf:?}"
            ));
        }
        Ok(())
    }

    fn leader(&self) -> Option<NodeId> {
        support::leader_of(&self.nodes)
    }

    /// Every live node that believes it is leader (of any term).
    fn leaders(&self) -> Vec<NodeId> {
        self.nodes
            .values()
            .filter(|n| n.role() == Some(Role::Leader))
            .map(|n| n.id)
            .collect()
    }

    fn propose(&mut self, id: NodeId) {
        let n = self.nodes.get_mut(&id).unwrap();
        let Some(raw) = n.raw.as_mut() else { return };
        self.next_value += 1;
        let data = Bytes::from(format!("v{}-{}", id, self.next_value));
        let st = raw.status();
        match raw.propose(data.clone()) {
            Ok((index, term)) => {
                if st.transferring.is_some() {
                    self.checker
                        .violations
                        .push(format!("node {id} accepted a proposal during a transfer"));
                }
                self.proposals.push((id, index, term, data));
            }
            Err(Error::TransferInProgress { to }) => {
                if st.role != Role::Leader || st.transferring != Some(to) {
                    self.checker.violations.push(format!(
                        "node {id} refused a proposal for a transfer to {to} it does not run: {st:?}"
                    ));
                }
            }
            Err(Error::NotLeader { .. }) if st.role != Role::Leader => {}
            Err(e) => self
                .checker
                .violations
                .push(format!("node {id}: unexpected proposal error {e}")),
        }
        self.settle(id);
    }

    /// Asks the leader (if any) to hand leadership over to a random node (itself included,
    /// which must fail with a typed error).
    fn transfer(&mut self) {
        let Some(l) = self.leader() else { return };
        let to = self.random_node();
        let raw = self.nodes.get_mut(&l).unwrap().raw();
        let before = raw.status();
        let before_conf = raw.conf_state().clone();
        match raw.transfer_leader(to) {
            Ok(()) => {
                // A transfer to the target already running is left alone; otherwise the
                // transfer (re)starts now.
                if before.transferring != Some(to) {
                    bump(&TRANSFERS_STARTED);
                    self.transfers.insert((l, before.term), (to, self.now));
                    self.transfer_watch.push((to, before.term, self.now));
                }
            }
            Err(Error::TransferToSelf) if to == l => {}
            // Only a voter (of the incoming configuration) can take over.
            Err(Error::UnknownPeer(p)) if p == to && !before_conf.voters.contains(&to) => {}
            Err(e) => self
                .checker
                .violations
                .push(format!("leader {l}: transfer to {to} failed: {e}")),
        }
        self.settle(l);
    }

    /// After each tick: no leader runs a transfer it was not asked for, or one older than an
    /// election timeout; and count the transfers whose target became leader.
    fn check_transfers(&mut self) {
        for n in self.nodes.values() {
            let Some(st) = n.raw.as_ref().map(|r| r.status()) else {
                continue;
            };
            let Some(to) = st.transferring else { continue };
            match self.transfers.get(&(st.id, st.term)) {
                Some(&(t, start)) if t == to => {
                    if self.now - start >= u64::from(ELECTION_TICKS) * TICK {
                        self.checker.violations.push(format!(
                            "leader {} still transfers to {to} {} ticks after starting",
                            st.id,
                            (self.now - start) / TICK
                        ));
                    }
                }
                _ => self.checker.violations.push(format!(
                    "leader {} transfers to {to} unasked in term {}",
                    st.id, st.term
                )),
            }
        }
        let now = self.now;
        let nodes = &self.nodes;
        self.transfer_watch.retain(|&(to, term, start)| {
            let won = nodes[&to]
                .raw
                .as_ref()
                .map(|r| r.status())
                .is_some_and(|st| st.role == Role::Leader && st.term > term);
            if won {
                bump(&TRANSFERS_COMPLETED);
            }
            !won && now - start < 2 * u64::from(ELECTION_TICKS) * TICK
        });
    }

    /// Asks the leader (now and then a node that only believes it leads) for a random
    /// membership change: add a learner, promote one, remove or demote a voter (maybe the
    /// leader itself), remove a learner, swap voters through a joint configuration (left
    /// automatically or explicitly), or leave an explicit joint configuration.
    fn change_membership(&mut self) {
        let leaders = self.leaders();
        let Some(l) = (if self.rng.chance(0.9) || leaders.is_empty() {
            self.leader()
        } else {
            Some(leaders[self.rng.below(leaders.len() as u64) as usize])
        }) else {
            return;
        };
        let cs = self.nodes[&l].raw.as_ref().unwrap().conf_state().clone();
        let all: Vec<NodeId> = self.nodes.keys().copied().collect();
        let outsiders: Vec<NodeId> = all.iter().copied().filter(|&id| !cs.contains(id)).collect();
        let kind = self.rng.below(8);
        let leader_goes = self.rng.chance(0.3);
        let explicit = self.rng.chance(0.5);
        let rng = &mut self.rng;
        let mut pick = |from: &[NodeId]| -> Option<NodeId> {
            (!from.is_empty()).then(|| from[rng.below(from.len() as u64) as usize])
        };
        use ConfChangeSingle::*;
        let voters = cs.voters.clone();
        let learners = cs.learners.clone();
        // Keep at least two voters, so that a change can still be observed under faults.
        let shrink = voters.len() > 2;
        let cc = if cs.is_joint() {
            ConfChange::leave_joint()
        } else {
            let change = match kind {
                0 | 1 => pick(&outsiders).map(|id| vec![AddLearner(id)]),
                2 | 3 => pick(&learners).map(|id| vec![AddVoter(id)]),
                4 if shrink => {
                    let id = if leader_goes && voters.contains(&l) {
                        Some(l)
                    } else {
                        pick(&voters)
                    };
                    id.map(|id| vec![RemoveNode(id)])
                }
                5 if shrink => pick(&voters).map(|id| vec![AddLearner(id)]),
                6 => pick(&learners).map(|id| vec![RemoveNode(id)]),
                _ => {
                    let mut newcomers = learners.clone();
                    newcomers.extend(&outsiders);
                    let gone = if leader_goes && voters.contains(&l) {
                        Some(l)
                    } else {
                        pick(&voters)
                    };
                    match (pick(&newcomers), gone) {
                        (Some(add), Some(gone)) => Some(vec![AddVoter(add), RemoveNode(gone)]),
                        _ => None,
                    }
                }
            };
            let Some(change) = change else { return };
            let mut cc = ConfChange::new(change);
            if explicit && kind >= 7 {
                cc = cc.with_transition(ConfChangeTransition::JointExplicit);
            }
            cc
        };
        let raw = self.nodes.get_mut(&l).unwrap().raw();
        let st = raw.status();
        match raw.propose_conf_change(cc.clone()) {
            Ok(_) => {
                bump(&CONF_CHANGES_PROPOSED);
                if cc.changes.contains(&ConfChangeSingle::RemoveNode(l)) {
                    bump(&LEADER_REMOVALS);
                }
                if raw.conf_state().is_joint() {
                    bump(&JOINT_CHANGES);
                }
            }
            Err(Error::ConfChangePending { .. } | Error::InvalidConfChange(_)) => {}
            Err(Error::TransferInProgress { .. }) if st.transferring.is_some() => {}
            Err(Error::NotLeader { .. }) if st.role != Role::Leader => {}
            Err(e) => self
                .checker
                .violations
                .push(format!("leader {l}: conf change {cc:?} failed: {e}")),
        }
        self.settle(l);
    }

    /// The members of the configuration the cluster settled on (after healing): the final
    /// leader's.
    fn members(&self) -> Vec<NodeId> {
        match self.leader() {
            Some(l) => self.nodes[&l].raw.as_ref().unwrap().conf_state().members(),
            None => self.nodes.keys().copied().collect(),
        }
    }

    fn crash(&mut self, id: NodeId) {
        self.nodes.get_mut(&id).unwrap().crash();
        // Its clients' reads are lost with it.
        let prefix = format!("r{id}-");
        self.reads
            .retain(|ctx, _| !ctx.starts_with(prefix.as_bytes()));
    }

    fn restart(&mut self, id: NodeId) {
        let n = self.nodes.get_mut(&id).unwrap();
        if !n.is_up() {
            n.restart(&mut self.checker);
            self.settle(id);
        }
    }

    fn random_node(&mut self) -> NodeId {
        NodeId(1 + self.rng.below(self.nodes.len() as u64))
    }

    fn random_partition(&mut self) {
        let n = self.nodes.len() as u64;
        self.group.clear();
        match self.rng.below(3) {
            0 => {
                // Isolate the leader (or a random node).
                let victim = self.leader().unwrap_or_else(|| self.random_node());
                self.group.insert(victim, 1);
            }
            1 => {
                // A minority on one side.
                for _ in 0..(n - 1) / 2 {
                    let v = self.random_node();
                    self.group.insert(v, 1);
                }
            }
            _ => {
                // Random split into up to three groups.
                for i in 1..=n {
                    let g = self.rng.below(3) as u8;
                    self.group.insert(NodeId(i), g);
                }
            }
        }
    }

    /// Heals everything and checks liveness: a leader emerges and a new proposal commits
    /// everywhere within a bounded time; every acknowledged proposal is in every log.
    fn heal_and_check(&mut self) -> Result<usize, String> {
        self.faults = CALM;
        self.group.clear();
        self.healed = true;
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for &id in &ids {
            self.restart(id);
        }
        // Bounded liveness: within 60 ticks (several election timeouts) a leader is elected
        // and commits a new proposal, plus time for the backlog ahead of it: with the slowest
        // flow control here (one entry per message, one message in flight) that is about one
        // round trip, well under a tick, per entry.
        let mut deadline = self.now + 60 * TICK;
        let mut marker: Option<(LogIndex, Term)> = None;
        let mut committed = false;
        while self.now < deadline && !committed {
            self.run_for(TICK)?;
            // (Re)propose whenever the leader that accepted the marker is no longer leader:
            // liveness is promised only for proposals of a leader that stays leader.
            let leader = self.leader();
            let current = leader.map(|l| self.nodes[&l].raw.as_ref().unwrap().status().term);
            if let (Some(l), Some(term)) = (leader, current)
                && marker.is_none_or(|(_, t)| t != term)
            {
                let n = self.nodes.get_mut(&l).unwrap();
                if let Ok(m) = n.raw().propose(Bytes::from_static(b"final")) {
                    marker = Some(m);
                    let st = n.raw().status();
                    deadline = deadline
                        .max(self.now + 60 * TICK + (st.last_index.get() - st.commit.get()) * TICK);
                }
                self.settle(l);
            }
            committed = marker.is_some_and(|m| self.checker_has(m));
        }
        if !committed {
            return Err(format!(
                "liveness: no new proposal committed in time after healing (leader {:?}, marker {:?})\n{}",
                self.leader(),
                marker,
                self.dump()
            ));
        }
        // Then every member catches up (slow flow-control settings need time, not a fix).
        let (i, t) = marker.unwrap();
        let deadline = self.now + 2000 * TICK;
        while self.now < deadline {
            self.run_for(TICK)?;
            // (A leader elected while its removal was not known committed commits it and
            // steps down: wait for a leader that is a voter.)
            let members = self.members();
            let voter_leads = self.leader().is_some_and(|l| {
                let raw = self.nodes[&l].raw.as_ref().unwrap();
                raw.conf_state().is_voter(l)
            });
            let done = voter_leads
                && members.iter().all(|id| {
                    self.nodes[id]
                        .applied
                        .get(i.get() as usize - 1)
                        .is_some_and(|e| e.term == t && &e.data[..] == b"final")
                });
            if done {
                return self.check_acknowledged();
            }
        }
        Err(format!(
            "followers did not catch up within 2000 ticks\n{}",
            self.dump()
        ))
    }

    /// Whether some node applied the entry `(index, term)` (it is committed).
    fn checker_has(&self, (i, t): (LogIndex, Term)) -> bool {
        self.checker
            .applied_entry(i)
            .is_some_and(|(t2, _)| *t2 == t)
    }

    fn dump(&self) -> String {
        let mut out = String::new();
        for n in self.nodes.values() {
            match n.raw.as_ref() {
                None => out.push_str(&format!("node {}: down\n", n.id)),
                Some(r) => {
                    let s = r.status();
                    let cs = r.conf_state();
                    out.push_str(&format!(
                        "node {}: {:?} term {} leader {} commit {} applied {} durable {} last {} writes {} peers {:?} conf {:?}&&{:?} learners {:?}/{:?}{}\n",
                        s.id, s.role, s.term, s.leader, s.commit, s.applied, s.durable, s.last_index,
                        n.writes.len(), s.peers, cs.voters, cs.voters_outgoing, cs.learners,
                        cs.learners_next, if cs.auto_leave { " autoleave" } else { "" }
                    ));
                }
            }
        }
        out
    }

    /// Every proposal a client saw committed (applied on its proposer at the promised index
    /// and term) is in every member's final log.
    fn check_acknowledged(&self) -> Result<usize, String> {
        let members = self.members();
        let mut acked = 0;
        for (_, index, term, data) in &self.proposals {
            let Some((t, d)) = self.checker.applied_entry(*index) else {
                continue;
            };
            if t != term || d != data {
                continue;
            }
            acked += 1;
            for n in members.iter().map(|id| &self.nodes[id]) {
                let e = n.applied.get(index.get() as usize - 1);
                if e.is_none_or(|e| e.term != *term || e.data != *data) {
                    return Err(format!(
                        "acknowledged entry {index} (term {term}) missing on node {}",
                        n.id
                    ));
                }
            }
        }
        Ok(acked)
    }
}

/// One randomized run: faults for a while, then heal and check.
fn run_seed(seed: u64, nodes: u64) -> Result<usize, String> {
    // Seeds 0-3 (mod 8) change the membership, 4-7 do not.
    let membership = seed % 8 < 4;
    let mut s = Sim::new(seed, nodes, membership);
    // Seeds 0, 1 (mod 4) ask for leadership transfers; 2, 3 do not (the 3- and 5-node tests
    // take one parity each).
    let transfers = seed % 4 < 2;
    let mut down = 0usize;
    for _round in 0..400 {
        // Change the weather now and then.
        if s.rng.chance(0.1) {
            s.faults = Faults {
                drop: [0.0, 0.05, 0.2][s.rng.below(3) as usize],
                dup: [0.0, 0.05][s.rng.below(2) as usize],
                max_delay: [3, 10, 40][s.rng.below(3) as usize],
            };
        }
        match s.rng.below(20) {
            0 => s.random_partition(),
            1 | 2 => s.group.clear(),
            3 => {
                let v = s.random_node();
                if s.nodes[&v].is_up() && down < (nodes as usize - 1) / 2 + 1 {
                    s.crash(v);
                    down += 1;
                }
            }
            4 | 5 => {
                let v = s.random_node();
                if !s.nodes[&v].is_up() {
                    s.restart(v);
                    down -= 1;
                }
            }
            6 => {
                // Crash the leader.
                if let Some(l) = s.leader() {
                    s.crash(l);
                    down += 1;
                }
            }
            7 if transfers => {
                let old = s.leader();
                s.transfer();
                // Now and then the old leader is cut off right after: the target may win
                // with votes that ignore the old leader's lease while the old leader, unaware,
                // still believes it leads (the raft-rs lease-during-transfer hazard).
                // (Later, so that the TimeoutNow already sent gets through.)
                if let Some(l) = old
                    && s.rng.chance(0.3)
                {
                    let d = 1 + s.rng.below(2 * TICK);
                    s.schedule(d, Event::Isolate(l));
                }
            }
            11 | 12 if membership => s.change_membership(),
            8..=10 => {
                // Every node that believes it leads gets a read (a deposed leader that does
                // not know yet is where a stale read would come from), and a random node.
                for id in s.leaders() {
                    s.read(id);
                }
                let v = s.random_node();
                s.read(v);
            }
            _ => {
                for _ in 0..s.rng.below(4) {
                    let target = if s.rng.chance(0.8) { s.leader() } else { None };
                    let target = target.unwrap_or_else(|| s.random_node());
                    s.propose(target);
                }
            }
        }
        let dt = 1 + s.rng.below(3 * TICK);
        s.run_for(dt)?;
    }
    let acked = s.heal_and_check()?;
    s.checker.committed_conf();
    CONF_CHANGES_COMMITTED.with(|c| c.set(c.get() + s.checker.conf_changes_committed));
    if std::env::var("SIM_VERBOSE").is_ok() {
        let st = s.nodes[&NodeId(1)].raw.as_ref().unwrap().status();
        println!(
            "seed {seed}: time {} events {} proposals {} committed {} term {} restarts {}",
            s.now,
            s.seq,
            s.proposals.len(),
            s.checker.max_committed(),
            st.term,
            s.nodes.values().map(|n| n.restarts).sum::<u32>()
        );
    }
    s.checker.ok()?;
    Ok(acked)
}

fn seeds(default_total: u64, parity: u64) -> Vec<u64> {
    if let Ok(s) = std::env::var("SIM_SEED") {
        let s: u64 = s.parse().expect("SIM_SEED is a number");
        return if s % 2 == parity { vec![s] } else { vec![] };
    }
    let total: u64 = std::env::var("SIM_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_total);
    (0..total).filter(|s| s % 2 == parity).collect()
}

/// Runs `f` for each seed (catching panics), returns the acknowledged proposals checked, and
/// on failure panics with the seed and the command that replays it.
fn run_each(
    test: &str,
    seeds: &[u64],
    f: impl Fn(u64) -> Result<usize, String> + std::panic::RefUnwindSafe,
) -> usize {
    let mut acked = 0;
    for &seed in seeds {
        let failure = match std::panic::catch_unwind(|| f(seed)) {
            Ok(Ok(n)) => {
                acked += n;
                continue;
            }
            Ok(Err(e)) => e,
            Err(p) => p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default(),
        };
        panic!(
            "{test} seed {seed} failed:\n{failure}\n\
             replay: SIM_SEED={seed} cargo test -p raft-core --test simulation {test} -- --nocapture"
        );
    }
    acked
}

// Counters of what the runs exercised, per test thread: each test runs its seeds on one
// thread, so the figures of tests running in parallel do not mix.
thread_local! {
    /// InstallSnapshot messages delivered (the runs must exercise §7).
    static SNAPSHOTS_DELIVERED: Cell<usize> = const { Cell::new(0) };
    /// Leadership transfers started, and those whose target then became leader.
    static TRANSFERS_STARTED: Cell<usize> = const { Cell::new(0) };
    static TRANSFERS_COMPLETED: Cell<usize> = const { Cell::new(0) };
    /// Reads requested, of which on a leader holding a lease, answered, failed.
    static READS_REQUESTED: Cell<usize> = const { Cell::new(0) };
    static READS_ON_LEASE: Cell<usize> = const { Cell::new(0) };
    static READS_SERVED: Cell<usize> = const { Cell::new(0) };
    static READS_FAILED: Cell<usize> = const { Cell::new(0) };
    /// Membership changes proposed (accepted by a leader), of which joint ones and ones that
    /// removed the leader itself; configuration changes committed.
    static CONF_CHANGES_PROPOSED: Cell<usize> = const { Cell::new(0) };
    static JOINT_CHANGES: Cell<usize> = const { Cell::new(0) };
    static LEADER_REMOVALS: Cell<usize> = const { Cell::new(0) };
    static CONF_CHANGES_COMMITTED: Cell<usize> = const { Cell::new(0) };
}

fn bump(counter: &'static std::thread::LocalKey<Cell<usize>>) {
    counter.with(|c| c.set(c.get() + 1));
}

fn read_counts() -> [usize; 4] {
    [
        READS_REQUESTED.with(Cell::get),
        READS_ON_LEASE.with(Cell::get),
        READS_SERVED.with(Cell::get),
        READS_FAILED.with(Cell::get),
    ]
}

fn membership_counts() -> [usize; 4] {
    [
        CONF_CHANGES_PROPOSED.with(Cell::get),
        JOINT_CHANGES.with(Cell::get),
        LEADER_REMOVALS.with(Cell::get),
        CONF_CHANGES_COMMITTED.with(Cell::get),
    ]
}

fn run_seeds(test: &str, parity: u64, nodes: u64) {
    let seeds = seeds(4000, parity);
    let before = SNAPSHOTS_DELIVERED.with(Cell::get);
    let conf0 = membership_counts();
    let (started0, completed0) = (
        TRANSFERS_STARTED.with(Cell::get),
        TRANSFERS_COMPLETED.with(Cell::get),
    );
    let reads0 = read_counts();
    let acked = run_each(test, &seeds, |seed| run_seed(seed, nodes));
    let snapshots = SNAPSHOTS_DELIVERED.with(Cell::get) - before;
    let started = TRANSFERS_STARTED.with(Cell::get) - started0;
    let completed = TRANSFERS_COMPLETED.with(Cell::get) - completed0;
    let reads = read_counts();
    let [requested, on_lease, served, failed] = std::array::from_fn(|i| reads[i] - reads0[i]);
    let conf = membership_counts();
    let [proposed, joint, leader_removals, committed] = std::array::from_fn(|i| conf[i] - conf0[i]);
    let count = seeds.len();
    // The runs must do real work: clients see most proposals committed, and followers that
    // fell behind a compaction catch up by snapshot.
    assert!(
        count == 0 || acked >= count,
        "only {acked} acknowledged proposals in {count} seeds"
    );
    assert!(
        count < 200 || snapshots > 0,
        "no snapshot was installed in {count} seeds"
    );
    assert!(
        count < 200 || completed > 0,
        "no leadership transfer completed in {count} seeds ({started} started)"
    );
    assert!(
        count < 200 || (served > count && on_lease > 0),
        "reads barely exercised: {requested} requested, {on_lease} on a lease, {served} served"
    );
    assert!(
        count < 200 || (committed > count && joint > 0 && leader_removals > 0),
        "membership barely exercised: {proposed} changes proposed ({joint} joint, \
         {leader_removals} removing the leader), {committed} committed"
    );
    println!(
        "{count} seeds passed ({nodes} nodes), {acked} acknowledged proposals checked, \
         {snapshots} snapshots delivered, {started} leadership transfers started, \
         {completed} completed; reads: {requested} requested ({on_lease} on a leader's lease), \
         {served} served and checked linearizable, {failed} failed; membership: {proposed} \
         changes proposed ({joint} joint, {leader_removals} removing the leader), \
         {committed} committed"
    );
}

#[test]
fn simulate_3_nodes() {
    run_seeds("simulate_3_nodes", 0, 3);
}

#[test]
fn simulate_5_nodes() {
    run_seeds("simulate_5_nodes", 1, 5);
}

/// MIT 6.824's Figure8Unreliable: 1,000 rounds of proposals and leader crashes on a network
/// that loses 10% of messages and reorders heavily; then everything heals and must commit.
fn figure8_unreliable_seed(seed: u64) -> Result<usize, String> {
    let mut s = Sim::new(seed, 5, false);
    s.faults = Faults {
        drop: 0.1,
        dup: 0.02,
        max_delay: 40,
    };
    for _round in 0..1000 {
        if let Some(l) = s.leader() {
            s.propose(l);
        }
        let dt = if s.rng.chance(0.1) {
            1 + s.rng.below(5 * TICK)
        } else {
            1 + s.rng.below(13)
        };
        s.run_for(dt)?;
        if let Some(l) = s.leader()
            && s.rng.chance(0.5)
        {
            s.crash(l);
        }
        let up = s.nodes.values().filter(|n| n.is_up()).count();
        if up < 3 {
            let v = s.random_node();
            s.restart(v);
        }
    }
    let acked = s.heal_and_check()?;
    s.checker.ok()?;
    Ok(acked)
}

/// Churn: clients propose to random nodes while nodes crash, restart and get partitioned;
/// every value a client saw committed must be in the final log of every node.
fn churn_seed(seed: u64) -> Result<usize, String> {
    let mut s = Sim::new(seed, 5, false);
    s.faults = Faults {
        drop: 0.05,
        dup: 0.05,
        max_delay: 10,
    };
    for _round in 0..600 {
        let v = s.random_node();
        match s.rng.below(10) {
            0 | 1 => {
                let up = s.nodes.values().filter(|n| n.is_up()).count();
                if up > 2 {
                    s.crash(v);
                }
            }
            2..=4 => s.restart(v),
            5 => s.random_partition(),
            6 => s.group.clear(),
            _ => {}
        }
        for _ in 0..3 {
            let target = s.random_node();
            s.propose(target);
        }
        let target = s.random_node();
        s.read(target);
        let dt = 1 + s.rng.below(2 * TICK);
        s.run_for(dt)?;
    }
    let acked = s.heal_and_check()?;
    s.checker.ok()?;
    Ok(acked)
}

fn run_named(name: &str, default_seeds: u64, f: fn(u64) -> Result<usize, String>) {
    let seeds: Vec<u64> = match std::env::var("SIM_SEED") {
        Ok(s) => vec![s.parse().expect("SIM_SEED is a number")],
        // Long runs (SIM_SEEDS=N) run N/50 of these heavier seeds.
        Err(_) => {
            let scaled = std::env::var("SIM_SEEDS")
                .ok()
                .and_then(|v| v.parse::<u64>().ok())
                .map_or(0, |n| n / 50);
            (0..default_seeds.max(scaled)).collect()
        }
    };
    let acked = run_each(name, &seeds, f);
    assert!(acked > 0, "{name}: nothing was ever acknowledged");
    println!(
        "{name}: {} seeds passed, {acked} acknowledged proposals checked",
        seeds.len()
    );
}

#[test]
fn figure8_unreliable() {
    run_named("figure8_unreliable", 20, figure8_unreliable_seed);
}

#[test]
fn churn() {
    run_named("churn", 50, churn_seed);
}
