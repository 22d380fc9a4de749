#!/usr/bin/env bash
# Builds and starts a local 3-node cluster on 127.0.0.1 (Ctrl-C stops it).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
exec cargo run --release -p raft-node -- dev --nodes "${NODES:-3}"
