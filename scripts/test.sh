#!/usr/bin/env bash
# Runs the whole test suite: unit, integration, simulation (SIM_SEEDS, default 1000) and doc tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
# Doc tests first: the runner's closing summary below is the suite's last word.
cargo test --workspace --doc
if cargo nextest --version >/dev/null 2>&1; then
    # The chaos run (tools/tests/chaos.rs: a cluster under faults for a minute) first and
    # alone: beside raft-node's cluster tests on 2 cores, each would distort the other's
    # timing. Both commands build the same workspace targets (raft-node's binary, which
    # the chaos run starts, included), so the second builds nothing.
    chaos=0
    cargo nextest run --workspace --no-fail-fast --test-threads 1 \
        -E 'binary_id(tools::chaos)' || chaos=$?
    rest=0
    cargo nextest run --workspace --no-fail-fast -E 'not binary_id(tools::chaos)' || rest=$?
    if [ "$chaos" -ne 0 ]; then
        echo "the chaos run (tools/tests/chaos.rs) FAILED: see its output above" >&2
    fi
    [ "$chaos" -eq 0 ] && [ "$rest" -eq 0 ]
else
    cargo test --workspace --no-fail-fast --lib --bins --tests
fi
