# Shell functions scripts/bench.sh and scripts/bench-tls.sh share;
# sourced, not run.

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
