#!/usr/bin/env bash
# SET through the TLS client port next to the plain one, on the same 3-node cluster in the
# same run, with redis-benchmark. See --help.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

usage() {
    cat <<'EOF'
Usage: scripts/bench-tls.sh [--clients C] [--pipeline P] [--requests N] [--rounds R]

Starts "${RAFT_NODE:-target/release/raft-node} dev --nodes 3 --tls" (stopped at exit),
finds the leader, and runs
    redis-benchmark -t set -c C -P P -n N -r 100000 -d 16 --csv
against the leader's plain client port and its TLS client port (--tls --cacert),
alternating plain, TLS, plain, TLS ... for R rounds so machine noise hits both alike.
Prints every run, then the median throughput and p50/p99 of each and the TLS/plain
ratios. Defaults: 64 clients, pipeline 1, 100000 requests, 3 rounds.
EOF
}

die() { echo "bench-tls: $*" >&2; exit 1; }
log() { echo "bench-tls: $*" >&2; }

CLIENTS=64
PIPELINE=1
REQUESTS=100000
ROUNDS=3
while [ "$#" -gt 0 ]; do
    case "$1" in
        --clients) CLIENTS="${2:?--clients needs a value}"; shift 2 ;;
        --pipeline) PIPELINE="${2:?--pipeline needs a value}"; shift 2 ;;
        --requests) REQUESTS="${2:?--requests needs a value}"; shift 2 ;;
        --rounds) ROUNDS="${2:?--rounds needs a value}"; shift 2 ;;
        -h | --help) usage; exit 0 ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
done
for v in "$CLIENTS" "$PIPELINE" "$REQUESTS" "$ROUNDS"; do
    [[ "$v" =~ ^[1-9][0-9]*$ ]] || die "not a positive integer: $v"
done

BIN="${RAFT_NODE:-target/release/raft-node}"
case "$BIN" in /*) ;; *) BIN="$ROOT/$BIN" ;; esac
[ -x "$BIN" ] || die "no node binary at $BIN: build it (cargo build --release -p raft-node)"
command -v redis-benchmark >/dev/null 2>&1 || "$ROOT/scripts/install-deps.sh"
command -v python3 >/dev/null 2>&1 || die "python3 is needed"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/bench-tls.XXXXXX")"
DEV_PID=""
cleanup() {
    local rc=$?
    trap - EXIT
    if [ -n "$DEV_PID" ]; then
        kill -TERM "$DEV_PID" 2>/dev/null || true
        wait "$DEV_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$BIN" dev --nodes 3 --tls --dir "$WORK/dev" >"$WORK/dev.out" 2>&1 &
DEV_PID=$!
for _ in $(seq 1 600); do
    grep -q "Ctrl-C stops every node" "$WORK/dev.out" && break
    kill -0 "$DEV_PID" 2>/dev/null || { cat "$WORK/dev.out" >&2; die "raft-node dev exited"; }
    sleep 0.1
done
grep -q "Ctrl-C stops every node" "$WORK/dev.out" || die "the cluster did not start in 60 s"
CA="$WORK/dev/certs/ca.crt"

# "node N: client 127.0.0.1:P  tls 127.0.0.1:T ..." -> the leader's P and T.
LEADER=""
for _ in $(seq 1 300); do
    while read -r plain tls; do
        if redis-cli -p "$plain" RAFT.INFO 2>/dev/null | grep -q '^role:leader'; then
            LEADER="$plain $tls"
            break
        fi
    done < <(sed -nE 's/.*client 127\.0\.0\.1:([0-9]+)  tls 127\.0\.0\.1:([0-9]+).*/\1 \2/p' "$WORK/dev.out")
    [ -n "$LEADER" ] && break
    sleep 0.1
done
[ -n "$LEADER" ] || die "no leader within 30 s"
read -r PLAIN_PORT TLS_PORT <<<"$LEADER"
log "leader: plain port $PLAIN_PORT, TLS port $TLS_PORT"

run() { # run MODE -> "rps p50 p99"
    local tls=() port="$PLAIN_PORT"
    if [ "$1" = tls ]; then
        tls=(--tls --cacert "$CA")
        port="$TLS_PORT"
    fi
    redis-benchmark -h 127.0.0.1 -p "$port" "${tls[@]}" -t set -c "$CLIENTS" -P "$PIPELINE" \
        -n "$REQUESTS" -r 100000 -d 16 --csv 2>/dev/null |
        python3 -c '
import csv, sys
for row in csv.reader(sys.stdin):
    if row and row[0] == "SET":
        print(row[1], row[4], row[6])
        sys.exit(0)
sys.exit("no SET row in the redis-benchmark output")'
}

# One short warm-up of each (connections, caches, the first snapshot's timing).
REQUESTS_SAVED=$REQUESTS
REQUESTS=$((CLIENTS * PIPELINE * 50))
run plain >/dev/null
run tls >/dev/null
REQUESTS=$REQUESTS_SAVED

echo "SET, $CLIENTS clients, pipeline $PIPELINE, $REQUESTS requests per run, 3 nodes on loopback"
echo
echo "| round | port | ops/s | p50 ms | p99 ms |"
echo "| ---: | --- | ---: | ---: | ---: |"
: >"$WORK/results"
for round in $(seq 1 "$ROUNDS"); do
    for mode in plain tls; do
        read -r rps p50 p99 < <(run "$mode")
        echo "$mode $rps $p50 $p99" >>"$WORK/results"
        printf '| %s | %s | %s | %s | %s |\n' "$round" "$mode" "$rps" "$p50" "$p99"
    done
done
echo
python3 - "$WORK/results" <<'EOF'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
med = {m: [statistics.median(float(r[i]) for r in rows if r[0] == m) for i in (1, 2, 3)]
       for m in ("plain", "tls")}
(pr, p50, p99), (tr, t50, t99) = med["plain"], med["tls"]
print(f"median plain: {pr:,.0f} ops/s, p50 {p50:.2f} ms, p99 {p99:.2f} ms")
print(f"median TLS:   {tr:,.0f} ops/s, p50 {t50:.2f} ms, p99 {t99:.2f} ms")
print(f"TLS/plain: throughput {tr / pr:.2f}x, p99 {t99 / p99:.2f}x")
EOF
