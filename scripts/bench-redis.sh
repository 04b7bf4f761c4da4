#!/usr/bin/env bash
# Scale-out over Redis (issue 12; BENCHMARKS.md, "scale-out over Redis"):
# broadcast deliveries per second of total server-side CPU (every wsgate
# node and Redis together), p99 latency at a fixed rate, and what each
# chat message costs Redis, in one run:
#
#   one        one wsgate node, no Redis (the message is broadcast where
#              it arrives)
#   one-redis  one wsgate node with --redis: every message goes to Redis
#              (EVALSHA of the publish script) and comes back on the
#              node's subscription before it is broadcast
#   two        two wsgate nodes with --redis and --reuse-port on ONE port:
#              the kernel spreads the clients' connections over the two
#              (loadgen has one --addr; the split is counted per run)
#
# All three use the release build with --features redis. Every run gets
# fresh processes (redis-server with --save "" --appendonly no, and the
# node(s)). Server CPU is utime + stime from /proc/PID/stat of every
# server-side process (loadgen --server-pid NODE[,NODE],REDIS), all
# threads, read before and after the measured window. Redis's own cost:
# its CPU per message (the same window) and INFO commandstats (CONFIG
# RESETSTAT before the load, INFO commandstats after): calls per message
# and usec per EVALSHA.
#
#   scripts/bench-redis.sh                      # both workloads, 3 rounds
#   ROUNDS=1 DURATION=2 scripts/bench-redis.sh broadcast   # a dry run
#
# Workloads: broadcast (closed loop: WINDOW unfinished messages per
# sender), latency (fixed rate: RATE deliveries per second in all).
#
# Knobs (environment):
#
#   DURATION=10       seconds of load per run
#   CLIENTS=1000      clients in the room (over both nodes in "two")
#   SENDERS=10        senders among them
#   WINDOW=16         broadcast: unfinished messages per sender
#   RATE=20000        latency: deliveries per second (20 messages a second
#                     to 1,000 clients)
#   SETUPS="one one-redis two"
#   ROUNDS=3          repeat everything; round r starts the setups' order
#                     r-1 places further on (each setup runs first once
#                     in three rounds)
#   PIN=1             server side (node(s) and Redis) on CPU 0, the
#                     generator on CPU 1 (taskset): the server side has
#                     one core in every setup
#   RT=1              servers and generator under SCHED_FIFO (chrt -f 10),
#                     so other tenants cannot preempt them
#   QUIET_WAIT=60     before each run, wait up to this many seconds for
#   QUIET_MAX=25      the rest of the machine to use under QUIET_MAX % of
#                     a core (the machine is shared)
#   SYSCALLS=0        1: count the nodes' syscalls in every run (perf stat
#                     on syscall tracepoints, whole run, connecting
#                     included) to see how many frames one send carries;
#                     the tracepoints cost CPU, so keep such runs apart
#                     from the figures
#   REDIS_SERVER=redis-server  REDIS_CLI=redis-cli
#   BUILD=1           build first (release, --features redis)
#
# Everything listens and connects on loopback only; every load loop is
# bounded in time and count; every process started here is stopped by
# its PID.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/bench-lib.sh
. "$ROOT/scripts/bench-lib.sh"
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
DURATION=${DURATION:-10}
CLIENTS=${CLIENTS:-1000}
SENDERS=${SENDERS:-10}
WINDOW=${WINDOW:-16}
RATE=${RATE:-20000}
SETUPS=${SETUPS:-one one-redis two}
ROUNDS=${ROUNDS:-3}
PIN=${PIN:-1}
RT=${RT:-1}
QUIET_WAIT=${QUIET_WAIT:-60}
QUIET_MAX=${QUIET_MAX:-25}
REDIS_SERVER=${REDIS_SERVER:-redis-server}
REDIS_CLI=${REDIS_CLI:-redis-cli}
BUILD=${BUILD:-1}
SYSCALLS=${SYSCALLS:-0}
WORKLOADS=${*:-broadcast latency}
export WSGATE_SECRET=${WSGATE_SECRET:-$(random_secret)}

OUT=$TARGET/bench-results/redis-$(date +%Y%m%d-%H%M%S)
mkdir -p "$OUT"

if [ "$BUILD" = 1 ]; then
    echo "== building (release, --features redis)"
    build_wsgate redis
fi
WSGATE=$TARGET/release/wsgate
LOADGEN=$TARGET/release/examples/loadgen

for tool in "$REDIS_SERVER" "$REDIS_CLI"; do
    command -v "$tool" >/dev/null || { echo "no $tool (apt-get install redis-server)" >&2; exit 1; }
done
if [ "$SYSCALLS" = 1 ] && ! command -v perf >/dev/null; then
    echo "SYSCALLS=1 needs perf (linux-perf)" >&2
    exit 1
fi
if ! "$WSGATE" --help 2>&1 | grep -q -- --redis; then
    echo "$WSGATE has no --redis: build it with --features redis (or BUILD=1)" >&2
    exit 1
fi

if [ "$PIN" = 1 ] && [ "$(nproc)" -ge 2 ]; then
    SERVER_CPU=(taskset -c 0)
    GEN_CPU=(taskset -c 1)
else
    SERVER_CPU=()
    GEN_CPU=()
fi
realtime_prio

# why: per-address upgrade, connection and per-connection message limits
# exist to stop abuse; a benchmark from one address would trip them (the
# same flags as scripts/bench.sh, where this build has them).
LIFT=()
for flag in --upgrade-rate --message-rate --max-conns-per-ip --max-unauth-conns-per-ip \
    --tls-handshake-rate; do
    if "$WSGATE" --help 2>&1 | grep -q -- "$flag"; then
        LIFT+=("$flag" 0)
    fi
done

{
    echo "date:    $(date -u +%FT%TZ)"
    echo "commit:  $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet 2>/dev/null || echo ' (with local changes)')"
    echo "cpu:     $(nproc) x $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
    echo "kernel:  $(uname -r)"
    echo "rustc:   $(rustc --version)"
    echo "redis:   $("$REDIS_SERVER" --version)"
    echo "binary:  wsgate (--features redis) $(stat -c %s "$WSGATE") bytes"
    echo "flags:   --max-connections 19000 --log warn ${LIFT[*]} [--redis URL] [--reuse-port]"
    echo "pinning: $([ ${#SERVER_CPU[@]} -gt 0 ] && echo 'node(s) and Redis CPU 0, generator CPU 1' || echo none)$([ ${#RT_PRIO[@]} -gt 0 ] && echo ', all under chrt -f 10')"
    echo "load:    $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min, before the runs)"
} | tee "$OUT/machine.txt"

NODE_PIDS=()
REDIS_PID=
SPREAD_PID=
PERF_PID=
SYSCALL_EVENTS=syscalls:sys_enter_sendto,syscalls:sys_enter_write,syscalls:sys_enter_writev,syscalls:sys_enter_recvfrom,syscalls:sys_enter_read,syscalls:sys_enter_epoll_wait

# stop_pid PID: TERM, then wait (our own child) or poll.
stop_pid() {
    local pid=$1 i
    kill "$pid" 2>/dev/null || return 0
    if ! wait "$pid" 2>/dev/null; then
        for i in $(seq 1 100); do
            kill -0 "$pid" 2>/dev/null || return 0
            sleep 0.05
        done
    fi
}

stop_servers() {
    local p
    if [ -n "$SPREAD_PID" ]; then
        stop_pid "$SPREAD_PID"
        SPREAD_PID=
    fi
    if [ -n "$PERF_PID" ]; then
        stop_pid "$PERF_PID"
        PERF_PID=
    fi
    for p in "${NODE_PIDS[@]}"; do
        stop_pid "$p"
    done
    NODE_PIDS=()
    if [ -n "$REDIS_PID" ]; then
        stop_pid "$REDIS_PID"
        REDIS_PID=
    fi
}
trap stop_servers EXIT

# wait_listeners PORT N WHAT: until N sockets listen on PORT (5 s at most).
wait_listeners() {
    local port=$1 n=$2 what=$3 i
    for i in $(seq 1 100); do
        if [ "$(ss -ltnH "sport = :$port" | wc -l)" -ge "$n" ]; then
            return
        fi
        sleep 0.05
    done
    echo "$what did not start; see $OUT/*.stderr" >&2
    exit 1
}

rcli() {
    timeout 10 "$REDIS_CLI" -h 127.0.0.1 -p "$REDIS_PORT" "$@"
}

# start_redis LOG: a fresh redis-server on a free loopback port, no
# persistence; sets REDIS_PORT and REDIS_PID.
start_redis() {
    REDIS_PORT=$(free_port)
    mkdir -p "$OUT/redis-dir"
    "${SERVER_CPU[@]}" "${RT_PRIO[@]}" "$REDIS_SERVER" --port "$REDIS_PORT" --bind 127.0.0.1 \
        --save "" --appendonly no --dir "$OUT/redis-dir" --logfile "" \
        >>"$1" 2>&1 &
    REDIS_PID=$!
    wait_listeners "$REDIS_PORT" 1 redis-server
}

# start_nodes N REDIS(0|1) LOG: N wsgate nodes (N > 1: --reuse-port on one
# port); sets PORT and NODE_PIDS.
start_nodes() {
    local n=$1 redis=$2 log=$3 i extra=()
    PORT=$(free_port)
    if [ "$redis" = 1 ]; then
        extra+=(--redis "redis://127.0.0.1:$REDIS_PORT/0")
    fi
    if [ "$n" -gt 1 ]; then
        extra+=(--reuse-port)
    fi
    for i in $(seq 1 "$n"); do
        "${SERVER_CPU[@]}" "${RT_PRIO[@]}" "$WSGATE" --listen "127.0.0.1:$PORT" \
            --max-connections 19000 --log warn "${LIFT[@]}" "${extra[@]}" \
            2>>"$log.node$i.stderr" &
        NODE_PIDS+=($!)
        wait_listeners "$PORT" "$i" "wsgate node $i"
    done
    if [ "$redis" = 1 ]; then
        # Every node's link up: its subscription (sub=1) and its commands
        # connection, besides redis-cli's own (10 s at most).
        local subs conns
        for i in $(seq 1 200); do
            subs=$(rcli CLIENT LIST | grep -c ' sub=1 ' || true)
            conns=$(rcli CLIENT LIST | grep -vc 'cmd=client' || true)
            if [ "$subs" -ge "$n" ] && [ "$conns" -ge $((2 * n)) ]; then
                return
            fi
            sleep 0.05
        done
        echo "the nodes' Redis links did not come up (subscriptions $subs, connections $conns)" >&2
        exit 1
    fi
}

# threads PID...: "pid tid comm utime+stime ticks" for every thread.
threads() {
    local p t
    for p in "$@"; do
        for t in /proc/"$p"/task/*; do
            # comm may hold spaces: take it from between the parentheses.
            awk -v p="$p" -v t="${t##*/}" '{
                s = $0; a = index(s, "("); b = match(s, /\) [A-Z] /);
                comm = substr(s, a + 1, b - a - 1); gsub(/ /, "_", comm);
                split(substr(s, b + 2), f, " ");
                print p, t, comm, f[12] + f[13] }' "$t/stat" 2>/dev/null || true
        done
    done
}

# spread PORT FILE: once CLIENTS connections are established on PORT (40 s
# at most), how many each server process holds.
spread() {
    local port=$1 file=$2 deadline=$((SECONDS + 40))
    while [ "$(ss -tnH state established "( sport = :$port )" | wc -l)" -lt "$CLIENTS" ]; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            break
        fi
        sleep 0.5
    done
    ss -tnpH state established "( sport = :$port )" | grep -o 'pid=[0-9]*' | sort | uniq -c \
        >"$file"
}

# field_of LOG KEY: a value from LOG's RESULT line.
field_of() {
    grep '^RESULT' "$1" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$2=//p" | head -1 | grep . || echo 0
}

# run ROUND SETUP WORKLOAD: one workload against fresh server processes.
run() {
    local round=$1 setup=$2 workload=$3
    local base=$OUT/$setup.$workload.$round
    local log=$base.txt
    wait_quiet
    local nodes redis
    case $setup in
        one) nodes=1 redis=0 ;;
        one-redis) nodes=1 redis=1 ;;
        two) nodes=2 redis=1 ;;
        *)
            echo "unknown setup $setup" >&2
            exit 2 ;;
    esac
    if [ "$redis" = 1 ]; then
        start_redis "$base.redis.log"
    fi
    start_nodes "$nodes" "$redis" "$base"
    local pids
    pids=$(IFS=,; echo "${NODE_PIDS[*]}")
    if [ "$redis" = 1 ]; then
        pids=$pids,$REDIS_PID
        rcli CONFIG RESETSTAT >/dev/null
    fi
    echo "-- round $round, $setup: $workload (nodes ${NODE_PIDS[*]}$([ "$redis" = 1 ] && echo ", redis $REDIS_PID on $REDIS_PORT"); server PIDs $pids)"
    local args
    case $workload in
        broadcast)
            args=(broadcast --duration "$DURATION" --clients "$CLIENTS" --senders "$SENDERS"
                --window "$WINDOW") ;;
        latency)
            args=(broadcast --duration "$DURATION" --clients "$CLIENTS" --senders "$SENDERS"
                --rate "$RATE") ;;
        *)
            echo "unknown workload $workload" >&2
            exit 2 ;;
    esac
    # shellcheck disable=SC2086 # the PIDs are words
    threads ${pids//,/ } >"$base.threads.before"
    spread "$PORT" "$base.spread" &
    SPREAD_PID=$!
    if [ "$SYSCALLS" = 1 ]; then
        # --per-thread: the nodes' main loops apart from their link threads.
        perf stat --per-thread -x, -e "$SYSCALL_EVENTS" -p "$(IFS=,; echo "${NODE_PIDS[*]}")" \
            -o "$base.syscalls" &
        PERF_PID=$!
    fi
    timeout 300 "${GEN_CPU[@]}" "${RT_PRIO[@]}" "$LOADGEN" "${args[@]}" \
        --addr "127.0.0.1:$PORT" --server-pid "$pids" | tee "$log" || true
    # shellcheck disable=SC2086
    threads ${pids//,/ } >"$base.threads.after"
    # CPU per thread over the whole run (connecting included).
    awk 'NR == FNR { b[$1 " " $2] = $4; next }
        { d = ($4 - b[$1 " " $2]) / 100; if (d > 0) printf "%s%s(%d) %.2fs", sep, $3, $1, d; sep = ", " }
        END { print "" }' "$base.threads.before" "$base.threads.after" |
        sed 's/^/threads (whole run, CPU s): /' | tee -a "$log"
    wait "$SPREAD_PID" 2>/dev/null || true
    SPREAD_PID=
    if [ -n "$PERF_PID" ]; then
        kill -INT "$PERF_PID" 2>/dev/null || true
        wait "$PERF_PID" 2>/dev/null || true
        PERF_PID=
        # thread,count,,event,...: per thread, and deliveries per sendto.
        awk -F, -v d="$(field_of "$log" deliveries)" '
            $4 ~ /sys_enter_/ && $2 + 0 > 0 {
                ev = $4; sub(/.*sys_enter_/, "", ev); th = $1
                line[th] = line[th] " " ev "=" $2
                if (ev == "sendto") sends += $2
            }
            END {
                for (th in line) print "syscalls " th ":" line[th]
                if (sends > 0) printf "deliveries per sendto (all nodes): %.1f\n", d / sends
            }' "$base.syscalls" | tee -a "$log"
    fi
    if [ "$redis" = 1 ]; then
        rcli INFO commandstats | tr -d '\r' >"$base.commandstats"
    fi
    local p i=1
    for p in "${NODE_PIDS[@]}"; do
        echo "node $i (pid $p): $(awk -v p="$p" '$2 == "pid=" p { print $1 }' "$base.spread" \
            | tr -d ' ' | grep . || echo '?') connections" | tee -a "$log"
        i=$((i + 1))
    done
    stop_servers
}

for round in $(seq 1 "$ROUNDS"); do
    # shellcheck disable=SC2206
    list=($SETUPS)
    k=$(((round - 1) % ${#list[@]}))
    order=("${list[@]:k}" "${list[@]:0:k}")
    for w in $WORKLOADS; do
        for setup in "${order[@]}"; do
            run "$round" "$setup" "$w"
        done
    done
done

# field SETUP WORKLOAD ROUND KEY: a value from a run's RESULT line.
field() {
    local f=$OUT/$1.$2.$3.txt
    if [ -f "$f" ]; then
        grep '^RESULT' "$f" | tr ' ' '\n' | sed -n "s/^$4=//p" | head -1 | grep . || echo -
    else
        echo -
    fi
}

# sent SETUP WORKLOAD ROUND: messages the generator sent.
sent() {
    local f=$OUT/$1.$2.$3.txt
    sed -n 's/^sent \([0-9]*\) messages.*/\1/p' "$f" 2>/dev/null | head -1 | grep . || echo -
}

# redis_us SETUP WORKLOAD ROUND: Redis CPU (the last of the server PIDs) in
# µs per message sent.
redis_us() {
    local each n
    each=$(field "$@" server_cpu_each_s)
    n=$(sent "$@")
    case $1 in one) echo - ; return ;; esac
    echo "$each" | awk -F, -v n="$n" '{ if (n + 0 > 0 && NF > 1) printf "%.1f", 1e6 * $NF / n; else print "-" }'
}

# nodes_cpu SETUP WORKLOAD ROUND: the nodes' CPU seconds (Redis's last).
nodes_cpu() {
    local each
    each=$(field "$@" server_cpu_each_s)
    case $1 in
        one) echo "$each" ;;
        *) echo "$each" | awk -F, '{ s = ""; for (i = 1; i < NF; i++) s = s (i > 1 ? "+" : "") $i; print s "|" $NF }' ;;
    esac
}

# cmds SETUP WORKLOAD ROUND WHAT: from INFO commandstats: evalsha calls per
# message, all data commands (the script's and EVALSHA; not PING, INFO,
# CONFIG, CLIENT, SCRIPT, SELECT, SUBSCRIBE) per message, or usec per
# EVALSHA call.
cmds() {
    local f=$OUT/$1.$2.$3.commandstats n
    n=$(sent "$1" "$2" "$3")
    [ -f "$f" ] || { echo -; return; }
    awk -F'[:,=]' -v n="$n" -v what="$4" '
        /^cmdstat_/ {
            cmd = substr($1, 9); calls = $3; usec = $5
            if (cmd == "evalsha") { ev = calls; evus = usec }
            if (cmd !~ /^(ping|info|config|client|script|select|subscribe|hello|auth|command)/) all += calls
        }
        END {
            if (n + 0 <= 0) { print "-"; exit }
            if (what == "evalsha") printf "%.3f", ev / n
            else if (what == "all") printf "%.2f", all / n
            else if (ev > 0) printf "%.1f", evus / ev
            else print "-"
        }' "$f"
}

# conns SETUP WORKLOAD ROUND: connections per node, "a/b".
conns() {
    local f=$OUT/$1.$2.$3.txt
    sed -n 's/^node [0-9]* (pid [0-9]*): \(.*\) connections$/\1/p' "$f" 2>/dev/null | paste -sd/ | grep . || echo -
}

row() {
    local label=$1 workload=$2 round=$3 how=$4 s v line
    line=$(printf '%-44s' "$label")
    for s in $SETUPS; do
        case $how in
            redis_us) v=$(redis_us "$s" "$workload" "$round") ;;
            nodes_cpu) v=$(nodes_cpu "$s" "$workload" "$round") ;;
            evalsha | all | usec) v=$(cmds "$s" "$workload" "$round" "$how") ;;
            sent) v=$(sent "$s" "$workload" "$round") ;;
            conns) v=$(conns "$s" "$workload" "$round") ;;
            *) v=$(field "$s" "$workload" "$round" "$how") ;;
        esac
        line+=$(printf ' %16s' "$v")
    done
    echo "$line"
}

{
    echo
    echo "== results ($OUT)"
    for round in $(seq 1 "$ROUNDS"); do
        echo
        echo "round $round"
        line=$(printf '%-44s' "")
        for s in $SETUPS; do line+=$(printf ' %16s' "$s"); done
        echo "$line"
        for w in $WORKLOADS; do
            case $w in
                broadcast)
                    row "deliveries per server-CPU-s (closed loop)" broadcast "$round" per_cpu_s
                    row "  per second (wall)" broadcast "$round" per_s
                    row "  server side CPU, % of a core" broadcast "$round" server_cpu_pct
                    row "  CPU s: node(s)|redis" broadcast "$round" nodes_cpu
                    row "  connections per node" broadcast "$round" conns
                    row "  messages sent" broadcast "$round" sent
                    row "  Redis CPU, us per message" broadcast "$round" redis_us
                    row "  EVALSHA calls per message" broadcast "$round" evalsha
                    row "  Redis data commands per message" broadcast "$round" all
                    row "  usec per EVALSHA (commandstats)" broadcast "$round" usec
                    row "  generator CPU, % of a core" broadcast "$round" gen_cpu_pct
                    row "  other tenants, % of a core" broadcast "$round" other_cpu_pct
                    row "  lost / duplicated / reordered: lost" broadcast "$round" lost
                    row "    duplicated" broadcast "$round" duplicated
                    row "    reordered" broadcast "$round" reordered
                    row "    closed" broadcast "$round" closed
                    ;;
                latency)
                    row "p99 ms at $RATE deliveries/s" latency "$round" p99_ms
                    row "  p50 ms" latency "$round" p50_ms
                    row "  p999 ms" latency "$round" p999_ms
                    row "  max ms" latency "$round" max_ms
                    row "  server side CPU, % of a core" latency "$round" server_cpu_pct
                    row "  CPU s: node(s)|redis" latency "$round" nodes_cpu
                    row "  connections per node" latency "$round" conns
                    row "  messages sent" latency "$round" sent
                    row "  Redis CPU, us per message (coarse)" latency "$round" redis_us
                    row "  EVALSHA calls per message" latency "$round" evalsha
                    row "  usec per EVALSHA (commandstats)" latency "$round" usec
                    row "  other tenants, % of a core" latency "$round" other_cpu_pct
                    row "  lost" latency "$round" lost
                    row "    duplicated" latency "$round" duplicated
                    row "    reordered" latency "$round" reordered
                    row "    closed" latency "$round" closed
                    ;;
            esac
        done
    done
    echo
    echo "one: one node, no Redis; one-redis: one node with --redis; two: two nodes"
    echo "with --redis and --reuse-port on one port. Server CPU = every node + Redis."
    echo "Per-thread CPU of each run (whole run, connecting included):"
    echo "  $OUT/SETUP.WORKLOAD.ROUND.threads.{before,after}"
    # Every node warns that it serves the demo users (no --users): expected.
    warned=$(cat "$OUT"/*.stderr 2>/dev/null | grep -vc 'serving the demo users' || true)
    echo "node log lines (--log warn) besides the demo-users notice: $warned$([ "$warned" -gt 0 ] && echo " (see $OUT/*.stderr)")"
    grep -h 'WARN\|ERROR' "$OUT"/*.redis.log 2>/dev/null | grep -v 'overcommit_memory\|WARNING' | head -5 || true
} | tee "$OUT/summary.txt"
