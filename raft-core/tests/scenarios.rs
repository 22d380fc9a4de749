//! Scenario scripts in the style of etcd-raft's interaction tests: each file under
//! `tests/testdata` is a readable script of commands and their expected output.
//! After an intended behaviour change: `REWRITE=1 cargo test -p raft-core --test scenarios`.
//!
//! Commands:
//! - `add-nodes ids=(1,2,3) [pre-vote=false] [check-quorum=false] [read-lease=true]` with
//!   optional input lines `ID: T T T` giving the terms of a node's initial log (for
//!   divergent-log set-ups);
//! - `campaign id=N`, `tick id=N [n=K]`, `tick-heartbeat id=N`, `tick-all [n=K]` (each round
//!   ticks every live node, then stabilizes);
//! - `propose id=N [count=K] [data=S]` (one batch), `read-index id=N ctx=(A,B)` (together);
//! - `transfer-leader id=N to=M`: node N hands leadership over to M (prints the error, if any);
//! - `add-joining id=N`: a node waiting to join (no configuration, empty log);
//! - `conf-change id=N [transition=joint|explicit]` with operations like `v4 l5 r3` (add voter
//!   4, add learner 5, remove 3) as input, none to leave a joint configuration: node N
//!   proposes the change (prints where, or the error); `conf` prints every live node's
//!   configuration;
//! - `deliver [n=K]`: deliver the next K queued messages;
//! - `stabilize [quiet]`: deliver messages and persist until idle; prints each message, or with
//!   `quiet` only a count;
//! - `isolate id=N`, `partition` (input: one group per line), `heal`, `crash id=N`,
//!   `restart id=N`;
//! - `status` (a leader running a transfer shows `transferring=M`, one holding a read lease
//!   `lease`), `log id=N`, `reads id=N`,
//!   `safety`.

mod support;

use std::collections::BTreeMap;

use datadriven::{TestCase, walk};
use raft_core::{ConfChange, ConfChangeSingle, ConfChangeTransition, ConfState, LogIndex, NodeId};
use support::{Net, SimNode, config, store_with};

fn arg<T: std::str::FromStr>(tc: &TestCase, key: &str) -> Option<T> {
    tc.args
        .get(key)
        .and_then(|v| v.first())
        .and_then(|s| s.parse().ok())
}

fn id(tc: &TestCase) -> u64 {
    arg(tc, "id").expect("id=N")
}

fn add_nodes(tc: &TestCase) -> Net {
    let ids: Vec<u64> = tc.args["ids"].iter().map(|s| s.parse().unwrap()).collect();
    let pre_vote = arg::<bool>(tc, "pre-vote").unwrap_or(true);
    let check_quorum = arg::<bool>(tc, "check-quorum").unwrap_or(true);
    let read_lease = arg::<bool>(tc, "read-lease").unwrap_or(false);
    let cfg = move |i: u64| {
        let mut c = config(i);
        c.pre_vote = pre_vote;
        c.check_quorum = check_quorum;
        c.read_lease = read_lease;
        c
    };
    let mut net = Net::with_config(&ids, cfg);
    // Initial logs: "ID: T T T".
    let mut logs: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for line in tc.input.lines().filter(|l| !l.trim().is_empty()) {
        let (who, terms) = line.split_once(':').expect("ID: T T T");
        logs.insert(
            who.trim().parse().unwrap(),
            terms
                .split_whitespace()
                .map(|t| t.parse().unwrap())
                .collect(),
        );
    }
    for (who, terms) in logs {
        let term = terms.iter().copied().max().unwrap_or(0);
        let store = store_with(&ids, &terms, term, 0);
        net.nodes.insert(NodeId(who), SimNode::new(cfg(who), store));
    }
    net
}

fn status(net: &Net) -> String {
    let mut out = String::new();
    for n in net.nodes.values() {
        match n.raw.as_ref() {
            None => out.push_str(&format!("{}: down\n", n.id)),
            Some(r) => {
                let s = r.status();
                out.push_str(&format!(
                    "{}: {:?} term={} leader={} commit={} applied={} last={}{}{}\n",
                    s.id,
                    s.role,
                    s.term,
                    s.leader,
                    s.commit,
                    s.applied,
                    s.last_index,
                    s.transferring
                        .map_or(String::new(), |t| format!(" transferring={t}")),
                    if s.lease_valid { " lease" } else { "" }
                ));
            }
        }
    }
    out
}

fn conf_change(tc: &TestCase) -> ConfChange {
    let changes = tc
        .input
        .split_whitespace()
        .map(|tok| {
            let (kind, id) = tok.split_at(1);
            let id = NodeId(id.parse().expect("v4, l5 or r3"));
            match kind {
                "v" => ConfChangeSingle::AddVoter(id),
                "l" => ConfChangeSingle::AddLearner(id),
                "r" => ConfChangeSingle::RemoveNode(id),
                _ => panic!("unknown operation {tok}"),
            }
        })
        .collect();
    let transition = match arg::<String>(tc, "transition").as_deref() {
        None | Some("auto") => ConfChangeTransition::Auto,
        Some("joint") => ConfChangeTransition::JointImplicit,
        Some("explicit") => ConfChangeTransition::JointExplicit,
        Some(t) => panic!("unknown transition {t}"),
    };
    ConfChange::new(changes).with_transition(transition)
}

fn describe_conf(cs: &ConfState) -> String {
    let ids = |v: &[NodeId]| {
        v.iter()
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(" ")
    };
    if cs.is_empty() {
        return "none (waiting to join)".into();
    }
    let mut out = format!("voters=({})", ids(&cs.voters));
    if cs.is_joint() {
        out.push_str(&format!("&&({})", ids(&cs.voters_outgoing)));
    }
    if !cs.learners.is_empty() {
        out.push_str(&format!(" learners=({})", ids(&cs.learners)));
    }
    if !cs.learners_next.is_empty() {
        out.push_str(&format!(" learners_next=({})", ids(&cs.learners_next)));
    }
    if cs.auto_leave {
        out.push_str(" autoleave");
    }
    out
}

fn log(net: &mut Net, id: u64) -> String {
    let raw = net.node(id).raw.as_ref().expect("node is up");
    let last = raw.status().last_index;
    let ents = raw.entries(LogIndex(1), last.next()).unwrap();
    let terms: Vec<String> = ents.iter().map(|e| e.term.to_string()).collect();
    format!(
        "terms: {}\n",
        if terms.is_empty() {
            "(empty)".into()
        } else {
            terms.join(" ")
        }
    )
}

fn run(net: &mut Option<Net>, tc: &TestCase) -> String {
    if tc.directive == "add-nodes" {
        *net = Some(add_nodes(tc));
        return "ok\n".into();
    }
    let net = net.as_mut().expect("add-nodes first");
    match tc.directive.as_str() {
        "campaign" => net.campaign(id(tc)),
        "tick" => {
            for _ in 0..arg(tc, "n").unwrap_or(1u32) {
                net.tick(id(tc));
            }
        }
        "tick-all" => {
            // Each round: every live node ticks, then the network settles.
            for _ in 0..arg(tc, "n").unwrap_or(1u32) {
                net.tick_all(1);
                net.stabilize();
            }
        }
        "tick-heartbeat" => {
            let hb = net.node(id(tc)).cfg.heartbeat_ticks;
            for _ in 0..hb {
                net.tick(id(tc));
            }
        }
        "propose" => {
            let count: usize = arg(tc, "count").unwrap_or(1);
            let data: String = arg(tc, "data").unwrap_or_else(|| "x".into());
            let batch = (0..count)
                .map(|i| format!("{data}{i}").into_bytes())
                .collect();
            return match net.propose_many(id(tc), batch) {
                Ok((index, term)) => format!("proposed up to index {index} term {term}\n"),
                Err(e) => format!("error: {e}\n"),
            };
        }
        "add-joining" => net.add_joining(id(tc), config(id(tc))),
        "conf-change" => {
            return match net.conf_change(id(tc), conf_change(tc)) {
                Ok((index, term)) => format!("proposed at index {index} term {term}\n"),
                Err(e) => format!("error: {e}\n"),
            };
        }
        "conf" => {
            let mut out = String::new();
            for n in net.nodes.values() {
                if let Some(r) = n.raw.as_ref() {
                    out.push_str(&format!("{}: {}\n", n.id, describe_conf(r.conf_state())));
                }
            }
            return out;
        }
        "transfer-leader" => {
            let to: u64 = arg(tc, "to").expect("to=M");
            if let Err(e) = net.transfer_leader(id(tc), to) {
                return format!("error: {e}\n");
            }
        }
        "read-index" => {
            let ctxs: Vec<&[u8]> = tc.args["ctx"].iter().map(|c| c.as_bytes()).collect();
            if let Err(e) = net.read_index(id(tc), &ctxs) {
                return format!("error: {e}\n");
            }
        }
        "reads" => {
            let n = net.node(id(tc));
            let mut out = String::new();
            for r in n.read_states.drain(..) {
                out.push_str(&format!(
                    "read {} at index {}\n",
                    String::from_utf8_lossy(&r.ctx),
                    r.index
                ));
            }
            for c in n.failed_reads.drain(..) {
                out.push_str(&format!("failed read {}\n", String::from_utf8_lossy(&c)));
            }
            return if out.is_empty() { "none\n".into() } else { out };
        }
        "stabilize" => {
            let quiet = tc.args.contains_key("quiet");
            let before = net.delivered;
            net.trace = Some(Vec::new());
            net.stabilize();
            let trace = net.trace.take().unwrap_or_default();
            net.assert_safe();
            return if quiet {
                format!("{} messages delivered\n", net.delivered - before)
            } else if trace.is_empty() {
                "no messages\n".into()
            } else {
                trace.join("\n") + "\n"
            };
        }
        "deliver" => {
            let mut out = Vec::new();
            net.trace = Some(Vec::new());
            for _ in 0..arg(tc, "n").unwrap_or(1u32) {
                if !net.deliver_one() {
                    break;
                }
            }
            out.extend(net.trace.take().unwrap_or_default());
            return out.join("\n") + "\n";
        }
        "isolate" => net.isolate(id(tc)),
        "partition" => {
            let groups: Vec<Vec<u64>> = tc
                .input
                .lines()
                .map(|l| l.split_whitespace().map(|x| x.parse().unwrap()).collect())
                .collect();
            let refs: Vec<&[u64]> = groups.iter().map(Vec::as_slice).collect();
            net.partition(&refs);
        }
        "heal" => net.heal(),
        "crash" => net.crash(id(tc)),
        "restart" => net.restart(id(tc)),
        "status" => return status(net),
        "log" => return log(net, id(tc)),
        "safety" => {
            return match net.checker.ok() {
                Ok(()) => "ok\n".into(),
                Err(e) => format!("violations:\n{e}\n"),
            };
        }
        other => panic!("unknown command {other}"),
    }
    "ok\n".into()
}

#[test]
fn scenarios() {
    walk("tests/testdata", |f| {
        let mut net = None;
        f.run(|tc| run(&mut net, tc));
    });
}
