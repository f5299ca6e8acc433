#!/usr/bin/env bash
# The HTTP/2 rows: h2load through nginx, HAProxy and hipache, over TLS (ALPN h2, ECDSA P-256) and
# h2c (prior knowledge), each proxy forwarding over HTTP/1.1 to the same nginx origin, on
# loopback, with 1 then 2 workers (HAProxy: threads), interleaved (nginx, HAProxy, hipache, then
# again) so that a shared machine's noise hits every target alike. Per run: req/s, CPU
# microseconds per request of the proxy (user + system, /proc) and, with PERF_STAT=1, its
# instructions per request (`perf stat -e instructions`, user and kernel), every figure also as a
# ratio against nginx and HAProxy from the same round. See README.md here, "HTTP/2 rows".
#
# Environment (defaults in brackets):
#   DURATION [10]  seconds measured per h2load run (after WARMUP [2] seconds)   ROUNDS [2]
#   WORKER_COUNTS ["1 2"]  CONNS [16]  STREAMS [32] (h2load -c and -m)
#   PROTOS ["tls h2c"]  ACCESS_LOG [off|on]  PERF_STAT [0|1]
#   HIPACHE_BIN [target/release/hipache, built with cargo when missing]
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
# shellcheck source=SCRIPTDIR/../common.sh
source "$ROOT/benches/common.sh"

DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
ROUNDS=${ROUNDS:-2}
WORKER_COUNTS=${WORKER_COUNTS:-1 2}
CONNS=${CONNS:-16}
STREAMS=${STREAMS:-32}
PROTOS=${PROTOS:-tls h2c}
ACCESS_LOG=${ACCESS_LOG:-off}
PERF_STAT=${PERF_STAT:-0}
HOST=bench.local

export PATH="$PATH:/usr/sbin:/sbin"
need redis-server redis-server
need redis-cli redis-tools
need nginx nginx-light
need haproxy haproxy
need h2load nghttp2-client
need openssl openssl
need curl curl
[[ $PERF_STAT == 0 ]] || need perf linux-perf
if [[ -z ${HIPACHE_BIN:-} ]]; then
    HIPACHE_BIN=$ROOT/target/release/hipache
    [[ -x $HIPACHE_BIN ]] || (cd "$ROOT" && cargo build --release)
fi

WORK=$(mktemp -d -t hipache-h2.XXXXXX)
declare -a PIDS=()
trap cleanup EXIT
trap 'exit 130' INT TERM
ulimit -n 65536 2>/dev/null || true

# ---------------------------------------------------------------------------------------------
mkdir -p "$WORK/tls"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj "/CN=$HOST" -addext "subjectAltName=DNS:$HOST,IP:127.0.0.1" \
    -keyout "$WORK/tls/key.pem" -out "$WORK/tls/cert.pem" >"$WORK/tls/openssl.log" 2>&1 ||
    die "openssl could not make a certificate"
cat "$WORK/tls/cert.pem" "$WORK/tls/key.pem" >"$WORK/tls/both.pem"

REDIS_PORT=$(free_port)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$WORK" \
    >"$WORK/redis.log" 2>&1 &
PIDS+=("$!")
wait_for 10 redis redis-cli -p "$REDIS_PORT" ping || die "redis-server did not start"

# The origin: 2 workers whatever the proxies have, so that it is never what limits them.
ORIGIN_PORT=$(free_port)
mkdir -p "$WORK/origin"
fill "$HERE/nginx-origin.conf.in" "$WORK/origin/nginx.conf" WORKERS=2 DIR="$WORK/origin" PORT="$ORIGIN_PORT"
nginx -p "$WORK/origin" -c "$WORK/origin/nginx.conf" -e "$WORK/origin/error.log" >/dev/null 2>&1 &
PIDS+=("$!")
wait_for 10 origin answers "$ORIGIN_PORT" "$HOST" hello || die "the origin did not answer"
redis-cli -p "$REDIS_PORT" rpush "frontend:$HOST" bench "http://127.0.0.1:$ORIGIN_PORT" >/dev/null

h2_answers() { # h2_answers URL: one request over HTTP/2 answered
    h2load -n 1 -c 1 -H ":authority: $HOST" "$1" 2>/dev/null | grep -q "1 succeeded"
}

start_targets() { # start_targets WORKERS: sets PID_<name>, PORT_<name>, TLS_PORT_<name>
    local workers=$1 dir log
    dir=$WORK/nginx-$workers
    mkdir -p "$dir"
    PORT_nginx=$(free_port) TLS_PORT_nginx=$(free_port)
    log="access_log off;"
    [[ $ACCESS_LOG == on ]] && log="access_log $dir/access.log combined buffer=64k flush=100ms;"
    fill "$HERE/nginx-h2.conf.in" "$dir/nginx.conf" WORKERS="$workers" DIR="$dir" \
        PORT="$PORT_nginx" TLS_PORT="$TLS_PORT_nginx" TLS_CERT="$WORK/tls/cert.pem" \
        TLS_KEY="$WORK/tls/key.pem" ORIGIN_PORT="$ORIGIN_PORT" ACCESS_LOG="$log"
    nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" >/dev/null 2>&1 &
    PID_nginx=$!
    PIDS+=("$PID_nginx")

    dir=$WORK/haproxy-$workers
    mkdir -p "$dir"
    PORT_haproxy=$(free_port) TLS_PORT_haproxy=$(free_port)
    log="no log"
    [[ $ACCESS_LOG == on ]] && log='log stdout format raw local0 info\n    option httplog'
    fill "$HERE/haproxy-h2.cfg.in" "$dir/haproxy.cfg" WORKERS="$workers" DIR="$dir" \
        PORT="$PORT_haproxy" TLS_PORT="$TLS_PORT_haproxy" TLS_PEM="$WORK/tls/both.pem" \
        ORIGIN_PORT="$ORIGIN_PORT" LOG="$log"
    haproxy -db -f "$dir/haproxy.cfg" >"$dir/access.log" 2>"$dir/stderr.log" &
    PID_haproxy=$!
    PIDS+=("$PID_haproxy")

    dir=$WORK/hipache-$workers
    mkdir -p "$dir"
    log=null
    [[ $ACCESS_LOG == on ]] && log="\"$dir/access.log\""
    PORT_hipache=$(free_port) TLS_PORT_hipache=$(free_port)
    cat >"$dir/config.json" <<JSON
{
  "server": { "workers": $workers, "accessLog": $log, "httpKeepAlive": true, "maxSockets": 512, "tcpTimeout": 30 },
  "http": { "port": $PORT_hipache, "bind": ["127.0.0.1"] },
  "https": { "port": $TLS_PORT_hipache, "bind": ["127.0.0.1"], "key": "$WORK/tls/key.pem", "cert": "$WORK/tls/cert.pem" },
  "driver": "redis://127.0.0.1:$REDIS_PORT",
  "user": "root"
}
JSON
    "$HIPACHE_BIN" --config "$dir/config.json" >"$dir/stdout.log" 2>"$dir/stderr.log" &
    PID_hipache=$!
    PIDS+=("$PID_hipache")

    local name
    for name in nginx haproxy hipache; do
        local port_var=PORT_$name tls_var=TLS_PORT_$name
        wait_for 20 "$name h2c" h2_answers "http://127.0.0.1:${!port_var}/" ||
            die "$name did not answer h2c on ${!port_var}"
        wait_for 20 "$name h2" h2_answers "https://127.0.0.1:${!tls_var}/" ||
            die "$name did not answer h2 over TLS on ${!tls_var}"
    done
}

stop_targets() {
    local pid
    for pid in "$PID_hipache" "$PID_haproxy" "$PID_nginx"; do stop_pid "$pid"; done
}

# One h2load run through NAME over PROTO: prints "req/s cpu_us_per_request instructions_per_request"
measure() {
    local name=$1 proto=$2 port_var url pid before after out done_n perf_out="" insns=-
    pid=PID_$name
    pid=${!pid}
    if [[ $proto == tls ]]; then port_var=TLS_PORT_$name url="https://127.0.0.1:${!port_var}/"; else
        port_var=PORT_$name url="http://127.0.0.1:${!port_var}/"
    fi
    # A warm-up of its own, so that the CPU counted below is the measured run's alone.
    h2load -c "$CONNS" -m "$STREAMS" -t 1 -D "$WARMUP" -H ":authority: $HOST" "$url" >/dev/null 2>&1 ||
        die "h2load's warm-up through $name ($proto) failed"
    if [[ $PERF_STAT == 1 ]]; then
        perf_out=$WORK/perf.$name.$proto
        perf stat -e instructions -x, -o "$perf_out" -p "$(tree_pids "$pid" | paste -sd,)" &
        local perf_pid=$!
    fi
    before=$(cpu_ticks "$pid")
    out=$(h2load -c "$CONNS" -m "$STREAMS" -t 1 -D "$DURATION" -H ":authority: $HOST" "$url" 2>&1) ||
        die "h2load through $name ($proto) failed: $out"
    after=$(cpu_ticks "$pid")
    if [[ $PERF_STAT == 1 ]]; then
        kill -INT "$perf_pid"
        wait "$perf_pid" || true
    fi
    done_n=$(awk '/^requests:/ { print $8 }' <<<"$out")
    [[ $(awk '/^requests:/ { print $10 }' <<<"$out") == 0 ]] ||
        die "h2load through $name ($proto): requests failed: $(grep '^requests:' <<<"$out")"
    local rps
    rps=$(awk '/^finished in/ { gsub(",", "", $4); print $4 }' <<<"$out")
    [[ -n $perf_out ]] && insns=$(awk -F, -v n="$done_n" '$3 == "instructions" || $3 ~ /^instructions/ { printf "%.0f", $1 / n }' "$perf_out")
    echo "$rps $(awk -v t=$((after - before)) -v us="$TICK_US" -v n="$done_n" 'BEGIN { printf "%.2f", t * us / n }') $insns"
}

# ---------------------------------------------------------------------------------------------
RESULTS=$WORK/results
: >"$RESULTS"
for workers in $WORKER_COUNTS; do
    start_targets "$workers"
    for ((round = 1; round <= ROUNDS; round++)); do
        for proto in $PROTOS; do
            for name in nginx haproxy hipache; do
                read -r rps us insns < <(measure "$name" "$proto")
                printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$workers" "$proto" "$round" "$name" "$rps" "$us" "$insns" |
                    tee -a "$RESULTS" >&2
            done
        done
    done
    stop_targets
done

# One line per (workers, protocol, round): hipache's figures and its ratios to nginx and HAProxy.
printf '\n%-8s %-5s %-5s %-9s %12s %10s %14s   %s\n' workers proto round target "req/s" "CPU us/req" "instr/req" \
    "hipache vs nginx / HAProxy: req/s, CPU/req, instr/req"
awk -F'\t' '
    { key = $1 " " $2 " " $3; rps[key, $4] = $5; us[key, $4] = $6; ins[key, $4] = $7; keys[key] = 1
      printf "%-8s %-5s %-5s %-9s %12.0f %10.2f %14s\n", $1, $2, $3, $4, $5, $6, $7 }
    function ratio(a, b) { return (b > 0 && a != "-") ? sprintf("%.2f", a / b) : "-" }
    END {
        print ""
        for (key in keys) {
            h = "hipache"
            printf "%-20s req/s %s / %s   CPU/req %s / %s   instr/req %s / %s\n", key,
                ratio(rps[key, h], rps[key, "nginx"]), ratio(rps[key, h], rps[key, "haproxy"]),
                ratio(us[key, h], us[key, "nginx"]), ratio(us[key, h], us[key, "haproxy"]),
                ratio(ins[key, h], ins[key, "nginx"]), ratio(ins[key, h], ins[key, "haproxy"])
        }
    }' "$RESULTS"
