//! The membership nemesis (`--membership`): the cluster grows and shrinks while the clients
//! run. A grow starts a spare node with `--join`, adds it as a learner, waits until it has
//! caught up with the leader's commit index and promotes it; a shrink removes a voter
//! (sometimes the leader), stops it and wipes its data directory, so that its id becomes a
//! spare again. Never fewer than [`MIN_VOTERS`] voters.
//!
//! Between changes, sometimes a member (sometimes the leader) is killed with -9 and
//! restarted on its data directory, a joined node included.
//!
//! Each step is bounded in time: a step that cannot be carried out (no leader, a refusal
//! that does not say to retry, a node that does not catch up) is logged and given up, which
//! is not a linearizability violation; healing at the end still needs every member running.
//!
//! The schedule is a pure function of the seed ([`MemberSchedule`]); at run time a step
//! that does not fit the cluster as it is then (no spare left, too few voters after an
//! earlier step failed) is skipped.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::cluster::{Cluster, field};
use super::nemesis::{self, Fault, Log, Outcome, Target};
use crate::resp::Reply;
use crate::rng::Rng;

/// The fewest voters a shrink leaves.
pub const MIN_VOTERS: u64 = 3;
/// Spare ids prepared (certificates, ports, data directories) besides the initial nodes.
pub const SPARES: u64 = 2;
/// How long one `RAFT.MEMBER` command may keep retrying.
const MEMBER_DEADLINE: Duration = Duration::from_secs(20);
/// How long a learner may take to catch up with the leader's commit index.
const CATCH_UP_DEADLINE: Duration = Duration::from_secs(30);
/// How long the configuration may take to show a change.
const CONFIRM_DEADLINE: Duration = Duration::from_secs(15);

/// One membership change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// Start a spare, add it as a learner, let it catch up, promote it.
    Grow,
    /// Remove a voter: the leader, or the `pick`-th (modulo their number) of the others.
    Shrink {
        /// Remove the leader.
        leader: bool,
        /// Which of the other voters, if not the leader.
        pick: u64,
    },
    /// kill -9 a member (the leader, or the `pick`-th modulo their number), restart it on
    /// its data directory after `down`: a node that joined restarts with `--join` on a
    /// configuration it already has.
    Kill {
        /// Kill the leader.
        leader: bool,
        /// Which member, if not the leader (or no leader is known).
        pick: u64,
        /// How long it stays down.
        down: Duration,
    },
}

/// A change after a quiet gap.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberStep {
    /// Time without changes before this one.
    pub gap: Duration,
    /// The change.
    pub change: Change,
    /// The voters once the change is made, as the schedule counts them.
    pub voters: u64,
}

/// The endless membership schedule for a seed: between [`MIN_VOTERS`] and `max` voters.
#[derive(Clone, Debug)]
pub struct MemberSchedule {
    rng: Rng,
    voters: u64,
    max: u64,
}

impl MemberSchedule {
    /// The schedule for a cluster that starts with `voters` voters (at least
    /// [`MIN_VOTERS`]) and may grow to `max` voters.
    pub fn new(seed: u64, voters: u64, max: u64) -> MemberSchedule {
        MemberSchedule {
            rng: Rng::new(seed),
            voters,
            max: max.max(voters),
        }
    }
}

impl Iterator for MemberSchedule {
    type Item = MemberStep;

    fn next(&mut self) -> Option<MemberStep> {
        let gap = self.rng.millis(2_000, 4_000);
        if self.rng.chance(25) {
            let change = Change::Kill {
                leader: self.rng.chance(50),
                pick: self.rng.next_u64(),
                down: self.rng.millis(500, 3_000),
            };
            return Some(MemberStep {
                gap,
                change,
                voters: self.voters,
            });
        }
        let grow = if self.voters <= MIN_VOTERS {
            true
        } else if self.voters >= self.max {
            false
        } else {
            self.rng.chance(50)
        };
        let change = if grow {
            self.voters += 1;
            Change::Grow
        } else {
            self.voters -= 1;
            Change::Shrink {
                leader: self.rng.chance(35),
                pick: self.rng.next_u64(),
            }
        };
        Some(MemberStep {
            gap,
            change,
            voters: self.voters,
        })
    }
}

/// The configuration as the leader sees it.
#[derive(Debug)]
struct Config {
    leader: u64,
    voters: Vec<u64>,
    learners: Vec<u64>,
}

impl Config {
    fn has(&self, id: u64) -> bool {
        self.voters.contains(&id) || self.learners.contains(&id)
    }
}

fn ids(info: &BTreeMap<String, String>, name: &str) -> Vec<u64> {
    info.get(name)
        .map(|v| v.split(',').filter_map(|i| i.trim().parse().ok()).collect())
        .unwrap_or_default()
}

async fn config(cluster: &Cluster) -> Option<Config> {
    let leader = cluster.leader().await?;
    let info = cluster.info(leader).await?;
    if info.get("role").map(String::as_str) != Some("leader") {
        return None;
    }
    Some(Config {
        leader,
        voters: ids(&info, "voters"),
        learners: ids(&info, "learners"),
    })
}

/// Waits until the leader's configuration satisfies `ok`, up to `within`.
async fn confirm(cluster: &Cluster, within: Duration, ok: impl Fn(&Config) -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if let Some(c) = config(cluster).await {
            if ok(&c) {
                return true;
            }
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Sends `RAFT.MEMBER args` to the leader until `+OK`, a refusal that does not say to retry,
/// or `within`. An error is the last answer (the change may still have been made after a
/// timeout: the caller checks the configuration).
async fn member(cluster: &Cluster, args: &[&str], within: Duration) -> Result<(), String> {
    let mut all = vec!["RAFT.MEMBER"];
    all.extend_from_slice(args);
    let deadline = Instant::now() + within;
    let mut last = "no leader".to_owned();
    while Instant::now() < deadline {
        let Some(leader) = cluster.leader().await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        match cluster.command(leader, &all, Duration::from_secs(15)).await {
            Ok(Reply::Simple(s)) if s == "OK" => return Ok(()),
            Ok(Reply::Error(e)) => {
                let retry = e.contains("pending")
                    || e.contains("retry")
                    || e.starts_with("TRYAGAIN")
                    || e.contains("not the leader");
                if !retry {
                    return Err(format!("node {leader}: {e}"));
                }
                last = format!("node {leader}: {e}");
            }
            Ok(other) => last = format!("node {leader}: unexpected reply {other:?}"),
            Err(e) => last = format!("node {leader}: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(format!("gave up after {within:?}; last answer: {last}"))
}

/// Waits until node `id` has applied the leader's commit index (read now), up to `within`.
async fn caught_up(cluster: &Cluster, id: u64, within: Duration) -> Result<u64, String> {
    let deadline = Instant::now() + within;
    let mut target = None;
    loop {
        if target.is_none() {
            if let Some(leader) = cluster.leader().await {
                if let Some(info) = cluster.info(leader).await {
                    target = Some(field(&info, "commit_index"));
                }
            }
        }
        if let (Some(t), Some(info)) = (target, cluster.info(id).await) {
            if field(&info, "applied_index") >= t {
                return Ok(t);
            }
        }
        if Instant::now() > deadline {
            return Err(format!(
                "node {id} did not apply the leader's commit index {target:?} within {within:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Grows the cluster by one spare; whether it ended a voter.
async fn grow(cluster: &mut Cluster, log: &mut Log) -> bool {
    let Some(&id) = cluster.spare_ids().first() else {
        log.line("membership: grow skipped: no spare id");
        return false;
    };
    log.line(format!("membership: grow: starting node {id} with --join"));
    if let Err(e) = cluster.join(id).await {
        log.line(format!("membership: grow of node {id} given up: {e}"));
        cluster.retire(id).await;
        return false;
    }
    let id_s = id.to_string();
    let addr = cluster.raft_addr(id);
    match member(cluster, &["ADD", &id_s, &addr, "LEARNER"], MEMBER_DEADLINE).await {
        Ok(()) => log.line(format!("membership: node {id} added as a learner")),
        Err(e) => {
            if confirm(cluster, CONFIRM_DEADLINE, |c| c.has(id)).await {
                log.line(format!(
                    "membership: ADD {id} answered {e}, but node {id} is in the configuration"
                ));
            } else {
                log.line(format!(
                    "membership: grow of node {id} given up (ADD: {e}); stopping it"
                ));
                cluster.retire(id).await;
                return false;
            }
        }
    }
    match caught_up(cluster, id, CATCH_UP_DEADLINE).await {
        Ok(index) => log.line(format!("membership: node {id} caught up to {index}")),
        Err(e) => {
            log.line(format!(
                "membership: grow of node {id} given up: {e}; it stays a learner"
            ));
            return false;
        }
    }
    let promoted = match member(cluster, &["PROMOTE", &id_s], MEMBER_DEADLINE).await {
        Ok(()) => true,
        Err(e) => {
            let ok = confirm(cluster, CONFIRM_DEADLINE, |c| c.voters.contains(&id)).await;
            if !ok {
                log.line(format!(
                    "membership: PROMOTE {id} given up ({e}); it stays a learner"
                ));
            }
            ok
        }
    };
    if promoted {
        let voters = config(cluster).await.map(|c| c.voters);
        log.line(format!(
            "membership: node {id} promoted to voter; voters now {voters:?}"
        ));
    }
    promoted
}

/// Shrinks the cluster by one voter; whether one was removed (and stopped).
async fn shrink(cluster: &mut Cluster, leader_wanted: bool, pick: u64, log: &mut Log) -> bool {
    let Some(conf) = config(cluster).await else {
        log.line("membership: shrink skipped: no leader known");
        return false;
    };
    if (conf.voters.len() as u64) <= MIN_VOTERS {
        log.line(format!(
            "membership: shrink skipped: voters {:?} (at least {MIN_VOTERS} stay)",
            conf.voters
        ));
        return false;
    }
    let others: Vec<u64> = conf
        .voters
        .iter()
        .copied()
        .filter(|&v| v != conf.leader)
        .collect();
    let (id, which) = if leader_wanted || others.is_empty() {
        (conf.leader, " (the leader)")
    } else {
        (others[(pick % others.len() as u64) as usize], "")
    };
    log.line(format!(
        "membership: shrink: REMOVE node {id}{which} from voters {:?}",
        conf.voters
    ));
    if let Err(e) = member(cluster, &["REMOVE", &id.to_string()], MEMBER_DEADLINE).await {
        let gone = confirm(cluster, CONFIRM_DEADLINE, |c| c.leader != id && !c.has(id)).await;
        if !gone {
            log.line(format!("membership: REMOVE {id} given up: {e}"));
            return false;
        }
        log.line(format!(
            "membership: REMOVE {id} answered {e}, but node {id} is out of the configuration"
        ));
    }
    let status = cluster.retire(id).await;
    log.line(format!(
        "membership: node {id} removed, stopped ({}) and wiped; it is a spare now",
        status.map_or("killed after SIGTERM timed out".to_owned(), |s| s
            .to_string())
    ));
    true
}

/// Runs the membership schedule on `cluster` until `duration` has passed since
/// `phase_start` (the change in progress then is completed).
pub async fn run(
    cluster: &mut Cluster,
    schedule: MemberSchedule,
    phase_start: Instant,
    duration: Duration,
    log: &mut Log,
) -> Outcome {
    let mut outcome = Outcome::default();
    for step in schedule {
        if !nemesis::sleep_within(step.gap, phase_start, duration).await {
            break;
        }
        note_exits(cluster, log, &mut outcome);
        outcome.faults += 1;
        match step.change {
            Change::Grow => {
                if grow(cluster, log).await {
                    outcome.members_added += 1;
                }
            }
            Change::Shrink { leader, pick } => {
                if shrink(cluster, leader, pick, log).await {
                    outcome.members_removed += 1;
                }
            }
            Change::Kill { leader, pick, down } => {
                let members = cluster.ids();
                let node = members[(pick % members.len() as u64) as usize];
                let target = if leader {
                    Target::Leader { fallback: node }
                } else {
                    Target::Node(node)
                };
                nemesis::inflict(cluster, &Fault::Kill { target, down }, log).await;
            }
        }
        note_exits(cluster, log, &mut outcome);
    }
    outcome
}

/// Records members that exited on their own (healing restarts them at the end).
fn note_exits(cluster: &mut Cluster, log: &mut Log, outcome: &mut Outcome) {
    for (id, status) in cluster.exited() {
        nemesis::note_crash(cluster, id, status, log, outcome);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_replays_its_membership_schedule() {
        let a: Vec<MemberStep> = MemberSchedule::new(42, 3, 5).take(50).collect();
        let b: Vec<MemberStep> = MemberSchedule::new(42, 3, 5).take(50).collect();
        let c: Vec<MemberStep> = MemberSchedule::new(43, 3, 5).take(50).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn membership_schedules_stay_within_bounds() {
        for seed in 0..50 {
            for (start, max) in [(3, 5), (3, 3), (5, 7)] {
                let mut voters = start;
                let mut seen = (false, false, false, false);
                for step in MemberSchedule::new(seed, start, max).take(200) {
                    assert!(
                        step.gap >= Duration::from_secs(2) && step.gap <= Duration::from_secs(4)
                    );
                    match step.change {
                        Change::Kill { down, .. } => {
                            assert!(down >= Duration::from_millis(500));
                            assert!(down <= Duration::from_secs(3));
                            seen.3 = true;
                        }
                        Change::Grow => {
                            voters += 1;
                            seen.0 = true;
                        }
                        Change::Shrink { leader, .. } => {
                            voters -= 1;
                            if leader {
                                seen.2 = true;
                            } else {
                                seen.1 = true;
                            }
                        }
                    }
                    assert_eq!(voters, step.voters);
                    assert!(voters >= MIN_VOTERS, "seed {seed}: {voters} voters");
                    assert!(voters <= max.max(start + 1), "seed {seed}: {voters} voters");
                }
                assert!(
                    seen.0 && seen.1 && seen.2 && seen.3,
                    "seed {seed}: {seen:?}"
                );
            }
        }
        // The first membership change of a 3-voter cluster is a grow.
        let first = MemberSchedule::new(1, 3, 5)
            .find(|s| !matches!(s.change, Change::Kill { .. }))
            .unwrap();
        assert_eq!(first.change, Change::Grow);
    }

    #[test]
    fn configuration_lines_parse() {
        let info = crate::chaos::cluster::parse_info("voters:1,2,4\r\nlearners:\r\n");
        assert_eq!(ids(&info, "voters"), [1, 2, 4]);
        assert!(ids(&info, "learners").is_empty());
    }
}
