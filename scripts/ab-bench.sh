#!/usr/bin/env bash
# Compares builds or settings of the server against each other, round by round, each round
# on a fresh 3-node cluster. See --help.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: scripts/ab-bench.sh [options] NAME=BINARY[,CONFIG] NAME=BINARY[,CONFIG] ...

For each round, and in it for each NAME in turn: starts "BINARY dev --nodes 3" (with
"--config CONFIG" if given) in a temp dir, finds the leader, warms it with 50,000 SETs,
then runs redis-benchmark -t set -c CLIENTS -n REQUESTS -r 100000 -d 16 on it and stops
the cluster. Prints each run's SET/s, p50, p99 (ms) and the whole machine's CPU time per
SET (µs, from /proc/stat: the nodes, redis-benchmark and anything else running), then the
medians per NAME. Alternating the builds round by round makes machine noise hit all alike.

Options:
  --rounds N      rounds (default 5)
  --requests N    SETs per run (default 200000)
  --clients C     redis-benchmark connections (default 64)
  -h, --help      this text

Example: scripts/ab-bench.sh old=/tmp/raft-node-old new=target/release/raft-node,nosnap.toml
EOF
}

die() { echo "ab-bench: $*" >&2; exit 1; }

ROUNDS=5
REQUESTS=200000
CLIENTS=64
SPECS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) ROUNDS="${2:?}"; shift 2 ;;
        --requests) REQUESTS="${2:?}"; shift 2 ;;
        --clients) CLIENTS="${2:?}"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *=*) SPECS+=("$1"); shift ;;
        *) die "unknown argument $1 (see --help)" ;;
    esac
done
for v in "$ROUNDS" "$REQUESTS" "$CLIENTS"; do
    [[ "$v" =~ ^[1-9][0-9]*$ ]] || die "not a positive integer: $v"
done
[ ${#SPECS[@]} -gt 0 ] || die "name at least one NAME=BINARY (see --help)"
for tool in redis-benchmark redis-cli; do
    command -v "$tool" >/dev/null || die "$tool is missing (scripts/install-deps.sh installs it)"
done

WORK="$(mktemp -d "${TMPDIR:-/tmp}/ab-bench.XXXXXX")"
CLUSTER=""
cleanup() {
    if [ -n "$CLUSTER" ]; then
        kill -INT "$CLUSTER" 2>/dev/null || true
        wait "$CLUSTER" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# The busy jiffies of /proc/stat's first line: user, nice, system, irq and softirq.
busy() { awk '/^cpu /{print $2+$3+$4+$7+$8; exit}' /proc/stat; }

run() { # NAME BINARY CONFIG ROUND
    local dir="$WORK/$1.$4" addrs leader="" port b0 b1 line
    mkdir -p "$dir"
    local -a config=()
    [ -z "$3" ] || config=(--config "$(realpath "$3")")
    # setsid: the cluster gets its own process group, and Ctrl-C here reaches it through
    # the trap only.
    (cd "$dir" && exec setsid "$2" dev --nodes 3 "${config[@]}") >"$dir/cluster.log" 2>&1 &
    CLUSTER=$!
    for _ in $(seq 150); do
        addrs="$(grep -oE 'client[^0-9]{0,20}127\.0\.0\.1:[0-9]+' "$dir/cluster.log" |
            grep -oE '[0-9]+$' | awk '!seen[$0]++' || true)"
        [ "$(echo "$addrs" | grep -c .)" -ge 3 ] && break
        kill -0 "$CLUSTER" 2>/dev/null || die "$1: the cluster exited: $(tail -5 "$dir/cluster.log")"
        sleep 0.2
    done
    for _ in $(seq 50); do
        for port in $addrs; do
            if redis-cli -p "$port" raft.info 2>/dev/null | tr -d '\r' | grep -qx 'role:leader'; then
                leader="$port"
            fi
        done
        [ -n "$leader" ] && break
        sleep 0.2
    done
    [ -n "$leader" ] || die "$1: no leader (logs in $dir)"
    redis-benchmark -p "$leader" -t set -c "$CLIENTS" -n 50000 -r 100000 -d 16 -q >/dev/null 2>&1
    b0="$(busy)"
    line="$(redis-benchmark -p "$leader" -t set -c "$CLIENTS" -n "$REQUESTS" -r 100000 -d 16 --csv 2>/dev/null | tail -1)"
    b1="$(busy)"
    kill -INT "$CLUSTER" 2>/dev/null || true
    wait "$CLUSTER" 2>/dev/null || true
    CLUSTER=""
    # CSV: "SET",rps,avg,min,p50,p95,p99,max. A jiffy is 1/100 s.
    echo "$line" | tr -d '"' | awk -F, -v n="$1" -v r="$4" -v b=$((b1 - b0)) -v q="$REQUESTS" \
        '{printf "%s %s %.0f %.3f %.3f %.1f\n", n, r, $2, $5, $7, b * 1e4 / q}'
}

echo "name round SET/s p50 p99 cpu_us_per_set"
for round in $(seq "$ROUNDS"); do
    for spec in "${SPECS[@]}"; do
        name="${spec%%=*}"
        rest="${spec#*=}"
        bin="${rest%%,*}"
        cfg=""
        [ "$rest" = "$bin" ] || cfg="${rest#*,}"
        [ -x "$bin" ] || die "$name: $bin is not an executable"
        run "$name" "$bin" "$cfg" "$round" | tee -a "$WORK/results"
    done
done
echo "medians:"
median() { sort -n | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
for name in $(awk '!seen[$1]++ {print $1}' "$WORK/results"); do
    col() { awk -v n="$name" -v c="$1" '$1 == n {print $c}' "$WORK/results" | median; }
    echo "$name SET/s $(col 3) p50 $(col 4) p99 $(col 5) cpu_us_per_set $(col 6)" \
        "($(awk -v n="$name" '$1 == n' "$WORK/results" | wc -l) rounds)"
done
