#!/usr/bin/env bash
# HTTP/3 benchmark (not a test): hipache's HTTP/3 beside Caddy's (Debian's caddy serves HTTP/3;
# Debian's nginx and HAProxy are built without QUIC), both reverse proxies in front of one nginx
# origin on loopback, driven by one client, h3-load (benches/h3-load: quinn and h3, h2load's
# `-c -m` for HTTP/3); and hipache's HTTP/3 against its own HTTP/2 (h2load over TLS) on the
# same port and machine. Rounds interleave the targets so a shared machine's noise hits all
# alike. Defaults as shipped for both proxies: no tuning beyond the worker count (hipache's
# `server.workers`, Caddy's GOMAXPROCS), access logs off for both.
#
# Prints per run requests per second, the server's CPU per request (the proxy's processes, from
# /proc: user + system), the client's CPU per request and the proxy's RSS after the run; then the
# medians and the ratios hipache/Caddy (HTTP/3) and hipache HTTP/3 / hipache HTTP/2.
#
# Environment (defaults in brackets):
#   WORKERS [1]      hipache workers, and Caddy's GOMAXPROCS
#   CONNS [16]       connections       STREAMS [32]  concurrent streams per connection
#   DURATION [10]    seconds per run   WARMUP [2]    uncounted seconds first    ROUNDS [3]
#   TARGETS ["caddy-h3 hipache-h3 hipache-h2"]  (also: caddy-h2)
#   KEEPALIVE [false]  hipache's server.httpKeepAlive: false is the shipped (Hipache's) default,
#                    a backend connection per request; true pools them, as Caddy does by default
#   HIPACHE_BIN [cargo build --release]   H3_LOAD_BIN [build benches/h3-load]
#   QUICK=1: 3 s runs, 1 round (a check of the script itself)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
# shellcheck source=SCRIPTDIR/../common.sh
source "$ROOT/benches/common.sh"

if [[ ${QUICK:-0} == 1 ]]; then
    DURATION=${DURATION:-3} ROUNDS=${ROUNDS:-1} WARMUP=${WARMUP:-1}
fi
WORKERS=${WORKERS:-1}
CONNS=${CONNS:-16}
STREAMS=${STREAMS:-32}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
ROUNDS=${ROUNDS:-3}
TARGETS=${TARGETS:-caddy-h3 hipache-h3 hipache-h2}
KEEPALIVE=${KEEPALIVE:-false}
[[ $KEEPALIVE == true || $KEEPALIVE == false ]] || die "KEEPALIVE: true or false, got '$KEEPALIVE'"
for value in "$WORKERS" "$CONNS" "$STREAMS" "$DURATION" "$WARMUP" "$ROUNDS"; do
    [[ $value =~ ^[0-9]+$ ]] || die "numeric setting expected, got '$value'"
done
for target in $TARGETS; do
    case $target in caddy-h3 | caddy-h2 | hipache-h3 | hipache-h2) ;; *) die "unknown target '$target'" ;; esac
done
HOST=bench.local

export PATH="$PATH:/usr/sbin:/sbin"
need redis-server redis-server
need redis-cli redis-tools
need nginx nginx-light
need caddy caddy
need h2load nghttp2-client
need openssl openssl
need curl curl
need python3 python3
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

WORK=$(mktemp -d -t hipache-h3.XXXXXX)
declare -a PIDS=()
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ -z ${HIPACHE_BIN:-} ]]; then
    log "building hipache (cargo build --release)"
    (cd "$ROOT" && cargo build --release --quiet) || die "cargo build --release failed"
    HIPACHE_BIN=$ROOT/target/release/hipache
fi
[[ -x $HIPACHE_BIN ]] || die "no hipache binary at $HIPACHE_BIN"
H3_LOAD_BIN=${H3_LOAD_BIN:-$ROOT/benches/h3-load/target/release/h3-load}
if [[ ! -x $H3_LOAD_BIN ]]; then
    log "building h3-load (cargo build --release)"
    cargo build --release --quiet --manifest-path "$ROOT/benches/h3-load/Cargo.toml" ||
        die "building benches/h3-load failed"
fi

mkdir -p "$WORK/hipache" "$WORK/caddy"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
    -subj "/CN=$HOST" -addext "subjectAltName=DNS:$HOST" \
    -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null || die "openssl could not make the certificate"

run_redis "$WORK/redis"
run_origin "$WORK/origin" "$WORKERS"
redis-cli -p "$REDIS_PORT" rpush "frontend:$HOST" bench "http://127.0.0.1:$ORIGIN_PORT" >/dev/null

# The UDP port must be free as well as the TCP one: free_port checks TCP only.
free_udp_and_tcp_port() {
    python3 -c 'import socket
while True:
    t = socket.socket(); t.bind(("127.0.0.1", 0)); p = t.getsockname()[1]
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        u.bind(("127.0.0.1", p)); print(p); break
    except OSError:
        pass'
}

PORT_hipache=$(free_udp_and_tcp_port)
http3=false
[[ " $TARGETS " == *" hipache-h3 "* ]] && http3=true
cat >"$WORK/hipache/config.json" <<JSON
{
  "server": { "workers": $WORKERS, "accessLog": null, "httpKeepAlive": $KEEPALIVE },
  "http": { "port": $(free_port), "bind": ["127.0.0.1"] },
  "https": { "port": $PORT_hipache, "bind": ["127.0.0.1"], "key": "$WORK/key.pem", "cert": "$WORK/cert.pem",
             "http3": $http3 },
  "driver": "redis://127.0.0.1:$REDIS_PORT",
  "user": "root"
}
JSON
"$HIPACHE_BIN" --config "$WORK/hipache/config.json" >/dev/null 2>"$WORK/hipache/stderr.log" &
PID_hipache=$!
PIDS+=("$PID_hipache")
wait_for 15 hipache curl -sk --max-time 2 --resolve "$HOST:$PORT_hipache:127.0.0.1" "https://$HOST:$PORT_hipache/" ||
    die "hipache did not answer: $(tail -5 "$WORK/hipache/stderr.log")"

PORT_caddy=$(free_udp_and_tcp_port)
cat >"$WORK/caddy/Caddyfile" <<CADDY
{
	admin off
	auto_https disable_redirects
	storage file_system $WORK/caddy/data
	http_port $(free_port)
}
https://$HOST:$PORT_caddy {
	tls $WORK/cert.pem $WORK/key.pem
	reverse_proxy 127.0.0.1:$ORIGIN_PORT
}
CADDY
GOMAXPROCS=$WORKERS XDG_DATA_HOME=$WORK/caddy HOME=$WORK/caddy \
    caddy run --config "$WORK/caddy/Caddyfile" --adapter caddyfile >"$WORK/caddy/stdout.log" 2>&1 &
PID_caddy=$!
PIDS+=("$PID_caddy")
wait_for 15 caddy curl -sk --max-time 2 --resolve "$HOST:$PORT_caddy:127.0.0.1" "https://$HOST:$PORT_caddy/" ||
    die "caddy did not answer: $(tail -5 "$WORK/caddy/stdout.log")"

client_ticks() { # client_ticks PID: the CPU of PID's reaped children (the client it ran)
    sed 's/.*) //' "/proc/$1/stat" | awk '{ print $14 + $15 }'
}

run_client() { # run_client PROTOCOL PORT: prints "requests_per_second client_cpu_us_per_request errors"
    local protocol=$1 port=$2 out=$WORK/client.out
    if [[ $protocol == h3 ]]; then
        "$H3_LOAD_BIN" "$port" "$CONNS" "$STREAMS" "$WARMUP" "$DURATION" "$HOST" >"$out" 2>"$WORK/client.err" ||
            die "h3-load failed: $(cat "$WORK/client.err")"
        awk '/^RESULT/ { r = $2 * 1e6 / $3; e = $6 + $7 } /^CLIENT/ { c = $3 } END { printf "%.0f %.1f %d\n", r, c, e }' "$out"
    else
        # h2load counts its warm-up in its own output; CPU per request comes from /proc.
        local before after me=$BASHPID
        before=$(client_ticks "$me")
        h2load -c "$CONNS" -m "$STREAMS" --warm-up-time="${WARMUP}s" -D "$DURATION" -t 1 \
            "https://$HOST:$port/" --connect-to="127.0.0.1:$port" >"$out" 2>&1 ||
            die "h2load failed: $(tail -5 "$out")"
        after=$(client_ticks "$me")
        awk -v t=$((after - before)) -v tick="$TICK_US" -v d="$DURATION" '
            /^finished in/ { r = $4 + 0 }
            /^requests:/ { e = $10 + $12 + $14 }
            END { printf "%.0f %.1f %d\n", r, (r > 0 ? t * tick / (r * d) : 0), e }' "$out"
    fi
}

declare -A RATES=() CPUS=()
printf '%-5s %-11s %12s %16s %16s %9s %6s\n' round target "requests/s" "server CPU µs/req" "client CPU µs/req" "RSS MiB" errors
for ((round = 1; round <= ROUNDS; round++)); do
    for target in $TARGETS; do
        proxy=${target%-*} protocol=${target#*-}
        pid_var=PID_$proxy port_var=PORT_$proxy
        before=$(cpu_ticks "${!pid_var}")
        read -r rate client_cpu errors < <(run_client "$protocol" "${!port_var}")
        after=$(cpu_ticks "${!pid_var}")
        # The server's CPU over the whole run, warm-up included, per request of the whole run.
        server_cpu=$(awk -v t=$((after - before)) -v tick="$TICK_US" -v r="$rate" -v s=$((DURATION + WARMUP)) \
            'BEGIN { printf "%.1f", (r > 0 ? t * tick / (r * s) : 0) }')
        rss=$(($(rss_kib "${!pid_var}") / 1024))
        printf '%-5s %-11s %12s %16s %16s %9s %6s\n' "$round" "$target" "$rate" "$server_cpu" "$client_cpu" "$rss" "$errors"
        RATES[$target]+="$rate "
        CPUS[$target]+="$server_cpu "
    done
done

median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
echo
echo "medians ($WORKERS worker(s), $CONNS connections x $STREAMS streams, ${DURATION}s x $ROUNDS rounds):"
for target in $TARGETS; do
    # shellcheck disable=SC2086 # the lists are space-separated numbers
    printf '  %-11s %10s requests/s %8s µs server CPU per request\n' "$target" "$(median ${RATES[$target]})" "$(median ${CPUS[$target]})"
done
ratio() { # ratio A B: "req/s A/B, CPU per request A/B"
    # shellcheck disable=SC2086
    awk -v ra="$(median ${RATES[$1]})" -v rb="$(median ${RATES[$2]})" -v ca="$(median ${CPUS[$1]})" -v cb="$(median ${CPUS[$2]})" \
        'BEGIN { printf "req/s %.2fx, server CPU per request %.2fx\n", ra / rb, ca / cb }'
}
[[ -n ${RATES[hipache-h3]:-} && -n ${RATES[caddy-h3]:-} ]] && echo "hipache HTTP/3 / Caddy HTTP/3: $(ratio hipache-h3 caddy-h3)"
[[ -n ${RATES[hipache-h3]:-} && -n ${RATES[hipache-h2]:-} ]] && echo "hipache HTTP/3 / hipache HTTP/2: $(ratio hipache-h3 hipache-h2)"
true
