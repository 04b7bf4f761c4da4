# Shell functions scripts/bench.sh, bench-tls.sh and bench-redis.sh share;
# sourced, not run.

# A random 32-byte token secret in hex (the servers' WSGATE_SECRET).
random_secret() {
    head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n'
}

# Builds the release wsgate and the load generator, with cargo features
# "$@" (none for the default build).
build_wsgate() {
    local features=()
    if [ "$#" -gt 0 ]; then
        features=(--features "$*")
    fi
    cargo build --release "${features[@]}" --manifest-path "$ROOT/Cargo.toml" \
        --bin wsgate --example loadgen
}

# RT_PRIO: the prefix that runs a process at real-time priority when RT=1
# and the machine allows it (chrt -f 10), else nothing.
realtime_prio() {
    if [ "$RT" = 1 ] && chrt -f 10 true 2>/dev/null; then
        RT_PRIO=(chrt -f 10)
    else
        RT_PRIO=()
    fi
}

free_port() {
    local p
    for p in $(seq 20000 20999); do
        if ! ss -ltnH "sport = :$p" | grep -q .; then
            echo "$p"
            return
        fi
    done
    echo "no free port in 20000-20999" >&2
    exit 1
}

# CPU ticks (1/100 s) the whole machine has been busy.
machine_busy() {
    awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat
}

# Waits (at most QUIET_WAIT s) until everything else on the machine uses
# under QUIET_MAX % of one core over a second.
wait_quiet() {
    local deadline=$((SECONDS + QUIET_WAIT)) a b busy
    while :; do
        a=$(machine_busy)
        sleep 1
        b=$(machine_busy)
        busy=$((b - a))
        if [ "$busy" -le "$QUIET_MAX" ]; then
            return
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "   (the machine is still busy: ${busy}% of a core; running anyway)"
            return
        fi
        sleep 2
    done
}

# Stops the server started last (SERVER_PID), by its PID, and waits for it.
stop_server() {
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=
    fi
}

# Waits (at most 5 s) until something listens on loopback PORT; WHAT names
# it in the error that ends the script otherwise.
wait_listen() {
    local port=$1 what=$2 i
    for i in $(seq 1 100); do
        if ss -ltnH "sport = :$port" | grep -q .; then
            return
        fi
        sleep 0.05
    done
    echo "$what did not start; see its stderr in $OUT" >&2
    exit 1
}
