#!/usr/bin/env bash
# Handshakes and refusals of several wsgate binaries (say, one built at
# each commit of a change) beside the floor, in one run: what each step
# bought. The servers take turns, in a rotated order each round, pinned to
# CPU 0 with the load generator on CPU 1, at the default log level.
#
#   scripts/bench-steps.sh before=/tmp/wsgate.old after=target/release/wsgate
#   ROUNDS=4 DURATION=5 scripts/bench-steps.sh a=BIN b=BIN c=BIN
#
# Prints, per round and server: handshakes per server-CPU-second, that ÷
# the floor's in the same round, the server's µs per handshake in user
# space and in the kernel, refusals (bad signature) per server-CPU-second,
# that ÷ the same server's handshakes, and the server's µs per refusal in
# user space and in the kernel; then the medians over the rounds.
# Everything listens and connects on loopback; every process started here
# is stopped by its PID.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/bench-lib.sh
. "$ROOT/scripts/bench-lib.sh"
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-4}
CONCURRENCY=${CONCURRENCY:-32}
QUIET_WAIT=${QUIET_WAIT:-30}
QUIET_MAX=${QUIET_MAX:-25}
export WSGATE_SECRET=${WSGATE_SECRET:-$(random_secret)}
if [ "$#" -eq 0 ]; then
    echo "usage: scripts/bench-steps.sh NAME=WSGATE-BINARY ..." >&2
    exit 2
fi

cargo build --release --manifest-path "$ROOT/Cargo.toml" --example loadgen --example floor
LOADGEN=$TARGET/release/examples/loadgen
FLOOR=$TARGET/release/examples/floor
OUT=$TARGET/bench-results/steps-$(date +%Y%m%d-%H%M%S)
mkdir -p "$OUT"
PIN_SERVER=()
PIN_GEN=()
if [ "$(nproc)" -ge 2 ]; then
    PIN_SERVER=(taskset -c 0)
    PIN_GEN=(taskset -c 1)
fi

SERVER_PID=
trap stop_server EXIT

# field LINE KEY: a value of a RESULT line.
field() {
    echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p" | head -1
}

# measure NAME BINARY [LOADGEN-ARGS...]: one run; prints its RESULT line.
measure() {
    local name=$1 bin=$2 port
    shift 2
    port=$(free_port)
    if [ "$name" = floor ]; then
        "${PIN_SERVER[@]}" "$FLOOR" --listen "127.0.0.1:$port" 2>>"$OUT/floor.stderr" &
    else
        "${PIN_SERVER[@]}" "$bin" --listen "127.0.0.1:$port" --max-connections 19000 \
            --upgrade-rate 0 --message-rate 0 --max-conns-per-ip 0 --max-unauth-conns-per-ip 0 \
            2>>"$OUT/$name.stderr" &
    fi
    SERVER_PID=$!
    wait_listen "$port" "server $name"
    timeout 120 "${PIN_GEN[@]}" "$LOADGEN" handshake --duration "$DURATION" \
        --concurrency "$CONCURRENCY" "$@" --addr "127.0.0.1:$port" --server-pid "$SERVER_PID" |
        grep '^RESULT' || true
    stop_server
}

names=(floor)
bins=(-)
for arg in "$@"; do
    names+=("${arg%%=*}")
    bins+=("${arg#*=}")
done
n=${#names[@]}

{
    echo "commit: $(git -C "$ROOT" rev-parse --short HEAD) rounds=$ROUNDS duration=${DURATION}s concurrency=$CONCURRENCY"
    printf '%-6s %-12s %12s %8s %9s %9s %14s %8s %9s %9s\n' round server "hs/CPU-s" "÷ floor" "user µs" "kernel µs" \
        "refusals/CPU-s" "÷ hs" "user µs" "kernel µs"
} | tee "$OUT/steps.txt"
for round in $(seq 1 "$ROUNDS"); do
    floor_rate=
    for k in $(seq 0 $((n - 1))); do
        # why: each round starts one server later, so no binary always runs
        # first (or right after the same neighbour).
        j=$(((k + round - 1) % n))
        name=${names[$j]} bin=${bins[$j]}
        wait_quiet
        ok=$(measure "$name" "$bin")
        rate=$(field "$ok" per_cpu_s)
        refusals="- - -"
        if [ "$name" != floor ]; then
            bad=$(measure "$name" "$bin" --bad-signature)
            refusals="$(field "$bad" refused_per_cpu_s) $(field "$bad" user_us) $(field "$bad" sys_us)"
        fi
        echo "$round $name $rate $(field "$ok" user_us) $(field "$ok" sys_us) $refusals" >>"$OUT/raw.txt"
    done
    # The floor's figure of this round, for the ratios.
    floor_rate=$(awk -v r="$round" '$1 == r && $2 == "floor" { print $3 }' "$OUT/raw.txt")
    awk -v r="$round" -v f="$floor_rate" '$1 == r {
        ratio = (f + 0 > 0 && $3 + 0 > 0) ? sprintf("%.2f", $3 / f) : "-";
        own = ($6 + 0 > 0 && $3 + 0 > 0) ? sprintf("%.2f", $6 / $3) : "-";
        printf "%-6s %-12s %12s %8s %9s %9s %14s %8s %9s %9s\n", $1, $2, $3, ratio, $4, $5, $6, own, $7, $8 }' \
        "$OUT/raw.txt" | tee -a "$OUT/steps.txt"
done
{
    echo "medians over $ROUNDS rounds (÷ floor, ÷ hs: the medians of the per-round ratios)"
    for name in "${names[@]}"; do
        awk -v s="$name" '
            $1 != p { p = $1 }
            $2 == "floor" { floor[$1] = $3 }
            $2 == s { rate[++n] = $3; user[n] = $4; sys[n] = $5; ref[n] = $6; round[n] = $1
                      own[n] = ($3 + 0 > 0) ? $6 / $3 : 0; ruser[n] = $7; rsys[n] = $8 }
            function median(a, m,   i, j, t, b) {
                for (i = 1; i <= m; i++) b[i] = a[i];
                for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (b[j] + 0 < b[i] + 0) { t = b[i]; b[i] = b[j]; b[j] = t }
                return (m % 2) ? b[(m + 1) / 2] : (b[m / 2] + b[m / 2 + 1]) / 2
            }
            END {
                for (i = 1; i <= n; i++) ratio[i] = (floor[round[i]] > 0) ? rate[i] / floor[round[i]] : 0;
                printf "%-6s %-12s %12.0f %8.2f %9.1f %9.1f", "median", s, median(rate, n),
                    median(ratio, n), median(user, n), median(sys, n)
                if (s == "floor") printf " %14s %8s %9s %9s\n", "-", "-", "-", "-"
                else printf " %14.0f %8.2f %9.1f %9.1f\n", median(ref, n), median(own, n), median(ruser, n), median(rsys, n)
            }' "$OUT/raw.txt"
    done
} | tee -a "$OUT/steps.txt"
