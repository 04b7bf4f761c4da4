#!/usr/bin/env bash
# Runs wsgate's load generator against wsgate, against the tokio +
# tokio-tungstenite peer (peer/) and, for handshakes, against the floor
# (examples/floor.rs), one fresh server process per workload, and prints
# the figures and their ratios. See BENCHMARKS.md.
#
#   scripts/bench.sh                  # everything, about 4 minutes
#   scripts/bench.sh handshake idle   # only these workloads
#   ROUNDS=1 DURATION=2 scripts/bench.sh handshake   # a dry run
#
# Workloads: handshake, refusal (handshakes whose token has a bad
# signature: each is answered 401; wsgate only), broadcast, latency, idle,
# burst (BURST_SENDERS
# senders each send one BURST_SIZE message at the same moment; loadgen's
# defaults), burst-big (the same with BURST_MESSAGES each: 32 x 6 x 60 KiB
# = 11.8 MB). A burst run passes when every reader that keeps reading got
# every message in order and none was closed: delivered = expected,
# in_order = true, fast_closed = 0 in the table. Sizes and knobs come from
# the environment:
#
#   LOG=info           wsgate's --log level (info, the default, logs a line
#                      per open and close, as users run it)
#   DURATION=10        seconds of load for handshake, broadcast, latency
#   CLIENTS=1000       clients in the broadcast room
#   SENDERS=10         senders among them
#   WINDOW=16          closed loop: unfinished messages per sender
#   RATE=20000         latency run: deliveries per second
#   IDLE=15000         idle connections
#   CONCURRENCY=32     handshakes in flight
#   BURST_SENDERS=32   burst: senders, each also reading
#   BURST_SIZE=60      burst: KiB per message
#   BURST_MESSAGES=6   burst-big: messages per sender (burst sends 1)
#   BURST_READERS=4    burst: connections that only read
#   BURST_STALLED=1    burst: connections that never read
#   PIN=latency        server on CPU 0, generator on CPU 1 (taskset) for
#                      the latency run only; PIN=all for every run, PIN=none
#   RT=1               latency run under SCHED_FIFO (chrt), so other
#                      tenants' builds cannot preempt either process
#   QUIET_WAIT=60      before each run, wait up to this many seconds for
#   QUIET_MAX=25       the rest of the machine to use under QUIET_MAX % of
#                      a core (the machine is shared; see BENCHMARKS.md)
#   ROUNDS=1           repeat everything; even rounds run the servers in
#                      reverse order; a table per round
#   SERVERS="wsgate floor peer peer-small peer-send"
#   BASELINE=PATH      another wsgate binary (an earlier commit's build),
#                      run as the server "baseline" with the same flags:
#                      SERVERS="wsgate baseline" compares two versions in
#                      one run
#
# The servers: wsgate; floor (handshake only: a deliberately empty server
# that reads to the blank line, writes a canned 101 and hangs up at the
# client's FIN; the table's "wsgate ÷ floor" row is how close wsgate's
# handshakes per server-CPU-second come to it, in the same run); peer (tokio + tokio-tungstenite, as in
# tokio-tungstenite's examples/server.rs); peer-small (the same with a 4 KiB
# read buffer, idle only); peer-send (the same with a flush per message,
# broadcast only). The peer has no JSON mode: its burst runs use text mode
# (--text), and it closes nobody, so its stalled reader stays open.
#
# Everything listens and connects on loopback only; every load loop is
# bounded in time; every process started here is stopped by its PID.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/bench-lib.sh
. "$ROOT/scripts/bench-lib.sh"
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
PEER_TARGET=${PEER_TARGET_DIR:-$ROOT/peer/target}
DURATION=${DURATION:-10}
CLIENTS=${CLIENTS:-1000}
SENDERS=${SENDERS:-10}
WINDOW=${WINDOW:-16}
RATE=${RATE:-20000}
IDLE=${IDLE:-15000}
CONCURRENCY=${CONCURRENCY:-32}
BURST_SENDERS=${BURST_SENDERS:-32}
BURST_SIZE=${BURST_SIZE:-60}
BURST_MESSAGES=${BURST_MESSAGES:-6}
BURST_READERS=${BURST_READERS:-4}
BURST_STALLED=${BURST_STALLED:-1}
PIN=${PIN:-latency}
RT=${RT:-1}
QUIET_WAIT=${QUIET_WAIT:-60}
QUIET_MAX=${QUIET_MAX:-25}
ROUNDS=${ROUNDS:-1}
SERVERS=${SERVERS:-wsgate floor peer peer-small peer-send}
LOG=${LOG:-info}
WORKLOADS=${*:-handshake refusal broadcast latency idle burst burst-big}
export WSGATE_SECRET=${WSGATE_SECRET:-$(random_secret)}

OUT=$TARGET/bench-results/$(date +%Y%m%d-%H%M%S)
mkdir -p "$OUT"

echo "== building (release)"
build_wsgate
cargo build --release --manifest-path "$ROOT/Cargo.toml" --example floor
CARGO_TARGET_DIR=$PEER_TARGET cargo build --release --manifest-path "$ROOT/peer/Cargo.toml"
WSGATE=$TARGET/release/wsgate
LOADGEN=$TARGET/release/examples/loadgen
FLOOR=$TARGET/release/examples/floor
PEER=$PEER_TARGET/release/wsgate-peer

# pinning WORKLOAD: sets SERVER_CPU and GEN_CPU (taskset prefixes).
pinning() {
    if [ "$(nproc)" -ge 2 ] && { [ "$PIN" = all ] || [ "$PIN" = "$1" ]; }; then
        SERVER_CPU=(taskset -c 0)
        GEN_CPU=(taskset -c 1)
    else
        SERVER_CPU=()
        GEN_CPU=()
    fi
}
realtime_prio

{
    echo "date:    $(date -u +%FT%TZ)"
    echo "commit:  $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet 2>/dev/null || echo ' (with local changes)')"
    echo "cpu:     $(nproc) x $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
    echo "kernel:  $(uname -r)"
    echo "rustc:   $(rustc --version)"
    echo "load:    $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min, before the runs)"
    echo "binary:  wsgate $(stat -c %s "$WSGATE") bytes, peer $(stat -c %s "$PEER") bytes"
} | tee "$OUT/machine.txt"

SERVER_PID=

trap stop_server EXIT

# start_server NAME: a fresh server on a free loopback port; sets PORT and
# SERVER_PID.
start_server() {
    PORT=$(free_port)
    local addr=127.0.0.1:$PORT
    case $1 in
        wsgate | baseline)
            local bin=$WSGATE
            if [ "$1" = baseline ]; then
                bin=${BASELINE:?set BASELINE to the binary to compare with}
            fi
            local extra=() flag
            # why: per-address upgrade, connection and per-connection
            # message limits exist to stop abuse; a benchmark from a few
            # addresses would trip them.
            for flag in --upgrade-rate --message-rate --max-conns-per-ip --max-unauth-conns-per-ip \
                --tls-handshake-rate; do
                if "$bin" --help 2>&1 | grep -q -- "$flag"; then
                    extra+=("$flag" 0)
                fi
            done
            "${SERVER_CPU[@]}" "$bin" --listen "$addr" --max-connections 19000 --log "$LOG" \
                "${extra[@]}" 2>>"$OUT/$1.stderr" &
            ;;
        floor)
            "${SERVER_CPU[@]}" "$FLOOR" --listen "$addr" 2>>"$OUT/$1.stderr" &
            ;;
        peer)
            "${SERVER_CPU[@]}" "$PEER" --listen "$addr" 2>>"$OUT/$1.stderr" &
            ;;
        peer-small)
            "${SERVER_CPU[@]}" "$PEER" --listen "$addr" --read-buffer 4096 2>>"$OUT/$1.stderr" &
            ;;
        peer-send)
            "${SERVER_CPU[@]}" "$PEER" --listen "$addr" --send-each 2>>"$OUT/$1.stderr" &
            ;;
    esac
    SERVER_PID=$!
    wait_listen "$PORT" "server $1"
}

# run ROUND SERVER WORKLOAD LOADGEN-ARGS...: one workload against a fresh
# server.
run() {
    local round=$1 server=$2 workload=$3
    shift 3
    wait_quiet
    pinning "$workload"
    start_server "$server"
    local log=$OUT/$server.$workload.$round.txt
    echo "-- round $round, $server: $workload"
    if [ "$workload" = latency ]; then
        # Both at real-time priority: the figure is the server's, not the
        # scheduler's choice of when to run it. Server CPU use is ~15 %.
        if [ ${#RT_PRIO[@]} -gt 0 ]; then
            chrt -f -p 10 "$SERVER_PID" >/dev/null
        fi
        timeout 120 "${GEN_CPU[@]}" "${RT_PRIO[@]}" "$LOADGEN" "$@" --addr "127.0.0.1:$PORT" \
            --server-pid "$SERVER_PID" | tee "$log" || true
    else
        timeout 300 "${GEN_CPU[@]}" "$LOADGEN" "$@" --addr "127.0.0.1:$PORT" \
            --server-pid "$SERVER_PID" | tee "$log" || true
    fi
    stop_server
}

for round in $(seq 1 "$ROUNDS"); do
    order=$SERVERS
    if [ $((round % 2)) = 0 ]; then
        order=$(echo "$SERVERS" | tr ' ' '\n' | tac | tr '\n' ' ')
    fi
    for w in $WORKLOADS; do
        for server in $order; do
            case $server/$w in
                peer-small/idle | peer-send/broadcast | floor/handshake) ;;
                peer-small/* | peer-send/* | floor/* | peer/refusal) continue ;;
            esac
            case $w in
                handshake)
                    run "$round" "$server" handshake handshake --duration "$DURATION" --concurrency "$CONCURRENCY" ;;
                refusal)
                    run "$round" "$server" refusal handshake --bad-signature --duration "$DURATION" \
                        --concurrency "$CONCURRENCY" ;;
                broadcast)
                    run "$round" "$server" broadcast broadcast --duration "$DURATION" --clients "$CLIENTS" \
                        --senders "$SENDERS" --window "$WINDOW" ;;
                latency)
                    run "$round" "$server" latency broadcast --duration "$DURATION" --clients "$CLIENTS" \
                        --senders "$SENDERS" --rate "$RATE" ;;
                idle)
                    run "$round" "$server" idle idle --connections "$IDLE" --hold 1 ;;
                burst | burst-big)
                    burst_args=(--senders "$BURST_SENDERS" --size "$BURST_SIZE"
                        --readers "$BURST_READERS" --stalled "$BURST_STALLED")
                    if [ "$w" = burst-big ]; then
                        burst_args+=(--messages "$BURST_MESSAGES")
                    else
                        burst_args+=(--messages 1)
                    fi
                    # why: the peer speaks text mode only.
                    if [ "$server" != wsgate ] && [ "$server" != baseline ]; then
                        burst_args+=(--text)
                    fi
                    run "$round" "$server" "$w" burst "${burst_args[@]}" ;;
                *)
                    echo "unknown workload $w" >&2
                    exit 2 ;;
            esac
        done
    done
done

# field SERVER WORKLOAD KEY: a value from the RESULT line of round $round's
# run ("-" if none).
field() {
    local f=$OUT/$1.$2.$round.txt
    if [ -f "$f" ]; then
        grep '^RESULT' "$f" | tr ' ' '\n' | sed -n "s/^$3=//p" | head -1 | grep . || echo -
    else
        echo -
    fi
}

ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN { if (a+0 > 0 && b+0 > 0) printf "%.2fx", a/b; else print "-" }'
}

# of_floor: round $round's wsgate ÷ floor, handshakes per server-CPU-second.
of_floor() {
    ratio "$(field wsgate handshake per_cpu_s)" "$(field floor handshake per_cpu_s)" | tr -d x
}

row() {
    local label=$1 workload=$2 key=$3 better=$4
    local w f p s e b r rb
    w=$(field wsgate "$workload" "$key")
    f=$(field floor "$workload" "$key")
    p=$(field peer "$workload" "$key")
    s=$(field peer-small "$workload" "$key")
    e=$(field peer-send "$workload" "$key")
    b=$(field baseline "$workload" "$key")
    case $better in
        higher) r=$(ratio "$w" "$p"); rb=$(ratio "$w" "$b") ;;
        lower) r=$(ratio "$p" "$w"); rb=$(ratio "$b" "$w") ;;
        *) r= rb= ;;
    esac
    printf '%-44s %12s %12s %12s %12s %12s %10s %12s %10s\n' "$label" "$w" "$f" "$p" "$s" "$e" "$r" \
        "$b" "$rb"
}

{
    echo
    echo "== results ($OUT)"
    for round in $(seq 1 "$ROUNDS"); do
        if [ "$ROUNDS" -gt 1 ]; then
            echo
            echo "round $round"
        fi
        printf '%-44s %12s %12s %12s %12s %12s %10s %12s %10s\n' "" wsgate floor peer peer-small \
            peer-send "vs peer" baseline "vs base"
        row "handshakes per server-CPU-second" handshake per_cpu_s higher
        printf '%-44s %12s\n' "handshakes per server-CPU-second, wsgate ÷ floor" "$(of_floor)"
        row "  server µs each in user space" handshake user_us lower
        row "  server µs each in the kernel" handshake sys_us lower
        row "handshakes per second (wall)" handshake per_s higher
        row "handshake p99 ms" handshake p99_ms lower
        row "  other tenants, % of a core" handshake other_cpu_pct info
        row "refusals (bad signature) per server-CPU-s" refusal refused_per_cpu_s higher
        printf '%-44s %12s\n' "  refusals ÷ handshakes, per server-CPU-s" \
            "$(ratio "$(field wsgate refusal refused_per_cpu_s)" "$(field wsgate handshake per_cpu_s)" | tr -d x)"
        row "  server µs each in user space" refusal user_us lower
        row "  server µs each in the kernel" refusal sys_us lower
        row "deliveries per server-CPU-second ($CLIENTS cl.)" broadcast per_cpu_s higher
        row "deliveries per second (wall)" broadcast per_s higher
        row "  lost deliveries" broadcast lost info
        row "  duplicated deliveries" broadcast duplicated info
        row "  reordered deliveries" broadcast reordered info
        row "  other tenants, % of a core" broadcast other_cpu_pct info
        row "latency p50 ms at $RATE deliveries/s" latency p50_ms lower
        row "latency p99 ms at $RATE deliveries/s" latency p99_ms lower
        row "latency p999 ms at $RATE deliveries/s" latency p999_ms lower
        row "  lost deliveries" latency lost info
        row "  other tenants, % of a core" latency other_cpu_pct info
        row "RSS bytes per idle connection ($IDLE)" idle bytes_per_conn lower
        row "  connections open" idle connections info
        for b in burst burst-big; do
            if [ "$b" = burst ]; then n=1; else n=$BURST_MESSAGES; fi
            row "$b ${BURST_SENDERS}x${n}x${BURST_SIZE}KiB: ms until all had all" "$b" ms lower
            row "  delivered" "$b" delivered info
            row "  expected" "$b" expected info
            row "  in order" "$b" in_order info
            row "  fast readers closed (must be 0)" "$b" fast_closed info
            row "  close codes seen by fast readers" "$b" close_codes info
            row "  stalled readers closed (of $BURST_STALLED)" "$b" stalled_closed info
            row "  server peak RSS KiB" "$b" peak_rss_kib lower
        done
    done
    echo "(ratios: wsgate against peer, and against baseline when BASELINE was run;"
    echo " 'x' > 1 means wsgate is better; wsgate ÷ floor: 1 would be the floor itself)"
    if [ "$ROUNDS" -gt 1 ]; then
        printf 'wsgate ÷ floor, handshakes per server-CPU-second, by round:'
        for round in $(seq 1 "$ROUNDS"); do
            printf ' %s' "$(of_floor)"
        done
        echo
    fi
} | tee "$OUT/summary.txt"
