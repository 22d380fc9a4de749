//! One run from start to verdict: set up the directory and the cluster, run the clients and
//! the nemesis, heal, read every key, stop the nodes, check the history, summarize.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use thiserror::Error;
use tokio::sync::watch;

use super::Options;
use super::cluster::{Cluster, ClusterError, default_node_bin};
use super::membership::{self, MemberSchedule};
use super::nemesis::{self, Log, Schedule};
use super::recorder::Recorder;
use super::workload::{self, Keys, ProcessIds, Workload};
use crate::checker::{self, Budget, History, HistoryError, Report};
use crate::interrupt::interrupted;
use crate::rng::Rng;

/// How long healing (restarts, a leader, every node caught up) may take.
const HEAL_DEADLINE: Duration = Duration::from_secs(60);
/// How long the final read of each key may keep retrying.
const FINAL_READ_DEADLINE: Duration = Duration::from_secs(30);
/// How many lines of a failing report are printed (the rest is in verdict.txt).
const REPORT_LINES: usize = 80;
/// How often the history is flushed to its file.
const FLUSH_EVERY: Duration = Duration::from_millis(250);

/// Why a run could not be carried out (as opposed to a run whose check failed, which is a
/// [`RunResult`] that did not pass).
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ChaosError {
    /// The run directory is not usable.
    #[error("run directory {}: {reason}", dir.display())]
    Dir {
        /// The directory.
        dir: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The cluster could not be set up.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// No leader was elected after the start.
    #[error("no leader within {0:?} of the start; see the node logs")]
    NoLeader(Duration),
    /// A client task panicked.
    #[error("a client failed: {0}")]
    Client(String),
    /// The history file could not be written or read back.
    #[error("history file {}: {reason}", path.display())]
    History {
        /// The file.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
    /// The recorded history is malformed (a runner bug).
    #[error("history file is malformed: {0}")]
    Malformed(#[from] HistoryError),
    /// Interrupted by SIGINT or SIGTERM; the nodes were killed.
    #[error("interrupted; the nodes were stopped")]
    Interrupted,
    /// The async runtime could not start.
    #[error("starting the async runtime: {0}")]
    Runtime(std::io::Error),
}

/// The outcome of a run that was carried out.
#[derive(Debug)]
pub struct RunResult {
    /// The flags.
    pub options: Options,
    /// The seed used.
    pub seed: u64,
    /// The run directory.
    pub dir: PathBuf,
    /// The checker's report.
    pub report: Report,
    /// Faults inflicted (with `--membership`: membership changes tried).
    pub faults: u64,
    /// With `--membership`: spares promoted to voters, and voters removed.
    pub members: Option<(u64, u64)>,
    /// Nodes that exited on their own during the run or did not stop cleanly at the end.
    pub node_problems: Vec<String>,
    /// Why the cluster could not be healed and read at the end, if it could not.
    pub heal_error: Option<String>,
    /// Wall time of the whole run, checking included.
    pub wall: Duration,
}

impl RunResult {
    /// No violation, no lost acknowledged append, no undecided key (unless allowed), no node
    /// crash, and the cluster healed.
    pub fn passed(&self) -> bool {
        let s = &self.report.summary;
        !self.report.has_violation()
            && (s.keys_inconclusive == 0 || self.options.allow_inconclusive)
            && self.node_problems.is_empty()
            && self.heal_error.is_none()
    }

    fn history_path(&self) -> PathBuf {
        self.dir.join("history.jsonl")
    }

    fn verdict_path(&self) -> PathBuf {
        self.dir.join("verdict.txt")
    }
}

impl fmt::Display for RunResult {
    /// The one-line summary.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.report.summary;
        write!(
            f,
            "chaos: nodes={} duration={}s seed={} faults={} ops={} ok={} fail={} unknown={} \
             {}lost_acknowledged={} violations={} inconclusive={} wall={:.0}s -> {}",
            self.options.nodes,
            self.options.duration,
            self.seed,
            self.faults,
            s.ops,
            s.ok,
            s.fail,
            s.unknown,
            match self.members {
                Some((added, removed)) => {
                    format!("members_added={added} members_removed={removed} ")
                }
                None => String::new(),
            },
            s.missing_acknowledged_appends,
            s.keys_violated,
            s.keys_inconclusive,
            self.wall.as_secs_f64(),
            if self.passed() { "PASS" } else { "FAIL" },
        )?;
        if let Some(e) = &self.heal_error {
            write!(f, " (not healed: {e})")?;
        }
        if !self.node_problems.is_empty() {
            write!(f, " ({} node problems)", self.node_problems.len())?;
        }
        write!(
            f,
            " (history: {}, verdict: {})",
            self.history_path().display(),
            self.verdict_path().display()
        )
    }
}

/// Runs `raft-chaos` with parsed flags: prints progress and the summary line; returns the
/// exit status (0 pass, 1 check failed, 3 run error).
pub fn main(options: Options) -> i32 {
    match run(options) {
        Ok(result) => {
            for problem in &result.node_problems {
                println!("chaos: node problem: {problem}");
            }
            if !result.report.is_linearizable() {
                // The start of the report; all of it is in verdict.txt (a run with many bad
                // keys explains each at length).
                let report = result.report.to_string();
                let lines: Vec<&str> = report.lines().collect();
                for line in lines.iter().take(REPORT_LINES) {
                    println!("{line}");
                }
                if lines.len() > REPORT_LINES {
                    println!(
                        "... ({} more lines in verdict.txt)",
                        lines.len() - REPORT_LINES
                    );
                }
            }
            println!("{result}");
            if result.passed() { 0 } else { 1 }
        }
        Err(e) => {
            eprintln!("raft-chaos: error: {e}");
            3
        }
    }
}

/// Carries out one run and checks it.
pub fn run(options: Options) -> Result<RunResult, ChaosError> {
    let wall = Instant::now();
    let seed = options.seed.unwrap_or_else(clock_seed);
    let node_bin = options.node_bin.clone().unwrap_or_else(default_node_bin);
    let dir = match &options.dir {
        Some(d) => d.clone(),
        None => default_dir(seed),
    };
    prepare_dir(&dir)?;
    println!(
        "chaos: dir {} seed {seed} nodes {} duration {}s{} node binary {}",
        dir.display(),
        options.nodes,
        options.duration,
        if options.no_faults {
            " (no faults)"
        } else {
            ""
        },
        node_bin.display()
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ChaosError::Runtime)?;
    let node_args = options
        .node_args
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let spares = if options.membership {
        membership::SPARES
    } else {
        0
    };
    let mut cluster =
        Cluster::create_with_spares(&node_bin, &dir, options.nodes, spares, node_args)?;
    let history_path = dir.join("history.jsonl");
    let recorder = Recorder::create(&history_path, wall).map_err(|e| ChaosError::History {
        path: history_path.clone(),
        reason: e.to_string(),
    })?;
    let recorder = Arc::new(recorder);
    let nemesis_log = std::fs::File::create(dir.join("nemesis.log")).ok();
    let mut log = Log::new(wall, nemesis_log);
    let phases = runtime.block_on(async {
        tokio::select! {
            r = phases(&options, seed, &mut cluster, &recorder, &mut log) => r,
            _ = interrupted() => Err(ChaosError::Interrupted),
        }
    });
    // On an error the nodes are killed here, as `cluster` drops; otherwise `phases` stopped
    // them.
    let phases = phases?;
    drop(runtime);
    recorder.finish().map_err(|e| ChaosError::History {
        path: history_path.clone(),
        reason: e.to_string(),
    })?;
    let text = std::fs::read_to_string(&history_path).map_err(|e| ChaosError::History {
        path: history_path.clone(),
        reason: e.to_string(),
    })?;
    let history = History::parse_jsonl(&text)?;
    let budget = Budget {
        max_time: Some(Duration::from_secs(options.check_secs)),
        ..Budget::default()
    };
    let report = checker::check(&history, &budget);
    let verdict_path = dir.join("verdict.txt");
    write_file(&verdict_path, &report.to_string())?;
    let members = result_members(&options, &phases);
    let result = RunResult {
        options,
        seed,
        dir,
        report,
        faults: phases.faults,
        members,
        node_problems: phases.node_problems,
        heal_error: phases.heal_error,
        wall: wall.elapsed(),
    };
    write_file(&result.dir.join("summary.txt"), &format!("{result}\n"))?;
    if result.passed() && !result.options.keep_data {
        cluster.remove_data();
    }
    Ok(result)
}

/// What the async part of a run found.
struct Phases {
    faults: u64,
    members_added: u64,
    members_removed: u64,
    node_problems: Vec<String>,
    heal_error: Option<String>,
}

async fn phases(
    options: &Options,
    seed: u64,
    cluster: &mut Cluster,
    recorder: &Arc<Recorder>,
    log: &mut Log,
) -> Result<Phases, ChaosError> {
    let mut rng = Rng::new(seed);
    let schedule_seed = rng.next_u64();
    let schedule = Schedule::new(schedule_seed, options.nodes);
    let member_seed = schedule_seed;
    for id in cluster.ids() {
        cluster.start(id).await?;
    }
    wait_leader(cluster, Duration::from_secs(60)).await?;
    log.line(format!(
        "{} nodes up, a leader elected; clients start",
        options.nodes
    ));

    let workload = Arc::new(Workload {
        // Spares too: a client bound to one that is not running moves on to the next node.
        addrs: cluster.nodes().iter().map(|n| n.client_addr).collect(),
        keys: Keys::new(options.keys as usize, options.appends_per_key),
        op_timeout: Duration::from_millis(options.op_timeout_ms),
        connect_timeout: Duration::from_secs(1),
        append_percent: options.append_percent,
        think: Duration::from_millis(options.think_ms),
    });
    let processes = Arc::new(ProcessIds::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut clients = Vec::new();
    for worker in 0..options.clients as usize {
        clients.push(tokio::spawn(workload::client(
            worker,
            workload.clone(),
            recorder.clone(),
            processes.clone(),
            rng.fork(),
            stop_rx.clone(),
        )));
    }
    let flusher = {
        let recorder = recorder.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(FLUSH_EVERY).await;
                recorder.flush();
            }
        })
    };

    let phase_start = Instant::now();
    let duration = Duration::from_secs(options.duration);
    let outcome = if options.no_faults {
        tokio::time::sleep(duration).await;
        nemesis::Outcome::default()
    } else if options.membership {
        let voters = options.nodes;
        let schedule = MemberSchedule::new(member_seed, voters, voters + membership::SPARES);
        membership::run(cluster, schedule, phase_start, duration, log).await
    } else {
        nemesis::run(cluster, schedule, phase_start, duration, log).await
    };
    let mut node_problems = outcome.crashes;
    for (id, status) in cluster.exited() {
        node_problems.push(format!("node {id} exited on its own ({status})"));
    }
    log.line(format!(
        "fault phase over ({} faults); stopping the clients",
        outcome.faults
    ));
    let _ = stop_tx.send(true);
    for client in clients {
        client
            .await
            .map_err(|e| ChaosError::Client(e.to_string()))?;
    }

    let heal_error = match nemesis::heal(cluster, log, HEAL_DEADLINE).await {
        Err(e) => Some(e),
        Ok(leader) => final_reads(cluster, leader, &workload, recorder, &processes)
            .await
            .err(),
    };
    if let Some(e) = &heal_error {
        log.line(format!("NOT HEALED: {e}"));
    }
    for (id, status) in cluster.stop_all().await {
        match status {
            Some(s) if s.success() => {}
            Some(s) => node_problems.push(format!("node {id} exited with {s} after SIGTERM")),
            None => node_problems.push(format!("node {id} did not exit within 20 s of SIGTERM")),
        }
    }
    log.line("nodes stopped");
    flusher.abort();
    Ok(Phases {
        faults: outcome.faults,
        members_added: outcome.members_added,
        members_removed: outcome.members_removed,
        node_problems,
        heal_error,
    })
}

/// The final reads the audits compare against: every key used, through the leader, and the
/// keys in use at the end through every other node too.
async fn final_reads(
    cluster: &Cluster,
    leader: u64,
    workload: &Workload,
    recorder: &Recorder,
    processes: &ProcessIds,
) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + FINAL_READ_DEADLINE;
    let mut reads: Vec<(u64, String)> = Vec::new();
    reads.extend(workload.keys.all().into_iter().map(|k| (leader, k)));
    for id in cluster.ids().into_iter().filter(|&id| id != leader) {
        reads.extend(workload.keys.current().into_iter().map(|k| (id, k)));
    }
    for (id, key) in reads {
        let addr = cluster.node(id).client_addr;
        let op_timeout = workload.op_timeout;
        if !workload::final_read(addr, &key, op_timeout, recorder, processes, deadline).await {
            return Err(format!(
                "the final read of {key} through node {id} did not succeed within {:?}",
                FINAL_READ_DEADLINE
            ));
        }
    }
    Ok(())
}

async fn wait_leader(cluster: &Cluster, within: Duration) -> Result<u64, ChaosError> {
    cluster
        .wait_leader(within)
        .await
        .ok_or(ChaosError::NoLeader(within))
}

fn result_members(options: &Options, phases: &Phases) -> Option<(u64, u64)> {
    options
        .membership
        .then_some((phases.members_added, phases.members_removed))
}

fn clock_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    // Printed and typed back by people: keep it short.
    Rng::new(nanos ^ u64::from(std::process::id())).next_u64() % 1_000_000
}

/// `<target>/chaos/run-<time>-<seed>` when this executable is in a cargo target directory
/// (`<target>/<profile>/raft-chaos`), else the same under the system temp directory.
fn default_dir(seed: u64) -> PathBuf {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let name = format!("run-{secs}-{seed}");
    let target = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.to_owned()))
        .filter(|t| t.join("CACHEDIR.TAG").is_file());
    match target {
        Some(t) => t.join("chaos").join(name),
        None => std::env::temp_dir().join("raft-chaos").join(name),
    }
}

/// Creates the run directory; refuses one that holds files (a kept run must not be
/// overwritten).
fn prepare_dir(dir: &Path) -> Result<(), ChaosError> {
    let err = |reason: String| ChaosError::Dir {
        dir: dir.to_owned(),
        reason,
    };
    std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
    let mut entries = std::fs::read_dir(dir).map_err(|e| err(e.to_string()))?;
    if entries.next().is_some() {
        return Err(err("not empty (a kept run?); give a new --dir".into()));
    }
    Ok(())
}

fn write_file(path: &Path, text: &str) -> Result<(), ChaosError> {
    std::fs::write(path, text).map_err(|e| ChaosError::History {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}
