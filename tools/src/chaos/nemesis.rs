//! The nemesis: a seeded schedule of faults, one at a time with quiet gaps between them, and
//! the code that inflicts them on a [`Cluster`] and heals it afterwards.
//!
//! One fault at a time, each healed before the next: a node killed or paused is never
//! partitioned, and a restarted node (which forgets its blocked peers) never needs a
//! partition re-applied. The gaps let the cluster elect a leader and make progress, without
//! which the run would record almost nothing.
//!
//! The schedule is a pure function of the seed and the node count ([`Schedule`]), so
//! `--seed` replays the same faults in the same order; what they hit at run time (who leads
//! then) and what the clients see naturally differ.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs::File;
use std::io::Write;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use super::cluster::{Cluster, field};
use crate::resp::Reply;
use crate::rng::Rng;

/// A node to hit: the leader at that moment, or a fixed one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// The leader when the fault starts; `fallback` if none is known.
    Leader {
        /// The node hit if no leader is known.
        fallback: u64,
    },
    /// This node.
    Node(u64),
}

/// Who can reach whom during a partition. Node sets are fixed by the schedule, except the
/// leader's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Shape {
    /// One node cut off from all the others.
    Minority(Vec<u64>),
    /// A majority split: these `n / 2` nodes from the other `n - n / 2` (5 nodes: 2 | 3).
    Split(Vec<u64>),
    /// The leader cut off from all the others (`fallback` if no leader is known).
    IsolatedLeader {
        /// The node cut off if no leader is known.
        fallback: u64,
    },
    /// `left` and `right` cannot reach each other, and both reach `bridge` (3 nodes: the
    /// chain left – bridge – right).
    Bridge {
        /// The node both sides reach.
        bridge: u64,
        /// One side.
        left: Vec<u64>,
        /// The other side.
        right: Vec<u64>,
    },
}

/// One fault and how long it lasts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// kill -9, then restart on the same data dir after `down`.
    Kill {
        /// The node.
        target: Target,
        /// How long it stays down.
        down: Duration,
    },
    /// SIGSTOP, then SIGCONT after `hold`.
    Pause {
        /// The node.
        target: Target,
        /// How long it stays stopped.
        hold: Duration,
    },
    /// A network partition, healed after `hold`.
    Partition {
        /// Its shape.
        shape: Shape,
        /// How long it lasts.
        hold: Duration,
    },
}

/// A fault after a quiet gap.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// Time without faults before this one, for the cluster to recover and make progress.
    pub gap: Duration,
    /// The fault.
    pub fault: Fault,
}

/// The endless fault schedule for a seed and a cluster size.
#[derive(Clone, Debug)]
pub struct Schedule {
    rng: Rng,
    nodes: u64,
}

impl Schedule {
    /// The schedule for `nodes` nodes (at least 3) from `seed`.
    pub fn new(seed: u64, nodes: u64) -> Schedule {
        Schedule {
            rng: Rng::new(seed),
            nodes,
        }
    }

    fn target(&mut self) -> Target {
        let node = 1 + self.rng.below(self.nodes);
        if self.rng.chance(50) {
            Target::Leader { fallback: node }
        } else {
            Target::Node(node)
        }
    }

    fn shape(&mut self) -> Shape {
        let mut ids: Vec<u64> = (1..=self.nodes).collect();
        self.rng.shuffle(&mut ids);
        // A split differs from a minority only from 5 nodes on (3 nodes: both are 1 | 2).
        let shapes = if self.nodes >= 5 { 4 } else { 3 };
        match self.rng.below(shapes) {
            0 => Shape::Minority(vec![ids[0]]),
            1 => Shape::IsolatedLeader { fallback: ids[0] },
            2 => {
                let side = (self.nodes as usize - 1) / 2;
                let mut left = ids[1..=side].to_vec();
                let mut right = ids[side + 1..].to_vec();
                left.sort();
                right.sort();
                Shape::Bridge {
                    bridge: ids[0],
                    left,
                    right,
                }
            }
            _ => {
                let mut half = ids[..self.nodes as usize / 2].to_vec();
                half.sort();
                Shape::Split(half)
            }
        }
    }
}

impl Iterator for Schedule {
    type Item = Step;

    fn next(&mut self) -> Option<Step> {
        let gap = self.rng.millis(2_000, 4_000);
        let fault = match self.rng.below(100) {
            0..30 => Fault::Kill {
                target: self.target(),
                down: self.rng.millis(500, 4_000),
            },
            30..55 => Fault::Pause {
                target: self.target(),
                hold: self.rng.millis(1_000, 4_000),
            },
            _ => Fault::Partition {
                shape: self.shape(),
                hold: self.rng.millis(2_000, 6_000),
            },
        };
        Some(Step { gap, fault })
    }
}

impl Shape {
    /// For each node, the peers it may not talk to (`RAFT.FAULT BLOCK`): the cut is applied
    /// on both sides. Nodes with nothing blocked are absent.
    pub fn blocked(&self, ids: &[u64], leader: Option<u64>) -> BTreeMap<u64, BTreeSet<u64>> {
        let rest = |side: &[u64]| -> Vec<u64> {
            ids.iter().copied().filter(|i| !side.contains(i)).collect()
        };
        let (a, b) = match self {
            Shape::Minority(side) | Shape::Split(side) => (side.clone(), rest(side)),
            Shape::IsolatedLeader { fallback } => {
                let alone = vec![leader.unwrap_or(*fallback)];
                let others = rest(&alone);
                (alone, others)
            }
            Shape::Bridge { left, right, .. } => (left.clone(), right.clone()),
        };
        let mut out: BTreeMap<u64, BTreeSet<u64>> = BTreeMap::new();
        for &x in &a {
            for &y in &b {
                out.entry(x).or_default().insert(y);
                out.entry(y).or_default().insert(x);
            }
        }
        out
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Shape::Minority(side) => write!(f, "minority {side:?} cut off"),
            Shape::Split(side) => write!(f, "majority split: {side:?} cut off from the rest"),
            Shape::IsolatedLeader { .. } => write!(f, "isolated leader"),
            Shape::Bridge {
                bridge,
                left,
                right,
            } => write!(f, "bridge: {left:?} and {right:?} both reach only {bridge}"),
        }
    }
}

/// The nemesis's log: each line to stdout and to `nemesis.log`, timed from the run's start
/// (the history's clock, in seconds).
#[derive(Debug)]
pub struct Log {
    start: Instant,
    file: Option<File>,
}

impl Log {
    /// A log timed from `start`, also written to `file`.
    pub fn new(start: Instant, file: Option<File>) -> Log {
        Log { start, file }
    }

    /// Writes one line.
    pub fn line(&mut self, text: impl fmt::Display) {
        let line = format!("[{:>8.3}s] {text}", self.start.elapsed().as_secs_f64());
        println!("{line}");
        if let Some(f) = &mut self.file {
            // The log is for people; a failed write must not stop the run.
            let _ = writeln!(f, "{line}");
        }
    }
}

/// What the fault phase did.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Faults inflicted.
    pub faults: u64,
    /// Nodes that exited without being told to (a node bug), as text for people.
    pub crashes: Vec<String>,
    /// Spares that joined and were promoted to voters (`--membership`).
    pub members_added: u64,
    /// Voters removed, stopped and wiped (`--membership`).
    pub members_removed: u64,
}

/// Runs the schedule on `cluster` until `duration` has passed since `phase_start` (the fault
/// in progress then is completed and healed).
pub async fn run(
    cluster: &mut Cluster,
    schedule: Schedule,
    phase_start: Instant,
    duration: Duration,
    log: &mut Log,
) -> Outcome {
    let mut outcome = Outcome::default();
    for step in schedule {
        if !sleep_within(step.gap, phase_start, duration).await {
            break;
        }
        note_crashes(cluster, log, &mut outcome).await;
        inflict(cluster, &step.fault, log).await;
        outcome.faults += 1;
        note_crashes(cluster, log, &mut outcome).await;
    }
    outcome
}

/// Sleeps `d`, or until the phase ends; false if the phase ended.
pub(super) async fn sleep_within(d: Duration, phase_start: Instant, duration: Duration) -> bool {
    let end = phase_start + duration;
    let wake = Instant::now() + d;
    tokio::time::sleep_until(wake.min(end).into()).await;
    Instant::now() < end
}

/// Logs nodes that exited on their own and starts them again.
async fn note_crashes(cluster: &mut Cluster, log: &mut Log, outcome: &mut Outcome) {
    for (id, status) in cluster.exited() {
        note_crash(cluster, id, status, log, outcome);
        restart(cluster, id, log).await;
    }
}

/// Logs and records that node `id` exited on its own with `status` (a node bug).
pub(super) fn note_crash(
    cluster: &Cluster,
    id: u64,
    status: ExitStatus,
    log: &mut Log,
    outcome: &mut Outcome,
) {
    let text = format!(
        "node {id} exited on its own ({status}); see {}",
        cluster.node(id).log_path.display()
    );
    log.line(format!("UNEXPECTED: {text}"));
    outcome.crashes.push(text);
}

/// Starts node `id`, a few times if it fails (a port taken meanwhile, a slow start).
async fn restart(cluster: &mut Cluster, id: u64, log: &mut Log) -> bool {
    for attempt in 1..=3 {
        match cluster.start(id).await {
            Ok(()) => return true,
            Err(e) => {
                log.line(format!(
                    "restart of node {id} failed (attempt {attempt}): {e}"
                ));
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
    false
}

async fn resolve(cluster: &Cluster, target: &Target) -> (u64, &'static str) {
    match target {
        Target::Node(id) => (*id, ""),
        Target::Leader { fallback } => match cluster.leader().await {
            Some(id) => (id, " (the leader)"),
            None => (*fallback, " (no leader known)"),
        },
    }
}

/// Inflicts `fault` and heals it (a killed node restarted, a paused one continued, a
/// partition healed).
pub(super) async fn inflict(cluster: &mut Cluster, fault: &Fault, log: &mut Log) {
    match fault {
        Fault::Kill { target, down } => {
            let (id, which) = resolve(cluster, target).await;
            log.line(format!("kill -9 node {id}{which}; restart in {down:?}"));
            cluster.kill9(id).await;
            tokio::time::sleep(*down).await;
            if restart(cluster, id, log).await {
                log.line(format!("node {id} restarted"));
            }
        }
        Fault::Pause { target, hold } => {
            let (id, which) = resolve(cluster, target).await;
            log.line(format!("SIGSTOP node {id}{which} for {hold:?}"));
            cluster.pause(id);
            tokio::time::sleep(*hold).await;
            cluster.resume(id);
            log.line(format!("SIGCONT node {id}"));
        }
        Fault::Partition { shape, hold } => {
            let leader = match shape {
                Shape::IsolatedLeader { .. } => cluster.leader().await,
                _ => None,
            };
            let blocked = shape.blocked(&cluster.ids(), leader);
            log.line(format!("partition: {shape} {blocked:?} for {hold:?}"));
            for (id, peers) in &blocked {
                let mut args = vec!["RAFT.FAULT".to_owned(), "BLOCK".to_owned()];
                args.extend(peers.iter().map(u64::to_string));
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                match cluster.command(*id, &args, Duration::from_secs(2)).await {
                    Ok(Reply::Bulk(_)) => {}
                    other => log.line(format!("RAFT.FAULT BLOCK on node {id} failed: {other:?}")),
                }
            }
            tokio::time::sleep(*hold).await;
            let ids: Vec<u64> = blocked.keys().copied().collect();
            if let Err(e) = heal_partition(cluster, &ids, Duration::from_secs(10)).await {
                log.line(format!("heal failed: {e}"));
            } else {
                log.line("partition healed");
            }
        }
    }
}

/// `RAFT.FAULT HEAL` on each of `ids` that runs, retried until it succeeds or `within`.
async fn heal_partition(cluster: &Cluster, ids: &[u64], within: Duration) -> Result<(), String> {
    let deadline = Instant::now() + within;
    for &id in ids {
        loop {
            if !cluster.node(id).is_running() {
                break; // A node that starts again starts with nothing blocked.
            }
            match cluster
                .command(id, &["RAFT.FAULT", "HEAL"], Duration::from_secs(2))
                .await
            {
                Ok(Reply::Bulk(_)) => break,
                other if Instant::now() > deadline => {
                    return Err(format!("RAFT.FAULT HEAL on node {id}: {other:?}"));
                }
                _ => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }
    Ok(())
}

/// Undoes every fault: SIGCONT the paused, start the stopped, heal every partition; then
/// waits until one leader is known to all and every node has applied its commit index.
/// Returns the leader, or why the cluster could not be healed within `within`.
pub async fn heal(cluster: &mut Cluster, log: &mut Log, within: Duration) -> Result<u64, String> {
    let deadline = Instant::now() + within;
    for id in cluster.ids() {
        if cluster.node(id).is_paused() {
            cluster.resume(id);
        }
        if !cluster.node(id).is_running() && !restart(cluster, id, log).await {
            return Err(format!("node {id} could not be started"));
        }
    }
    heal_partition(cluster, &cluster.ids(), within).await?;
    log.line("healed: every node runs, nothing blocked; waiting for convergence");
    loop {
        match converged(cluster).await {
            Ok(leader) => {
                log.line(format!(
                    "converged: node {leader} leads, every node applied its commit index"
                ));
                return Ok(leader);
            }
            Err(why) if Instant::now() > deadline => {
                return Err(format!("no convergence within {within:?}: {why}"));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// One leader that every node names, and every node has applied the leader's commit index.
async fn converged(cluster: &Cluster) -> Result<u64, String> {
    let mut infos = Vec::new();
    for id in cluster.ids() {
        let info = cluster
            .info(id)
            .await
            .ok_or_else(|| format!("node {id} does not answer RAFT.INFO"))?;
        infos.push((id, info));
    }
    let leaders: Vec<u64> = infos
        .iter()
        .filter(|(_, i)| i.get("role").map(String::as_str) == Some("leader"))
        .map(|(id, _)| *id)
        .collect();
    let [leader] = leaders[..] else {
        return Err(format!("leaders: {leaders:?}"));
    };
    let commit = infos
        .iter()
        .find(|(id, _)| *id == leader)
        .map_or(0, |(_, info)| field(info, "commit_index"));
    for (id, info) in &infos {
        if field(info, "leader_id") != leader {
            return Err(format!(
                "node {id} names leader {}",
                field(info, "leader_id")
            ));
        }
        if field(info, "applied_index") < commit {
            return Err(format!("node {id} has not applied up to {commit}"));
        }
    }
    Ok(leader)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_replays_its_schedule() {
        let a: Vec<Step> = Schedule::new(42, 5).take(50).collect();
        let b: Vec<Step> = Schedule::new(42, 5).take(50).collect();
        let c: Vec<Step> = Schedule::new(43, 5).take(50).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn schedules_have_every_fault_within_bounds() {
        for nodes in [3, 5] {
            let steps: Vec<Step> = Schedule::new(7, nodes).take(400).collect();
            let mut seen = BTreeSet::new();
            for step in &steps {
                assert!(step.gap >= Duration::from_secs(2) && step.gap <= Duration::from_secs(4));
                let name = match &step.fault {
                    Fault::Kill { .. } => "kill",
                    Fault::Pause { .. } => "pause",
                    Fault::Partition { shape, .. } => match shape {
                        Shape::Minority(side) => {
                            assert_eq!(side.len(), 1);
                            "minority"
                        }
                        Shape::Split(side) => {
                            assert_eq!(side.len() as u64, nodes / 2);
                            "split"
                        }
                        Shape::IsolatedLeader { .. } => "leader",
                        Shape::Bridge { left, right, .. } => {
                            assert_eq!(left.len() + right.len() + 1, nodes as usize);
                            "bridge"
                        }
                    },
                };
                seen.insert(name);
            }
            let expected = if nodes == 5 { 6 } else { 5 };
            assert_eq!(seen.len(), expected, "{nodes} nodes: {seen:?}");
        }
    }

    fn set(ids: &[u64]) -> BTreeSet<u64> {
        ids.iter().copied().collect()
    }

    #[test]
    fn partitions_block_both_sides() {
        let ids = [1, 2, 3, 4, 5];
        let split = Shape::Split(vec![1, 2]).blocked(&ids, None);
        assert_eq!(split[&1], set(&[3, 4, 5]));
        assert_eq!(split[&4], set(&[1, 2]));
        assert_eq!(split.len(), 5);

        let alone = Shape::IsolatedLeader { fallback: 1 };
        let b = alone.blocked(&ids, Some(3));
        assert_eq!(b[&3], set(&[1, 2, 4, 5]));
        assert_eq!(b[&1], set(&[3]));
        assert_eq!(alone.blocked(&ids, None)[&1], set(&[2, 3, 4, 5]));

        let bridge = Shape::Bridge {
            bridge: 2,
            left: vec![1],
            right: vec![3],
        };
        let b = bridge.blocked(&[1, 2, 3], None);
        assert_eq!(b[&1], set(&[3]));
        assert_eq!(b[&3], set(&[1]));
        assert!(!b.contains_key(&2), "the bridge reaches everyone");
    }
}
