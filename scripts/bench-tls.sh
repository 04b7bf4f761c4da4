#!/usr/bin/env bash
# TLS handshakes and broadcast deliveries per second of server CPU, three
# ways, in one run (issue 10; BENCHMARKS.md, "TLS handshakes and
# broadcast, three ways"):
#
#   a  tls    wsgate terminating TLS itself (--tls-cert/--tls-key)
#   b  nginx  nginx terminating TLS (deploy/nginx.conf, one worker) in
#             front of plain wsgate; server CPU = nginx's master and
#             worker + wsgate
#   c  plain  wsgate without TLS
#
# Every run gets fresh server processes. Server CPU is utime + stime from
# /proc/PID/stat of every server process (loadgen --server-pid
# PID,PID,...), read before and after the measured window. With PIN=1 the
# server side (wsgate, and nginx with it in setup b) is pinned to CPU 0 and
# the generator to CPU 1, so the server side has one core in every setup.
#
#   scripts/bench-tls.sh                       # both workloads, ~2 minutes
#   ROUNDS=2 scripts/bench-tls.sh handshake    # one workload, twice
#
# Knobs (environment):
#
#   DURATION=10       seconds of load per run
#   CONCURRENCY=32    handshakes in flight
#   CLIENTS=1000      broadcast: clients in the room
#   SENDERS=10        broadcast: senders among them
#   WINDOW=16         broadcast: unfinished messages per sender
#   SETUPS="tls nginx plain"
#   ROUNDS=1          repeat everything; even rounds run the setups in
#                     reverse order
#   HS_VERIFY=none    handshake runs: loadgen --tls-verify (none: the
#                     generator does not check the server's certificate
#                     and signature, which would make it, not the server,
#                     the bottleneck; the server's work is the same).
#                     Broadcast runs always verify (it is outside the
#                     measured window).
#   TLS_SUITE=        loadgen --tls-suite: aes128, aes256 or chacha20 to
#                     offer only that TLS 1.3 suite; empty: rustls' order
#                     (AES-256-GCM-SHA384 first, which both servers pick)
#   PIN=1             server side on CPU 0, generator on CPU 1 (taskset)
#   QUIET_WAIT=60     before each run, wait up to this many seconds for
#   QUIET_MAX=25      the rest of the machine to use under QUIET_MAX % of
#                     a core (the machine is shared)
#   TLS_DIR=DIR       use DIR/ca.pem, DIR/cert.pem, DIR/key.pem instead of
#                     a fresh test CA and P-256 certificate made here
#   NGINX=/usr/sbin/nginx
#   BUILD=1           build first (release, --features tls)
#
# Everything listens and connects on loopback only; every load loop is
# bounded in time; every process started here is stopped by its PID.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/bench-lib.sh
. "$ROOT/scripts/bench-lib.sh"
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
DURATION=${DURATION:-10}
CONCURRENCY=${CONCURRENCY:-32}
CLIENTS=${CLIENTS:-1000}
SENDERS=${SENDERS:-10}
WINDOW=${WINDOW:-16}
SETUPS=${SETUPS:-tls nginx plain}
ROUNDS=${ROUNDS:-1}
HS_VERIFY=${HS_VERIFY:-none}
TLS_SUITE=${TLS_SUITE:-}
PIN=${PIN:-1}
QUIET_WAIT=${QUIET_WAIT:-60}
QUIET_MAX=${QUIET_MAX:-25}
NGINX=${NGINX:-/usr/sbin/nginx}
BUILD=${BUILD:-1}
WORKLOADS=${*:-handshake broadcast}
export WSGATE_SECRET=${WSGATE_SECRET:-$(random_secret)}

OUT=$TARGET/bench-results/tls-$(date +%Y%m%d-%H%M%S)
mkdir -p "$OUT"

if [ "$BUILD" = 1 ]; then
    echo "== building (release, --features tls)"
    build_wsgate tls
fi
WSGATE=$TARGET/release/wsgate
LOADGEN=$TARGET/release/examples/loadgen

case " $SETUPS " in
    *" nginx "*)
        if [ ! -x "$NGINX" ]; then
            echo "no nginx at $NGINX (apt-get install nginx-light, or SETUPS without nginx)" >&2
            exit 1
        fi ;;
esac

# The certificates: a test CA and a P-256 leaf for 127.0.0.1, both
# servers using the same files.
if [ -n "${TLS_DIR:-}" ]; then
    PKI=$TLS_DIR
else
    PKI=$OUT/pki
    mkdir -p "$PKI"
    (
        cd "$PKI"
        openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ca.key 2>/dev/null
        openssl req -x509 -new -key ca.key -sha256 -days 2 -subj "/CN=wsgate bench CA" \
            -addext "basicConstraints=critical,CA:TRUE" \
            -addext "keyUsage=critical,keyCertSign,cRLSign" -out ca.pem
        openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out key.pem 2>/dev/null
        openssl req -new -key key.pem -subj "/CN=127.0.0.1" -out leaf.csr
        printf '%s\n' 'subjectAltName=IP:127.0.0.1,DNS:localhost' 'basicConstraints=CA:FALSE' \
            'keyUsage=critical,digitalSignature' 'extendedKeyUsage=serverAuth' >ext.cnf
        openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
            -sha256 -extfile ext.cnf -out cert.pem 2>/dev/null
    )
fi
for f in ca.pem cert.pem key.pem; do
    [ -f "$PKI/$f" ] || { echo "missing $PKI/$f" >&2; exit 1; }
done

if [ "$PIN" = 1 ] && [ "$(nproc)" -ge 2 ]; then
    SERVER_CPU=(taskset -c 0)
    GEN_CPU=(taskset -c 1)
else
    SERVER_CPU=()
    GEN_CPU=()
fi

{
    echo "date:    $(date -u +%FT%TZ)"
    echo "commit:  $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet 2>/dev/null || echo ' (with local changes)')"
    echo "cpu:     $(nproc) x $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
    echo "kernel:  $(uname -r)"
    echo "rustc:   $(rustc --version)"
    echo "nginx:   $("$NGINX" -v 2>&1 | sed 's/^nginx version: //') ($("$NGINX" -V 2>&1 | grep -o 'running with OpenSSL [^ ]*' || echo 'OpenSSL ?'))"
    echo "cert:    $(openssl x509 -in "$PKI/cert.pem" -noout -text | grep -m1 -o 'ASN1 OID: [a-z0-9]*' || echo '?'), from $PKI"
    echo "pinning: $([ ${#SERVER_CPU[@]} -gt 0 ] && echo 'server side CPU 0, generator CPU 1' || echo none)"
    echo "load:    $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min, before the runs)"
} | tee "$OUT/machine.txt"

WS_PID=
NGINX_PID=
NGINX_WORKERS=

# stop_pid PID: TERM, then wait (our own child) or poll (not ours).
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
    local w
    if [ -n "$NGINX_PID" ]; then
        stop_pid "$NGINX_PID"
        NGINX_PID=
        # The master stops its workers; make sure, by their PIDs.
        for w in ${NGINX_WORKERS//,/ }; do
            if kill -0 "$w" 2>/dev/null; then
                stop_pid "$w"
            fi
        done
        NGINX_WORKERS=
    fi
    if [ -n "$WS_PID" ]; then
        stop_pid "$WS_PID"
        WS_PID=
    fi
}
trap stop_servers EXIT


# start_wsgate tls|plain: sets WS_PORT and WS_PID.
start_wsgate() {
    WS_PORT=$(free_port)
    local tls=()
    if [ "$1" = tls ]; then
        tls=(--tls-cert "$PKI/cert.pem" --tls-key "$PKI/key.pem")
    fi
    # why: the per-address and per-connection limits exist to stop abuse;
    # a benchmark from a few addresses (or from nginx's one) trips them.
    "${SERVER_CPU[@]}" "$WSGATE" --listen "127.0.0.1:$WS_PORT" --max-connections 19000 --log warn \
        --upgrade-rate 0 --message-rate 0 --max-conns-per-ip 0 --max-unauth-conns-per-ip 0 \
        --tls-handshake-rate 0 "${tls[@]}" 2>>"$OUT/wsgate.stderr" &
    WS_PID=$!
    wait_listen "$WS_PORT" wsgate
}

# start_nginx: nginx with deploy/nginx.conf (its listen, upstream and
# certificate lines pointed here) in front of wsgate on WS_PORT; sets
# NGINX_PORT, NGINX_PID and NGINX_WORKERS.
start_nginx() {
    NGINX_PORT=$(free_port)
    local dir=$OUT/nginx
    rm -rf "$dir"
    mkdir -p "$dir/logs" "$dir/tmp"
    sed -e "s|server 127.0.0.1:8080;|server 127.0.0.1:$WS_PORT;|" \
        -e "s|listen 443 ssl;|listen 127.0.0.1:$NGINX_PORT ssl;|" \
        -e "s|/etc/ssl/wsgate/fullchain.pem|$PKI/cert.pem|" \
        -e "s|/etc/ssl/wsgate/privkey.pem|$PKI/key.pem|" \
        "$ROOT/deploy/nginx.conf" >"$dir/wsgate.conf"
    local want
    for want in "server 127.0.0.1:$WS_PORT;" "listen 127.0.0.1:$NGINX_PORT ssl;" \
        "ssl_certificate     $PKI/cert.pem;" "ssl_certificate_key $PKI/key.pem;"; do
        if ! grep -qF "$want" "$dir/wsgate.conf"; then
            echo "deploy/nginx.conf changed: no line '$want' after substitution" >&2
            exit 1
        fi
    done
    cat >"$dir/nginx.conf" <<EOF
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 8192; }
http {
    access_log off;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    include $dir/wsgate.conf;
}
EOF
    "${SERVER_CPU[@]}" "$NGINX" -p "$dir" -c "$dir/nginx.conf" -g 'daemon off;' \
        2>>"$OUT/nginx.stderr" &
    NGINX_PID=$!
    wait_listen "$NGINX_PORT" nginx
    local i
    for i in $(seq 1 100); do
        NGINX_WORKERS=$(tr -s ' ' '\n' 2>/dev/null <"/proc/$NGINX_PID/task/$NGINX_PID/children" |
            paste -sd, || true)
        if [ -n "$NGINX_WORKERS" ]; then
            break
        fi
        sleep 0.05
    done
    if ! [[ $NGINX_WORKERS =~ ^[0-9]+$ ]]; then
        echo "nginx: expected one worker, found '$NGINX_WORKERS'" >&2
        exit 1
    fi
}

# run ROUND SETUP WORKLOAD: one workload against fresh server processes.
run() {
    local round=$1 setup=$2 workload=$3
    local log=$OUT/$setup.$workload.$round.txt
    wait_quiet
    local addr pids tls=()
    case $setup in
        tls)
            start_wsgate tls
            addr=127.0.0.1:$WS_PORT
            pids=$WS_PID
            tls=(--tls-ca "$PKI/ca.pem") ;;
        nginx)
            start_wsgate plain
            start_nginx
            addr=127.0.0.1:$NGINX_PORT
            # wsgate first: loadgen reads RSS from the first PID, and the
            # table's wsgate share is the first of server_cpu_each_s.
            pids=$WS_PID,$NGINX_PID,$NGINX_WORKERS
            tls=(--tls-ca "$PKI/ca.pem") ;;
        plain)
            start_wsgate plain
            addr=127.0.0.1:$WS_PORT
            pids=$WS_PID ;;
        *)
            echo "unknown setup $setup" >&2
            exit 2 ;;
    esac
    if [ ${#tls[@]} -gt 0 ] && [ -n "$TLS_SUITE" ]; then
        tls+=(--tls-suite "$TLS_SUITE")
    fi
    echo "-- round $round, $setup: $workload (server PIDs $pids)"
    local args
    case $workload in
        handshake)
            args=(handshake --duration "$DURATION" --concurrency "$CONCURRENCY")
            if [ ${#tls[@]} -gt 0 ]; then
                tls+=(--tls-verify "$HS_VERIFY")
            fi ;;
        broadcast)
            args=(broadcast --duration "$DURATION" --clients "$CLIENTS" --senders "$SENDERS"
                --window "$WINDOW") ;;
        *)
            echo "unknown workload $workload" >&2
            exit 2 ;;
    esac
    timeout 300 "${GEN_CPU[@]}" "$LOADGEN" "${args[@]}" "${tls[@]}" --addr "$addr" \
        --server-pid "$pids" | tee "$log" || true
    stop_servers
}

for round in $(seq 1 "$ROUNDS"); do
    order=$SETUPS
    if [ $((round % 2)) = 0 ]; then
        order=$(echo "$SETUPS" | tr ' ' '\n' | tac | tr '\n' ' ')
    fi
    for w in $WORKLOADS; do
        for setup in $order; do
            run "$round" "$setup" "$w"
        done
    done
done
if [ -s "$OUT/nginx/logs/error.log" ]; then
    echo "(nginx logged warnings: $OUT/nginx/logs/error.log)"
fi

# field SETUP WORKLOAD ROUND KEY: a value from a run's RESULT line.
field() {
    local f=$OUT/$1.$2.$3.txt
    if [ -f "$f" ]; then
        grep '^RESULT' "$f" | tr ' ' '\n' | sed -n "s/^$4=//p" | head -1 | grep . || echo -
    else
        echo -
    fi
}

ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN { if (a+0 > 0 && b+0 > 0) printf "%.2f", a/b; else print "-" }'
}

# share SETUP WORKLOAD ROUND: % of the server side's CPU that wsgate used.
share() {
    local each
    each=$(field "$1" "$2" "$3" server_cpu_each_s)
    echo "$each" | awk -F, '{ t = 0; for (i = 1; i <= NF; i++) t += $i;
        if (NF > 1 && t > 0) printf "%.0f", 100 * $1 / t; else print "-" }'
}

row() {
    local label=$1 workload=$2 round=$3 key=$4 ratios=$5
    local a b c
    if [ "$key" = wsgate_share ]; then
        a=$(share tls "$workload" "$round")
        b=$(share nginx "$workload" "$round")
        c=$(share plain "$workload" "$round")
    else
        a=$(field tls "$workload" "$round" "$key")
        b=$(field nginx "$workload" "$round" "$key")
        c=$(field plain "$workload" "$round" "$key")
    fi
    if [ "$ratios" = yes ]; then
        printf '%-46s %12s %12s %12s %7s %7s %7s\n' "$label" "$a" "$b" "$c" \
            "$(ratio "$b" "$a")" "$(ratio "$c" "$a")" "$(ratio "$c" "$b")"
    else
        printf '%-46s %12s %12s %12s\n' "$label" "$a" "$b" "$c"
    fi
}

{
    echo
    echo "== results ($OUT)"
    for round in $(seq 1 "$ROUNDS"); do
        echo
        echo "round $round"
        printf '%-46s %12s %12s %12s %7s %7s %7s\n' "" "(a) tls" "(b) nginx" "(c) plain" b/a c/a c/b
        for w in $WORKLOADS; do
            case $w in
                handshake)
                    row "handshakes per server-CPU-second" handshake "$round" per_cpu_s yes
                    row "  per second (wall)" handshake "$round" per_s yes
                    row "  server side CPU, % of a core" handshake "$round" server_cpu_pct no
                    row "  of which wsgate, %" handshake "$round" wsgate_share no
                    row "  generator CPU, % of a core" handshake "$round" gen_cpu_pct no
                    row "  other tenants, % of a core" handshake "$round" other_cpu_pct no
                    row "  p99 ms (connect to 101)" handshake "$round" p99_ms no
                    row "  failed" handshake "$round" failed no
                    ;;
                broadcast)
                    row "deliveries per server-CPU-second ($CLIENTS cl.)" broadcast "$round" per_cpu_s yes
                    row "  per second (wall)" broadcast "$round" per_s yes
                    row "  server side CPU, % of a core" broadcast "$round" server_cpu_pct no
                    row "  of which wsgate, %" broadcast "$round" wsgate_share no
                    row "  generator CPU, % of a core" broadcast "$round" gen_cpu_pct no
                    row "  other tenants, % of a core" broadcast "$round" other_cpu_pct no
                    row "  lost deliveries" broadcast "$round" lost no
                    row "  duplicated" broadcast "$round" duplicated no
                    row "  reordered" broadcast "$round" reordered no
                    ;;
            esac
        done
    done
    echo
    echo "(a) wsgate --tls-cert; (b) nginx (1 worker) terminating TLS in front of plain"
    echo "wsgate, server CPU = nginx master + worker + wsgate; (c) plain wsgate, no TLS."
    echo "Ratios divide the per-second figures: b/a > 1 means nginx's setup does more."
    grep -h '^TLS negotiated' "$OUT"/*.txt 2>/dev/null | sort | uniq -c | sed 's/^ */TLS: /' || true
} | tee "$OUT/summary.txt"
