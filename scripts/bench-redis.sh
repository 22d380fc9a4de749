#!/usr/bin/env bash
# Benchmarks the Raft KV server ("ours") against a single redis-server with
# --appendonly yes --appendfsync always, measured in the same run with redis-benchmark.
# See --help.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

usage() {
    cat <<'EOF'
Usage: scripts/bench-redis.sh [options]

Measures SET and GET throughput and p50/p99 latency with redis-benchmark against
  - a baseline: one redis-server on a free 127.0.0.1 port, --appendonly yes
    --appendfsync always --save '' (data in a temp dir, stopped at exit), and
  - ours: the node given by --target, or else a 3-node cluster started with
    "${RAFT_NODE:-target/release/raft-node} dev --nodes 3" (stopped at exit).
Each case (op x clients x pipeline) runs the baseline, then ours, one after the
other, so machine noise hits both alike. Prints the raw fdatasync rate of the disk
first, then a markdown table, the whole machine's CPU time per request of each server
(from /proc/stat: the server, redis-benchmark and anything else running; steadier than
the p99 when comparing two builds), and an acceptance line.

Options:
  --target HOST:PORT   client address of one node of an already running cluster
                       (a follower that forwards writes is fine)
  --baseline-only      measure only the baseline redis-server
  --clients "LIST"     client counts (default "1 16 64 256")
  --pipeline "LIST"    pipeline depths (default "1 16")
  --ops "LIST"         operations (default "set get")
  --requests N|auto    requests per run (default auto: short probe runs of each
                       server and case, then enough requests for about --seconds,
                       at least 2000 and 20 per client x pipeline, at most 5,000,000;
                       each server gets its own count)
  --seconds S          target length of one run with --requests auto (default 4)
  --rounds N           run every case N times, alternating the two servers (default 1);
                       the table then shows medians, the ratios are the medians of the
                       rounds' ratios, and every round's ratios are listed below it
  --timeout SECS       give up on one redis-benchmark run after SECS (default 300)
  --no-prefill         do not write the 100000 keys GET reads before the GET cases
  --json FILE          also write the results as JSON to FILE
  --workdir DIR        where the temp dir (data dirs, logs) goes (default $TMPDIR or
                       /tmp); the fdatasync figures are for this disk
  --keep               keep the temp dir (logs, raw CSV) instead of removing it
  --via-follower       with the self-started cluster, send the load to a follower
                       (writes forwarded to the leader) instead of the leader
  -h, --help           this text

Environment:
  RAFT_NODE   the node binary for the self-started cluster (default
              target/release/raft-node, relative to the repo root)
  RAFT_NODES  node count for the self-started cluster (default 3)
  RAFT_CONFIG a TOML file of node settings for the self-started cluster
              (passed as "dev --config"; e.g. snapshot_interval = 10000000)
  The self-started cluster's client addresses are read from its stdout/stderr:
  lines with "client" followed by 127.0.0.1:PORT (see parse_client_addrs). The
  first one found is the target.

redis-benchmark runs as: -t set|get -c C -P N -n REQS -r 100000 -d 16 --csv -q.
It stops a run at the first error reply (redis-benchmark 7), which the table
shows as FAIL with the server's message. Latencies are in ms; with -P 16 a
request's latency is that of its whole pipeline batch.

Acceptance: SET at 64 clients -P 1: ours/redis rps >= 0.3 and p99 ours/redis <= 3;
SET at 1 client -P 1: ours/redis rps >= 0.3.
EOF
}

die() { echo "bench-redis: $*" >&2; exit 1; }
log() { echo "bench-redis: $*" >&2; }

# ---------------------------------------------------------------- arguments
TARGET=""
BASELINE_ONLY=0
VIA_FOLLOWER=0
CLIENTS="1 16 64 256"
PIPELINES="1 16"
OPS="set get"
REQUESTS="auto"
SECONDS_PER_RUN=4
ROUNDS=1
RUN_TIMEOUT=300
PREFILL=1
JSON_OUT=""
WORK_PARENT="${TMPDIR:-/tmp}"
KEEP=0
KEYSPACE=100000
VALUE_SIZE=16

need_arg() { [ "$#" -ge 2 ] || die "$1 needs a value (see --help)"; }
while [ "$#" -gt 0 ]; do
    case "$1" in
        --target) need_arg "$@"; TARGET="$2"; shift 2 ;;
        --baseline-only) BASELINE_ONLY=1; shift ;;
        --via-follower) VIA_FOLLOWER=1; shift ;;
        --clients) need_arg "$@"; CLIENTS="$2"; shift 2 ;;
        --pipeline | --pipelines) need_arg "$@"; PIPELINES="$2"; shift 2 ;;
        --ops) need_arg "$@"; OPS="$2"; shift 2 ;;
        --requests) need_arg "$@"; REQUESTS="$2"; shift 2 ;;
        --seconds) need_arg "$@"; SECONDS_PER_RUN="$2"; shift 2 ;;
        --rounds) need_arg "$@"; ROUNDS="$2"; shift 2 ;;
        --timeout) need_arg "$@"; RUN_TIMEOUT="$2"; shift 2 ;;
        --no-prefill) PREFILL=0; shift ;;
        --json) need_arg "$@"; JSON_OUT="$2"; shift 2 ;;
        --workdir) need_arg "$@"; WORK_PARENT="$2"; shift 2 ;;
        --keep) KEEP=1; shift ;;
        -h | --help) usage; exit 0 ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
done

is_uint() { [[ "$1" =~ ^[1-9][0-9]*$ ]]; }
read -r -a CLIENT_LIST <<<"$CLIENTS"
read -r -a PIPE_LIST <<<"$PIPELINES"
read -r -a OP_LIST <<<"$OPS"
[ "${#CLIENT_LIST[@]}" -gt 0 ] || die "--clients is empty"
[ "${#PIPE_LIST[@]}" -gt 0 ] || die "--pipeline is empty"
[ "${#OP_LIST[@]}" -gt 0 ] || die "--ops is empty"
for v in "${CLIENT_LIST[@]}" "${PIPE_LIST[@]}"; do
    is_uint "$v" || die "not a positive integer: $v"
done
for v in "${OP_LIST[@]}"; do
    case "$v" in set | get) ;; *) die "--ops: only set and get are supported, not $v" ;; esac
done
[ "$REQUESTS" = auto ] || is_uint "$REQUESTS" || die "--requests: a positive integer or auto"
is_uint "$SECONDS_PER_RUN" || die "--seconds: a positive integer"
is_uint "$ROUNDS" || die "--rounds: a positive integer"
is_uint "$RUN_TIMEOUT" || die "--timeout: a positive integer (seconds)"
if [ -n "$TARGET" ]; then
    [[ "$TARGET" =~ ^[^:]+:[0-9]+$ ]] || die "--target: expected HOST:PORT, got $TARGET"
    [ "$BASELINE_ONLY" -eq 0 ] || die "--target and --baseline-only exclude each other"
fi
if [ -n "$JSON_OUT" ]; then
    [ -d "$(dirname "$JSON_OUT")" ] || die "--json: the folder of $JSON_OUT does not exist"
    JSON_OUT="$(cd "$(dirname "$JSON_OUT")" && pwd)/$(basename "$JSON_OUT")"
fi

RAFT_BIN=""
RAFT_NODE_COUNT="${RAFT_NODES:-3}"
if [ "$BASELINE_ONLY" -eq 0 ] && [ -z "$TARGET" ]; then
    is_uint "$RAFT_NODE_COUNT" || die "RAFT_NODES: a positive integer"
    RAFT_BIN="${RAFT_NODE:-target/release/raft-node}"
    case "$RAFT_BIN" in
        /*) ;;
        */*) RAFT_BIN="$ROOT/$RAFT_BIN" ;;
        *) RAFT_BIN="$(command -v "$RAFT_BIN" || echo "$RAFT_BIN")" ;;
    esac
    [ -x "$RAFT_BIN" ] || die "no node binary at $RAFT_BIN: build it (cargo build --release -p raft-node), or pass --target HOST:PORT or --baseline-only"
fi

# ---------------------------------------------------------------- tools
command -v python3 >/dev/null 2>&1 || die "python3 is needed"
command -v timeout >/dev/null 2>&1 || die "timeout (coreutils) is needed"
if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-benchmark >/dev/null 2>&1 ||
    ! command -v redis-cli >/dev/null 2>&1; then
    SUDO=()
    [ "$(id -u)" -eq 0 ] || SUDO=(sudo)
    log "installing redis-server redis-tools (apt-get)"
    apt_log="$(mktemp)"
    if ! "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server redis-tools \
        >"$apt_log" 2>&1; then
        # Fresh machines have no package lists yet.
        if ! { "${SUDO[@]}" apt-get update -qq && "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install \
            -y -qq redis-server redis-tools; } >"$apt_log" 2>&1; then
            tail -n 20 "$apt_log" >&2
            die "apt-get install redis-server redis-tools failed"
        fi
    fi
    rm -f "$apt_log"
fi

# ---------------------------------------------------------------- temp dir and cleanup
mkdir -p "$WORK_PARENT"
WORK="$(mktemp -d "$WORK_PARENT/bench-redis.XXXXXX")"
BASE_PID=""
RAFT_PID=""

stop_pid() { # stop_pid PID: TERM, wait up to 5 s, then KILL
    local pid="$1" i
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
}
stop_group() { # stop_group PGID: the whole process group, TERM then KILL
    local pgid="$1" i
    kill -TERM -- "-$pgid" 2>/dev/null || return 0
    for ((i = 0; i < 50; i++)); do
        kill -0 -- "-$pgid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -KILL -- "-$pgid" 2>/dev/null || true
}
cleanup() {
    local rc=$?
    trap - EXIT
    [ -z "$RAFT_PID" ] || stop_group "$RAFT_PID"
    [ -z "$BASE_PID" ] || stop_pid "$BASE_PID"
    wait 2>/dev/null || true
    if [ "$KEEP" -eq 1 ]; then
        log "kept $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# wait_ready HOST PORT SECS [PID]: PING answers PONG and a SET succeeds.
wait_ready() {
    local host="$1" port="$2" secs="$3" pid="${4:-}" deadline out
    deadline=$((SECONDS + secs))
    while :; do
        if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
            return 1
        fi
        out="$(timeout 5 redis-cli -h "$host" -p "$port" PING 2>/dev/null || true)"
        if [ "$out" = PONG ]; then
            out="$(timeout 5 redis-cli -h "$host" -p "$port" SET bench-redis:ready 1 2>/dev/null || true)"
            [ "$out" != OK ] || return 0
        fi
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 0.2
    done
}

# ---------------------------------------------------------------- fdatasync context
fdatasync_rates() {
    python3 - "$1" <<'PY'
import os, subprocess, sys, time
d = sys.argv[1]
try:
    fs = subprocess.run(["df", "--output=fstype,source", d], capture_output=True, text=True).stdout.split("\n")[1].split()
    where = f"{fs[0]} on {fs[1]}"
except Exception:
    where = "?"
buf = os.urandom(4096)
def run(path, prealloc):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    size = 16 << 20
    if prealloc:
        z = b"\0" * (1 << 20)
        for _ in range(size >> 20):
            os.write(fd, z)
        os.fsync(fd)
    n, lat, start = 0, [], time.perf_counter()
    while time.perf_counter() - start < 2.0:
        t = time.perf_counter()
        if prealloc:
            os.pwrite(fd, buf, (n * 4096) % size)
        else:
            os.write(fd, buf)
        os.fdatasync(fd)
        lat.append(time.perf_counter() - t)
        n += 1
    el = time.perf_counter() - start
    os.close(fd)
    os.unlink(path)
    lat.sort()
    p50 = lat[len(lat) // 2] * 1e3
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1e3
    return n / el, p50, p99
for name, pre in (("new file, appending", False), ("preallocated (zero-filled) file, overwriting", True)):
    r, p50, p99 = run(os.path.join(d, "fdatasync.test"), pre)
    print(f"fdatasync 4 KiB ({where}, {d}), {name}: {r:,.0f}/s (p50 {p50:.3f} ms, p99 {p99:.3f} ms)")
PY
}

# ---------------------------------------------------------------- prefill for GET
# prefill HOST PORT: SET key:%012d (what -r 100000 draws) for the whole key space,
# pipelined 1000 at a time, so GET reads existing keys.
prefill() {
    python3 - "$1" "$2" "$KEYSPACE" "$VALUE_SIZE" <<'PY'
import socket, sys
host, port, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
s = socket.create_connection((host, port), timeout=30)
f = s.makefile("rb")
val = b"x" * size
batch = 1000
for lo in range(0, n, batch):
    hi = min(n, lo + batch)
    out = bytearray()
    for i in range(lo, hi):
        k = b"key:%012d" % i
        out += b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(k), k, len(val), val)
    s.sendall(out)
    for _ in range(hi - lo):
        line = f.readline()
        if not line:
            sys.exit(f"prefill: connection closed by {host}:{port}")
        if not line.startswith(b"+"):
            sys.exit(f"prefill: {host}:{port} answered {line.decode(errors='replace').strip()}")
s.close()
PY
}

# ---------------------------------------------------------------- ours: self-started cluster
# parse_client_addrs: reads the node's output on stdin, prints each client address once.
# Expects "client 127.0.0.1:PORT" (or "client addr 127.0.0.1:PORT", "client=..."); adapt here.
parse_client_addrs() {
    grep -oiE 'client[^0-9]{0,20}127\.0\.0\.1:[0-9]+' | grep -oE '127\.0\.0\.1:[0-9]+' | awk '!seen[$0]++' || true
}

start_cluster() {
    local bin="$RAFT_BIN" nodes="$RAFT_NODE_COUNT" deadline addrs=() a
    mkdir -p "$WORK/cluster"
    : >"$WORK/cluster.log"
    local extra=()
    if [ -n "${RAFT_CONFIG:-}" ]; then
        [ -r "$RAFT_CONFIG" ] || die "RAFT_CONFIG: cannot read $RAFT_CONFIG"
        extra=(--config "$(cd "$(dirname "$RAFT_CONFIG")" && pwd)/$(basename "$RAFT_CONFIG")")
    fi
    log "starting $bin dev --nodes $nodes ${extra[*]} in $WORK/cluster"
    # setsid: its own process group, so the cleanup stops every node it spawned.
    (cd "$WORK/cluster" && exec setsid "$bin" dev --nodes "$nodes" "${extra[@]}") >"$WORK/cluster.log" 2>&1 &
    RAFT_PID=$!
    deadline=$((SECONDS + 30))
    while :; do
        mapfile -t addrs < <(parse_client_addrs <"$WORK/cluster.log")
        [ "${#addrs[@]}" -lt "$nodes" ] || break
        if ! kill -0 "$RAFT_PID" 2>/dev/null; then
            tail -n 20 "$WORK/cluster.log" >&2
            die "the cluster exited before printing $nodes client addresses"
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            tail -n 20 "$WORK/cluster.log" >&2
            die "found ${#addrs[@]} of $nodes client addresses in the cluster's output after 30 s (see parse_client_addrs)"
        fi
        sleep 0.2
    done
    for a in "${addrs[@]}"; do
        wait_ready "${a%:*}" "${a##*:}" $((deadline - SECONDS > 5 ? deadline - SECONDS : 5)) "$RAFT_PID" || {
            tail -n 20 "$WORK/cluster.log" >&2
            die "node $a did not answer PING/SET within 30 s"
        }
    done
    # The leader by default (a client library pointed at the cluster finds it); with
    # --via-follower a follower, which forwards every write over QUIC.
    TARGET=""
    for a in "${addrs[@]}"; do
        role="$(redis-cli -h "${a%:*}" -p "${a##*:}" raft.info 2>/dev/null | tr -d '\r' | sed -n 's/^role://p')"
        if { [ "$VIA_FOLLOWER" -eq 0 ] && [ "$role" = leader ]; } ||
            { [ "$VIA_FOLLOWER" -eq 1 ] && [ "$role" = follower ]; }; then
            TARGET="$a"
            break
        fi
    done
    [ -n "$TARGET" ] || TARGET="${addrs[0]}"
    log "cluster up: ${addrs[*]} (target $TARGET)"
}

# ---------------------------------------------------------------- start
fdatasync_rates "$WORK" | tee "$WORK/fdatasync.txt"

mkdir -p "$WORK/redis"
BASE_PORT="$(free_port)"
redis-server --port "$BASE_PORT" --bind 127.0.0.1 --dir "$WORK/redis" \
    --appendonly yes --appendfsync always --save '' --daemonize no \
    >"$WORK/redis.log" 2>&1 &
BASE_PID=$!
wait_ready 127.0.0.1 "$BASE_PORT" 10 "$BASE_PID" || {
    tail -n 20 "$WORK/redis.log" >&2
    die "the baseline redis-server did not start"
}

if [ "$BASELINE_ONLY" -eq 0 ]; then
    if [ -n "$TARGET" ]; then
        wait_ready "${TARGET%:*}" "${TARGET##*:}" 30 ||
            die "--target $TARGET did not answer PING with PONG and SET with OK within 30 s"
    else
        start_cluster
    fi
fi

RESULTS="$WORK/results.tsv"
: >"$RESULTS"
echo "# baseline: $(redis-server --version | grep -oE 'v=[0-9.]+' | head -n1 | sed 's/v=/redis-server /') on 127.0.0.1:$BASE_PORT, appendonly yes, appendfsync always; ours: ${TARGET:-(not measured)}; $(redis-benchmark --version); $(nproc) cores"

# run_bench HOST PORT OP C P N OUT ERR: one redis-benchmark run; prints its exit code.
run_bench() {
    local rc=0
    timeout "$RUN_TIMEOUT" redis-benchmark -h "$1" -p "$2" -t "$3" -c "$4" -P "$5" -n "$6" \
        -r "$KEYSPACE" -d "$VALUE_SIZE" --csv -q >"$7" 2>"$8" </dev/null || rc=$?
    echo "$rc"
}

# csv_field CSV FIELD: that column of the last row, or nothing.
csv_field() {
    python3 - "$1" "$2" <<'PY'
import csv, sys
try:
    print(float(list(csv.DictReader(open(sys.argv[1])))[-1][sys.argv[2]]))
except Exception:
    pass
PY
}

# pick_n WHO HOST PORT OP C P: the request count for a run of about $SECONDS_PER_RUN s.
# --requests N: N. auto: probe runs (growing until one lasts 0.5 s, at most 4), then
# rps * seconds, at least 20 requests per connection slot (C*P) and 2000, at most
# 5,000,000, rounded to 2 significant digits.
pick_n() {
    local who="$1" host="$2" port="$3" op="$4" c="$5" p="$6" probe rps next i
    local base="$WORK/$op-c$c-P$p-$who.probe"
    if [ "$REQUESTS" != auto ]; then
        echo "$REQUESTS"
        return
    fi
    probe=$((c * p * 50 > 2000 ? c * p * 50 : 2000))
    rps=""
    for ((i = 0; i < 4; i++)); do
        run_bench "$host" "$port" "$op" "$c" "$p" "$probe" "$base.csv" "$base.err" >/dev/null
        rps="$(csv_field "$base.csv" rps)"
        # A failed probe: the real run fails too, with the error in the table.
        [ -n "$rps" ] || break
        next="$(python3 -c '
import sys
n, rps = int(sys.argv[1]), float(sys.argv[2])
secs = n / rps
print(0 if secs >= 0.5 else int(min(n * 10, n * 0.6 / max(secs, 1e-3))))' "$probe" "$rps")"
        [ "$next" -ne 0 ] || break
        probe="$next"
    done
    [ -n "$rps" ] || rps=$((probe / SECONDS_PER_RUN))
    python3 -c '
import math, sys
rps, secs, slots = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
n = max(rps * secs, slots * 20, 2000)
n = min(n, 5_000_000)
e = 10 ** max(0, int(math.log10(n)) - 1)
print(int(round(n / e) * e))' "$rps" "$SECONDS_PER_RUN" $((c * p))
}

# bench ROUND WHO HOST PORT OP C P: run (the request count is picked in the first round and
# kept), record a row in $RESULTS.
declare -A PICKED=()
bench() {
    local round="$1" who="$2" host="$3" port="$4" op="$5" c="$6" p="$7" n out err rc key busy0 busy1 cpu
    key="$who-$op-$c-$p"
    if [ -z "${PICKED[$key]:-}" ]; then
        PICKED[$key]="$(pick_n "$who" "$host" "$port" "$op" "$c" "$p")"
    fi
    n="${PICKED[$key]}"
    out="$WORK/$op-c$c-P$p-$who-r$round.csv"
    err="$WORK/$op-c$c-P$p-$who-r$round.err"
    busy0="$(cpu_busy)"
    rc="$(run_bench "$host" "$port" "$op" "$c" "$p" "$n" "$out" "$err")"
    busy1="$(cpu_busy)"
    cpu="$(awk -v a="$busy0" -v b="$busy1" -v hz="$CLK_TCK" -v n="$n" 'BEGIN { printf "%.1f", (b - a) * 1e6 / hz / n }')"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$op" "$c" "$p" "$n" "$who" "$rc" "$out" "$err" "$round" "$cpu" >>"$RESULTS"
}

# cpu_busy: jiffies the whole machine has spent busy so far (user, nice, system, irq and
# softirq; not idle, iowait or steal). Per request it covers the server, redis-benchmark and
# anything else running, for both servers alike: a steadier figure than the p99 for
# comparing two builds, since it does not depend on which moment a stall falls in.
CLK_TCK="$(getconf CLK_TCK)"
cpu_busy() {
    awk '/^cpu / { print $2 + $3 + $4 + $7 + $8; exit }' /proc/stat
}

# summary_of ROUND WHO OP C P, right after that run's `bench`:
# "n=N: R rps, p99 X ms, CPU Y µs/req" or "n=N: FAIL"
summary_of() {
    local out="$WORK/$3-c$4-P$5-$2-r$1.csv" n cpu
    n="${PICKED[$2-$3-$4-$5]}"
    cpu="$(tail -n 1 "$RESULTS" | cut -f 10)"
    python3 - "$out" "$n" "$cpu" <<'PY'
import csv, sys
try:
    r = list(csv.DictReader(open(sys.argv[1])))[-1]
    print(f"n={int(sys.argv[2]):,}: {float(r['rps']):,.0f} rps, p99 {float(r['p99_latency_ms']):.3f} ms, "
          f"CPU {sys.argv[3]} µs/req")
except Exception:
    print(f"n={sys.argv[2]}: FAIL")
PY
}

for op in "${OP_LIST[@]}"; do
    if [ "$op" = get ] && [ "$PREFILL" -eq 1 ]; then
        log "prefilling $KEYSPACE keys for GET"
        prefill 127.0.0.1 "$BASE_PORT" || die "prefill of the baseline failed"
        if [ "$BASELINE_ONLY" -eq 0 ]; then
            prefill "${TARGET%:*}" "${TARGET##*:}" || die "prefill of $TARGET failed"
        fi
    fi
    for c in "${CLIENT_LIST[@]}"; do
        for p in "${PIPE_LIST[@]}"; do
            for ((round = 1; round <= ROUNDS; round++)); do
                bench "$round" redis 127.0.0.1 "$BASE_PORT" "$op" "$c" "$p"
                line="${op^^} c=$c P=$p"
                [ "$ROUNDS" -eq 1 ] || line+=" round $round"
                line+=": redis $(summary_of "$round" redis "$op" "$c" "$p")"
                if [ "$BASELINE_ONLY" -eq 0 ]; then
                    bench "$round" ours "${TARGET%:*}" "${TARGET##*:}" "$op" "$c" "$p"
                    line+=" | ours $(summary_of "$round" ours "$op" "$c" "$p")"
                fi
                log "$line"
            done
        done
    done
done

# ---------------------------------------------------------------- report
python3 - "$RESULTS" "$JSON_OUT" "$BASELINE_ONLY" "$TARGET" "$BASE_PORT" "$RUN_TIMEOUT" "$WORK/fdatasync.txt" <<'PY'
import csv, json, statistics, sys, time
results, json_out, baseline_only, target, base_port, run_timeout, fds = sys.argv[1:8]
baseline_only = baseline_only == "1"
FIELDS = ["rps", "avg_latency_ms", "min_latency_ms", "p50_latency_ms", "p95_latency_ms",
          "p99_latency_ms", "max_latency_ms"]

def load(rc, out, err):
    """One run: the CSV row as floats, or an error message."""
    try:
        rows = list(csv.DictReader(open(out)))
    except OSError:
        rows = []
    errtext = ""
    try:
        errlines = [l.strip() for l in open(err) if l.strip()]
        # "WARNING: Could not fetch server CONFIG" is only a warning; keep the rest.
        errtext = " / ".join(l for l in errlines if "Could not fetch server CONFIG" not in l)
    except OSError:
        pass
    if rc != "0" or not rows:
        why = "timed out after %ss" % run_timeout if rc == "124" else (errtext or "exit %s, no CSV row" % rc)
        return None, why
    r = rows[-1]
    try:
        return {k: float(r[k]) for k in FIELDS}, errtext
    except (KeyError, ValueError):
        return None, "unexpected CSV: %s" % open(out).read().strip()[:200]

def ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b

def median_of(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None

# Runs by case and round; a case's figures are the medians over its rounds (a failed round
# makes the case fail), its ratios the medians of the rounds' ratios (each round pairs the
# two servers back to back, so the machine's drift cancels within a round).
runs = {}
order = []
for line in open(results):
    op, c, p, n, who, rc, out, err, rnd, cpu = line.rstrip("\n").split("\t")
    key = (op, int(c), int(p))
    if key not in runs:
        runs[key] = {}
        order.append(key)
    res, note = load(rc, out, err)
    if res is not None:
        res["cpu_us_per_request"] = float(cpu)
    runs[key].setdefault(int(rnd), {})[who] = (int(n), res, note)

rows = []
cases = {}
for key in order:
    row = {"op": key[0].upper(), "clients": key[1], "pipeline": key[2], "rounds": []}
    for rnd in sorted(runs[key]):
        got = runs[key][rnd]
        r = got.get("redis", (0, None, ""))[1]
        o = got.get("ours", (0, None, ""))[1]
        row["rounds"].append({
            "redis": r, "ours": o,
            "rps_ratio": ratio(o and o["rps"], r and r["rps"]),
            "p99_ratio": ratio(o and o["p99_latency_ms"], r and r["p99_latency_ms"]),
        })
        for who, (n, res, note) in got.items():
            row[who + "_requests"] = n
            if note:
                row[who + "_error" if res is None else who + "_note"] = note
    for who in ("redis", "ours"):
        if not any(who in got for got in runs[key].values()):
            continue  # --baseline-only: no runs of ours
        got = [rd[who] for rd in row["rounds"]]
        row[who] = None if any(g is None for g in got) else {
            k: statistics.median(g[k] for g in got) for k in FIELDS + ["cpu_us_per_request"]}
    row["rps_ratio"] = median_of(rd["rps_ratio"] for rd in row["rounds"])
    row["p99_ratio"] = median_of(rd["p99_ratio"] for rd in row["rounds"])
    if len(row["rounds"]) == 1:
        del row["rounds"]
    rows.append(row)
    cases[key] = row

def f_rps(res):
    return "FAIL" if res is None else "%.0f" % res["rps"]
def f_ms(res, k):
    return "FAIL" if res is None else "%.3f" % res[k]
def f_ratio(x):
    return "-" if x is None else "%.2f" % x

print()
print("| op | clients | pipeline | redis rps | ours rps | ratio | redis p50 | ours p50 | redis p99 | ours p99 | p99 ratio |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for row in rows:
    r = row.get("redis")
    o = row.get("ours")
    ours = (lambda f, *a: "-") if baseline_only else (lambda f, *a: f(o, *a))
    print("| %s | %d | %d | %s | %s | %s | %s | %s | %s | %s | %s |" % (
        row["op"], row["clients"], row["pipeline"],
        f_rps(r), ours(f_rps), f_ratio(row["rps_ratio"]),
        f_ms(r, "p50_latency_ms"), ours(f_ms, "p50_latency_ms"),
        f_ms(r, "p99_latency_ms"), ours(f_ms, "p99_latency_ms"),
        f_ratio(row["p99_ratio"])))
print()
print("Latencies in ms (with -P 16, per pipeline batch). ratio = ours/redis rps; p99 ratio = ours/redis p99.")
for row in rows:
    if "rounds" in row and not baseline_only:
        print("%s c=%d P=%d, by round: ratio %s; p99 ratio %s" % (
            row["op"], row["clients"], row["pipeline"],
            " ".join(f_ratio(rd["rps_ratio"]) for rd in row["rounds"]),
            " ".join(f_ratio(rd["p99_ratio"]) for rd in row["rounds"])))
print("CPU per request, whole machine (servers, redis-benchmark and anything else running), µs:")
for row in rows:
    r, o = row.get("redis"), row.get("ours")
    line = "%s c=%d P=%d: redis %s" % (row["op"], row["clients"], row["pipeline"],
                                       "FAIL" if r is None else "%.1f" % r["cpu_us_per_request"])
    if not baseline_only:
        line += ", ours %s" % ("FAIL" if o is None else "%.1f" % o["cpu_us_per_request"])
        # A very short run may see no busy jiffy at all.
        if r is not None and o is not None and r["cpu_us_per_request"] > 0:
            line += " (%.2fx)" % (o["cpu_us_per_request"] / r["cpu_us_per_request"])
    print(line)
for row in rows:
    for who in ("redis", "ours"):
        if row.get(who + "_error"):
            print("FAIL %s c=%d P=%d %s: %s" % (row["op"], row["clients"], row["pipeline"], who, row[who + "_error"]))
        elif row.get(who + "_note"):
            print("note %s c=%d P=%d %s: %s" % (row["op"], row["clients"], row["pipeline"], who, row[who + "_note"]))

def verdict(x, ok):
    return "n/a" if x is None else ("PASS" if ok(x) else "FAIL")
c64 = cases.get(("set", 64, 1), {})
c1 = cases.get(("set", 1, 1), {})
acc = {
    "set_c64_p1_rps_ratio": c64.get("rps_ratio"),
    "set_c64_p1_p99_ratio": c64.get("p99_ratio"),
    "set_c1_p1_rps_ratio": c1.get("rps_ratio"),
}
v1 = verdict(acc["set_c64_p1_rps_ratio"], lambda x: x >= 0.3)
v2 = verdict(acc["set_c64_p1_p99_ratio"], lambda x: x <= 3)
v3 = verdict(acc["set_c1_p1_rps_ratio"], lambda x: x >= 0.3)
acc["pass"] = None if "n/a" in (v1, v2, v3) else (v1 == v2 == v3 == "PASS")
print()
print("SET c=64 P=1: ratio %s (>=0.3: %s), p99 ratio %s (<=3: %s); SET c=1: ratio %s (>=0.3 %s)" % (
    f_ratio(acc["set_c64_p1_rps_ratio"]), v1, f_ratio(acc["set_c64_p1_p99_ratio"]), v2,
    f_ratio(acc["set_c1_p1_rps_ratio"]), v3))

if json_out:
    doc = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "baseline": "redis-server 127.0.0.1:%s --appendonly yes --appendfsync always" % base_port,
        "ours": None if baseline_only else target,
        "fdatasync": [l.strip() for l in open(fds) if l.strip()],
        "rows": rows,
        "acceptance": acc,
    }
    with open(json_out, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
PY
