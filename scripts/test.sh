#!/usr/bin/env bash
# Runs the whole test suite: unit, integration, simulation (SIM_SEEDS, default 1000) and doc tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
# Doc tests first: the runner's closing summary below is the suite's last word.
cargo test --workspace --doc
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --no-fail-fast
else
    cargo test --workspace --no-fail-fast --lib --bins --tests
fi
