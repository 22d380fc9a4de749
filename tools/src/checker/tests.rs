//! The acceptance criteria of the checker issue, one test each, then randomized runs.

use std::time::{Duration, Instant};

use super::testkit::{Rng, Script, Workload, brute_force, mutate, simulate, tiny};
use super::{Budget, History, Report, Verdict, check, to_jsonl};

fn report(script: &Script) -> Report {
    check(&script.history(), &Budget::default())
}

fn assert_linearizable(script: &Script) {
    let report = report(script);
    assert!(report.is_linearizable(), "{report}");
}

/// The explanation of the only key's violation.
fn violation(script: &Script) -> String {
    let report = report(script);
    assert!(report.has_violation(), "{report}");
    match &report.keys[0].verdict {
        Verdict::Violation { explanation } => explanation.clone(),
        other => panic!("expected a violation, got {other:?}\n{report}"),
    }
}

// Linearizable histories pass.

#[test]
fn sequential_history_passes() {
    assert_linearizable(
        Script::new()
            .get(&[], 0, 1)
            .append("a", 2, 3)
            .get(&["a"], 4, 5)
            .append("b", 6, 7)
            .get(&["a", "b"], 8, 9),
    );
}

#[test]
fn concurrent_appends_pass_in_either_order() {
    for value in [["a", "b"], ["b", "a"]] {
        assert_linearizable(
            Script::new()
                .append("a", 0, 10)
                .append("b", 5, 15)
                .get(&value, 20, 30),
        );
    }
}

#[test]
fn concurrent_reads_see_an_append_before_or_after() {
    assert_linearizable(
        Script::new()
            .append("a", 0, 100)
            .get(&[], 10, 20)
            .get(&["a"], 30, 40)
            .get(&["a"], 110, 120),
    );
    // But not after a read that already saw it: that would be a read going back in time.
    violation(
        Script::new()
            .append("a", 0, 100)
            .get(&["a"], 10, 20)
            .get(&[], 30, 40),
    );
}

#[test]
fn unknown_append_that_happened_passes() {
    assert_linearizable(
        Script::new()
            .append_unknown("u", 0)
            .append("a", 10, 20)
            .get(&["u", "a"], 30, 40),
    );
}

#[test]
fn unknown_append_that_did_not_happen_passes() {
    assert_linearizable(
        Script::new()
            .append_unknown("u", 0)
            .append("a", 10, 20)
            .get(&["a"], 30, 40),
    );
}

#[test]
fn unknown_append_may_take_effect_long_after_its_client_gave_up() {
    assert_linearizable(
        Script::new()
            .append_unknown("u", 0)
            .append("a", 10, 20)
            .get(&["a"], 30, 40)
            .get(&["a", "u"], 50, 60),
    );
}

#[test]
fn fail_ops_are_ignored() {
    assert_linearizable(
        Script::new()
            .append_fail("f", 0, 10)
            .append("a", 5, 15)
            .get_fail(16, 17)
            .get_unknown(18)
            .get(&["a"], 20, 30),
    );
}

#[test]
fn append_reply_length_is_checked() {
    assert_linearizable(
        Script::new()
            .append_len("ab", 0, 1, 2)
            .append_len("cde", 2, 3, 5),
    );
    let explanation = violation(
        Script::new()
            .append_len("ab", 0, 1, 2)
            .append_len("cde", 2, 3, 4),
    );
    assert!(explanation.contains("4 bytes long"), "{explanation}");
    // Concurrent appends whose lengths fix their order, against a read that saw the other.
    violation(
        Script::new()
            .append_len("a", 0, 10, 1)
            .append_len("bb", 0, 10, 3)
            .get(&["bb", "a"], 20, 30),
    );
}

#[test]
fn unknown_append_seen_only_through_a_length_passes() {
    // No read returned "uu", but the reply of "aa" counts its bytes: it happened, first.
    assert_linearizable(
        Script::new()
            .append_unknown("uu", 0)
            .append_len("aa", 5, 10, 4),
    );
}

// Violations are caught.

#[test]
fn stale_read_is_caught() {
    let explanation = violation(Script::new().append("a", 0, 10).get(&[], 20, 30).get(
        &["a"],
        40,
        50,
    ));
    assert!(explanation.contains("stale read"), "{explanation}");
    assert!(
        explanation.contains("#1 p1 get ok [] [20, 30]"),
        "{explanation}"
    );
    assert!(
        explanation.contains("#0 p0 append \"a\" ok [0, 10]"),
        "{explanation}"
    );
    // Without the later read, no read returned "a" at all: the same, seen from the append.
    let explanation = violation(Script::new().append("a", 0, 10).get(&[], 20, 30));
    assert!(explanation.contains("stale read"), "{explanation}");
}

#[test]
fn lost_acknowledged_append_is_caught() {
    let report = report(
        Script::new()
            .append("a", 0, 10)
            .append("b", 5, 15)
            .get(&["a"], 100, 110),
    );
    assert!(report.has_violation(), "{report}");
    assert_eq!(report.summary.missing_acknowledged_appends, 1);
    assert_eq!(
        report.keys[0].missing_acknowledged_appends,
        [super::OpId(1)]
    );
    let text = report.to_string();
    assert!(text.contains("lost acknowledged append"), "{text}");
    assert!(
        text.contains("1 acknowledged appends missing from the final read"),
        "{text}"
    );
}

#[test]
fn reads_disagreeing_on_order_are_caught() {
    let explanation = violation(
        Script::new()
            .append("a", 0, 50)
            .append("b", 0, 50)
            .get(&["a", "b"], 60, 70)
            .get(&["b", "a"], 60, 70),
    );
    assert!(
        explanation.contains("disagree on the order"),
        "{explanation}"
    );
    assert!(
        explanation.contains("#2 p2 get") && explanation.contains("#3 p3 get"),
        "{explanation}"
    );
}

#[test]
fn read_of_a_value_before_its_write_started_is_caught() {
    let explanation = violation(Script::new().get(&["t"], 0, 10).append("t", 20, 30));
    assert!(
        explanation.contains("read from the future"),
        "{explanation}"
    );
    // Also when the write never completed.
    violation(Script::new().get(&["t"], 0, 10).append_unknown("t", 20));
}

#[test]
fn duplicated_token_in_a_read_is_caught() {
    let explanation = violation(Script::new().append("a", 0, 10).get(&["a", "a"], 20, 30));
    assert!(
        explanation.contains("returned \"a\" twice"),
        "{explanation}"
    );
}

#[test]
fn token_no_append_wrote_is_caught() {
    let report = report(
        Script::new()
            .append("a", 0, 10)
            .get(&["a", "x", "y"], 20, 30),
    );
    assert!(report.has_violation(), "{report}");
    assert_eq!(report.summary.unwritten_tokens, 2);
    assert_eq!(report.keys[0].unwritten_tokens, ["x", "y"]);
}

#[test]
fn token_of_a_failed_append_in_a_read_is_caught() {
    let explanation = violation(Script::new().append_fail("a", 0, 10).get(&["a"], 20, 30));
    assert!(
        explanation.contains("but its append failed"),
        "{explanation}"
    );
}

#[test]
fn keys_are_checked_independently() {
    let mut script = Script::new();
    script.key("good").append("a", 0, 10).get(&["a"], 20, 30);
    script.key("bad").append("b", 0, 10).get(&[], 20, 30);
    script
        .key("other")
        .append("c", 0, 10)
        .append_fail("d", 0, 10)
        .get_unknown(11);
    let report = report(&script);
    let verdicts: Vec<_> = report
        .keys
        .iter()
        .map(|k| (k.key.as_str(), matches!(k.verdict, Verdict::Ok)))
        .collect();
    assert_eq!(verdicts, [("bad", false), ("good", true), ("other", true)]);
    let s = report.summary;
    assert_eq!((s.ops, s.ok, s.fail, s.unknown), (7, 5, 1, 1));
    assert_eq!((s.keys_ok, s.keys_violated, s.keys_inconclusive), (2, 1, 0));
    assert_eq!(s.missing_acknowledged_appends, 1);
}

// The budget.

/// `unknown` appends of even byte lengths, all concurrent, and an ok append whose replied
/// length needs an odd sum: no subset fits, and the search has no way to know but to try
/// them all (2^unknowns configurations).
fn subset_sum(unknowns: usize, reply: u64) -> Script {
    let mut script = Script::new();
    for i in 0..unknowns {
        let token = format!("u{i:02}{}", "x".repeat(2 * i + 1));
        script.append_unknown(&token, i as u64);
    }
    script.append_len("aa", 100, 200, reply);
    script
}

#[test]
fn budget_yields_inconclusive_rather_than_a_hang() {
    let history = subset_sum(30, 999).history();
    let started = Instant::now();
    let report = check(
        &history,
        &Budget {
            max_steps: 20_000,
            max_time: None,
        },
    );
    assert!(
        matches!(report.keys[0].verdict, Verdict::Inconclusive { .. }),
        "{report}"
    );
    assert!(!report.is_linearizable() && !report.has_violation());
    assert_eq!(report.summary.keys_inconclusive, 1);
    assert!(
        report.to_string().contains("gave up after 20000 steps"),
        "{report}"
    );

    let by_time = Budget {
        max_steps: u64::MAX,
        max_time: Some(Duration::ZERO),
    };
    let report = check(&history, &by_time);
    assert!(
        matches!(report.keys[0].verdict, Verdict::Inconclusive { .. }),
        "{report}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn small_exhaustive_search_concludes() {
    // 2 + sizes of u00 and u02 (4 and 8 bytes): 14.
    assert_linearizable(&subset_sum(8, 14));
    violation(&subset_sum(8, 15));
}

// Randomized runs.

const REPLAY: &str = "CHECKER_SEED";

/// The seeds to run: `CHECKER_SEED` alone if set, else `CHECKER_RUNS` (default `runs`) seeds
/// from 0.
fn seeds(runs: u64) -> Vec<u64> {
    if let Ok(seed) = std::env::var(REPLAY) {
        return vec![seed.parse().expect("CHECKER_SEED is a number")];
    }
    let runs = std::env::var("CHECKER_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(runs);
    (0..runs).collect()
}

fn failure(test: &str, seed: u64, what: &str, events: &[super::Event], report: &Report) -> String {
    format!(
        "seed {seed}: {what}\n{report}\nreplay: {REPLAY}={seed} cargo test -p tools --lib \
         checker::tests::{test} -- --nocapture\nhistory:\n{}",
        to_jsonl(events)
    )
}

#[test]
fn random_linearizable_histories_pass() {
    for seed in seeds(300) {
        let mut rng = Rng::new(seed);
        let workload = Workload::small(&mut rng);
        let events = simulate(&mut rng, &workload);
        let history = History::parse_jsonl(&to_jsonl(&events)).expect("a simulated history parses");
        let report = check(&history, &Budget::default());
        assert!(
            report.is_linearizable(),
            "{}",
            failure(
                "random_linearizable_histories_pass",
                seed,
                "a linearizable history failed",
                &events,
                &report
            )
        );
    }
}

#[test]
fn random_mutated_histories_fail() {
    let mut mutated = 0;
    for seed in seeds(300) {
        let mut rng = Rng::new(seed);
        let workload = Workload::small(&mut rng);
        let mut events = simulate(&mut rng, &workload);
        let Some(what) = mutate(&mut rng, &mut events) else {
            continue;
        };
        mutated += 1;
        let history =
            History::from_events(events.clone()).expect("a mutation keeps the history well formed");
        let report = check(&history, &Budget::default());
        assert!(
            report.has_violation(),
            "{}",
            failure(
                "random_mutated_histories_fail",
                seed,
                &format!("missed: {what}"),
                &events,
                &report
            )
        );
    }
    assert!(mutated > 0, "no seed could be mutated");
}

#[test]
fn large_concurrent_history_is_checked_quickly() {
    let workload = Workload {
        processes: 10,
        keys: 2,
        ops: 6000,
        get_percent: 30,
        fail_percent: 3,
        unknown_percent: 3,
        len_percent: 50,
    };
    let mut rng = Rng::new(7);
    let mut events = simulate(&mut rng, &workload);
    let history = History::from_events(events.clone()).expect("well formed");
    let started = Instant::now();
    let report = check(&history, &Budget::default());
    let elapsed = started.elapsed();
    assert!(report.is_linearizable(), "{report}");
    assert!(report.summary.unknown > 100, "{:?}", report.summary);
    let steps: u64 = report.keys.iter().map(|k| k.steps).sum();
    eprintln!(
        "linearizable: {} ops checked in {elapsed:?}, {steps} steps",
        report.summary.ops
    );
    assert!(
        steps < 20 * report.summary.ops as u64,
        "the search should be nearly linear"
    );

    // A stale read in the middle: the search must fail there and backtrack over everything
    // before it, still in about linear time.
    let ops = history.operations();
    let stale = ops[ops.len() / 2..]
        .iter()
        .find(|r| {
            let last = r.read_value().and_then(|v| v.last());
            let append = last.and_then(|t| ops.iter().find(|a| a.token() == Some(t.as_str())));
            r.ok_at().is_some() && append.is_some_and(|a| a.ok_at().is_some_and(|at| at < r.invoke))
        })
        .expect("some read returned a token appended before it");
    let line = stale.complete_line.expect("an ok read completed") - 1;
    events[line].value.as_mut().map(Vec::pop);
    let history = History::from_events(events).expect("well formed");
    let started = Instant::now();
    let report = check(&history, &Budget::default());
    let elapsed = started.elapsed();
    assert_eq!(report.summary.keys_violated, 1, "{report}");
    let steps: u64 = report.keys.iter().map(|k| k.steps).sum();
    eprintln!(
        "violation: {} ops checked in {elapsed:?}, {steps} steps",
        report.summary.ops
    );
    assert!(
        steps < 20 * report.summary.ops as u64,
        "the search should be nearly linear"
    );
    let hint = format!("stale read: #{} p{} get", stale.id.0, stale.process.0);
    assert!(report.to_string().contains(&hint), "{report}");
}

#[test]
fn random_tiny_histories_agree_with_brute_force() {
    let (mut yes, mut no) = (0, 0);
    for seed in seeds(3000) {
        let mut rng = Rng::new(seed);
        let script = tiny(&mut rng);
        let history = script.history();
        let expected = brute_force(&history);
        let report = check(&history, &Budget::default());
        let what = if expected {
            "linearizable, but the checker said no"
        } else {
            "not linearizable, but the checker said yes"
        };
        assert_eq!(
            report.is_linearizable(),
            expected,
            "{}",
            failure(
                "random_tiny_histories_agree_with_brute_force",
                seed,
                what,
                &script.events(),
                &report
            )
        );
        assert!(
            report.is_linearizable() || report.has_violation(),
            "{report}"
        );
        if expected { yes += 1 } else { no += 1 }
    }
    eprintln!("{yes} linearizable, {no} not");
    if yes + no >= 1000 {
        assert!(
            yes * 10 > yes + no && no * 10 > yes + no,
            "both verdicts should be common"
        );
    }
}
