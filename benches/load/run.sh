#!/usr/bin/env bash
# Load benchmark: wrk straight to an origin, through nginx, HAProxy and hipache, on loopback,
# interleaved (A B C D A B C D) so that noise from a shared machine hits every target alike, and
# every figure printed as a ratio against nginx and HAProxy measured in the same run. See
# README.md here.
#
# Environment (defaults in brackets):
#   DURATION [10]  seconds measured per wrk run      WARMUP [2]  seconds of discarded warm-up
#   ROUNDS [2]     interleaved rounds                WORKERS [nproc]  nginx and hipache workers
#   PROFILES ["ka64 ka256 close scale mem busy https-ka64 https-resume https-close ws"]
#   QUICK=1  2 s runs, 1 round (smoke check)
#   WRK_THREADS [2]  FRONTENDS [100000]  IDLE_CONNS [1000]  ACCESS_LOG [on|off]
#   NGINX_KEEPALIVE [64]  HIPACHE_BIN [build with cargo]  RESULTS_TSV [file for raw per-run rows]
#   PERF_OUT [unset]  a file: record hipache with perf during round 1's ka64 run, write the report
#   PERF_PROFILE [ka64]  PERF_TARGET [hipache]  which run PERF_OUT records (e.g. scale and
#                  "hipache 100000 hosts")
#   SCALE_WARMUP [60; 3 with QUICK]  seconds of random-host traffic that fill hipache's lookup
#                  caches before the first scale round (steady state, not a cold start)
#   BUSY_CONNS [1000]  TLS_KEY [ecdsa|rsa2048] (the certificate of https-ka64 and https-resume)
#   TLS_CLIENTS [16]  full handshakes in flight (https-close)
#   TLS_CLOSE_KEYS ["ecdsa rsa2048"]  the key types https-close measures, a row each
#   TLS_CLIENT [tls-load|s_time]  https-close's client (handshakes.sh)  TLS_VERSION [1.3|1.2]
#   TLS_LOAD_BIN [build benches/tls-load with cargo]  TLS_LOAD_THREADS [2]  (tls-load's threads)
#   WS_CONNS [10000; per process at most: nofile limit - 512 (the Python ends), and
#                  (nofile limit - 512) / 2 tunnels per proxy worker]  WS_ECHO_CONNS [64]
#   WS_DEPTH [16]  WS_SIZE [32]  (messages in flight per tunnel and their size for ws-echo)
#   METRICS [off]  on: hipache runs with the `metrics` section (statsd to a local UDP sink) and
#                  `logging.web` sections; both: a second hipache with them ("hipache+metrics")
#                  is measured right after the first in every profile but scale, and the summary
#                  prints CPU per request with metrics over without, same run
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
# shellcheck source=SCRIPTDIR/../common.sh
source "$ROOT/benches/common.sh"

if [[ ${QUICK:-0} == 1 ]]; then
    DURATION=${DURATION:-2} WARMUP=${WARMUP:-1} ROUNDS=${ROUNDS:-1} IDLE_HOLD=${IDLE_HOLD:-2}
    SCALE_WARMUP=${SCALE_WARMUP:-3}
fi
SCALE_WARMUP=${SCALE_WARMUP:-60}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
ROUNDS=${ROUNDS:-2}
IDLE_HOLD=${IDLE_HOLD:-4}
WORKERS=${WORKERS:-$(nproc)}
WRK_THREADS=${WRK_THREADS:-2}
PROFILES=${PROFILES:-ka64 ka256 close scale mem busy https-ka64 https-resume https-close ws}
BUSY_CONNS=${BUSY_CONNS:-1000}
TLS_KEY=${TLS_KEY:-ecdsa}
TLS_CLIENTS=${TLS_CLIENTS:-16}
TLS_CLOSE_KEYS=${TLS_CLOSE_KEYS:-ecdsa rsa2048}
TLS_CLIENT=${TLS_CLIENT:-tls-load}
TLS_VERSION=${TLS_VERSION:-1.3}
TLS_LOAD_THREADS=${TLS_LOAD_THREADS:-2}
WS_CONNS=${WS_CONNS:-10000}
WS_ECHO_CONNS=${WS_ECHO_CONNS:-64}
WS_DEPTH=${WS_DEPTH:-16}
WS_SIZE=${WS_SIZE:-32}
FRONTENDS=${FRONTENDS:-100000}
IDLE_CONNS=${IDLE_CONNS:-1000}
ACCESS_LOG=${ACCESS_LOG:-on}
NGINX_KEEPALIVE=${NGINX_KEEPALIVE:-64}
METRICS=${METRICS:-off}
RESULTS_TSV=${RESULTS_TSV:-}
PERF_OUT=${PERF_OUT:-}
PERF_PROFILE=${PERF_PROFILE:-ka64}
PERF_TARGET=${PERF_TARGET:-hipache}
HOST=bench.local

for value in "$DURATION" "$WARMUP" "$ROUNDS" "$WORKERS" "$WRK_THREADS" "$FRONTENDS" "$IDLE_CONNS" \
    "$BUSY_CONNS" "$TLS_CLIENTS" "$TLS_LOAD_THREADS" "$WS_CONNS" "$WS_ECHO_CONNS" "$WS_DEPTH" "$WS_SIZE"; do
    [[ $value =~ ^[0-9]+$ ]] || die "numeric setting expected, got '$value'"
done
for profile in $PROFILES; do
    case $profile in
    ka64 | ka256 | close | scale | mem | busy | https-ka64 | https-resume | https-close | ws) ;;
    *) die "unknown profile '$profile'" ;;
    esac
done
[[ $TLS_KEY == ecdsa || $TLS_KEY == rsa2048 ]] || die "TLS_KEY must be ecdsa or rsa2048"
for key in $TLS_CLOSE_KEYS; do
    [[ $key == ecdsa || $key == rsa2048 ]] || die "TLS_CLOSE_KEYS: '$key' is not ecdsa or rsa2048"
done
[[ $TLS_CLIENT == tls-load || $TLS_CLIENT == s_time ]] || die "TLS_CLIENT must be tls-load or s_time"
[[ $TLS_VERSION == 1.3 || $TLS_VERSION == 1.2 ]] || die "TLS_VERSION must be 1.3 or 1.2"
((WS_SIZE > 0 && WS_SIZE < 126)) || die "WS_SIZE must be 1..125 bytes"
[[ $ACCESS_LOG == on || $ACCESS_LOG == off ]] || die "ACCESS_LOG must be on or off"
[[ $METRICS == on || $METRICS == off || $METRICS == both ]] || die "METRICS must be on, off or both"

# ---------------------------------------------------------------------------------------------
# Tools: installed from Debian when missing (common.sh `need`), so the script runs on a fresh machine.
export PATH="$PATH:/usr/sbin:/sbin" # nginx lives in /usr/sbin
need redis-server redis-server
need redis-cli redis-tools
need nginx nginx
need haproxy haproxy
need openssl openssl
need wrk wrk
need curl curl
need python3 python3
[[ -z $PERF_OUT ]] || need perf linux-perf

# 1,000 idle connections plus wrk's need more descriptors than the usual 1024. The limit is per
# process: a tunnel costs two descriptors (client and origin side) in the one proxy process that
# carries it, and one in each Python end (ws_client.py holds every client socket, ws_origin.py
# every origin one). nginx's and hipache's WORKERS workers split the tunnels between them (the
# kernel picks: a shared listening socket woken one worker at a time, SO_REUSEPORT hashing), so a
# worker needs two per tunnel of its share only; the check allows a share 25 % over an even
# split, and the ws row logs the split it got. hipache's master raises its soft limit to the hard
# one (src/master/open_files.rs), nginx gets worker_rlimit_nofile; HAProxy is one process holding
# every tunnel's two sockets: its maxconn is capped to what fits (targets.sh) and the ws row
# leaves it out beyond that.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
ws_worker_share=$(((WS_CONNS * 5 / 4 + WORKERS - 1) / WORKERS))
((ws_worker_share <= WS_CONNS)) || ws_worker_share=$WS_CONNS
if [[ " $PROFILES " == *" ws "* ]]; then
    for need in "$((2 * ws_worker_share + 512)) per proxy worker ($WORKERS workers, up to $ws_worker_share tunnels each)" \
        "$((WS_CONNS + 512)) for each Python end (client, origin)"; do
        (($(ulimit -n) >= ${need%% *})) ||
            die "WS_CONNS=$WS_CONNS needs $need file descriptors, the limit here is $(ulimit -n) (hard: $(ulimit -Hn)): lower WS_CONNS, raise WORKERS, or raise the hard limit (ulimit -Hn as root, or the container's nofile limit)"
    done
fi

# ---------------------------------------------------------------------------------------------
# Processes we start, stopped (TERM, then KILL) and their temp dir removed on any exit.
WORK=$(mktemp -d -t hipache-bench.XXXXXX)
declare -a PIDS=()
# Set by start_redis, start_nginx (through printf -v) and start_hipache.
REDIS_PORT='' PID_redis='' PORT_origin='' PID_origin='' PORT_nginx='' PID_nginx='' PORT_hipache='' PID_hipache=''
# Set by start_haproxy, start_ws_origin, start_statsd_sink (targets.sh) and start_proxies.
PORT_haproxy='' PID_haproxy='' PORT_ws='' PID_ws='' TLS_PORT_nginx='' TLS_PORT_haproxy='' TLS_PORT_hipache=''
PORT_hipache_m='' PID_hipache_m='' TLS_PORT_hipache_m='' STATSD_PORT=''
# The TLS listeners with the other key type's certificate (targets.sh, other_key).
TLS_ALT_PORT_nginx='' TLS_ALT_PORT_haproxy='' TLS_ALT_PORT_hipache='' TLS_ALT_PORT_hipache_m=''
WS_RUNNING=0

trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------------------------------------
# The servers.
start_redis() {
    local dir=$WORK/redis
    mkdir -p "$dir"
    REDIS_PORT=$(free_port)
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$dir" \
        >"$dir/redis.log" 2>&1 &
    PID_redis=$!
    PIDS+=("$PID_redis")
    wait_for 10 redis redis-cli -p "$REDIS_PORT" ping ||
        die "redis-server did not answer PING on port $REDIS_PORT: $(tail -5 "$dir/redis.log")"
}

start_nginx() { # start_nginx NAME TEMPLATE [KEY=VALUE...]: sets PORT_<NAME> and PID_<NAME>
    local name=$1 template=$2 dir=$WORK/$1 port pid
    shift 2
    mkdir -p "$dir"
    port=$(free_port)
    fill "$template" "$dir/nginx.conf" WORKERS="$WORKERS" DIR="$dir" PORT="$port" "$@"
    # -e: the error log before the config is read, so nothing goes to /var/log/nginx.
    nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" >"$dir/stdout.log" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    wait_for 10 "$name" answers "$port" "$HOST" hello ||
        die "$name (nginx) did not answer on port $port: $(tail -5 "$dir/error.log" "$dir/stdout.log" 2>/dev/null)"
    printf -v "PORT_$name" '%s' "$port"
    printf -v "PID_$name" '%s' "$pid"
}

start_hipache() { # start_hipache [NAME [METRICS on|off]]: sets PORT_, TLS_PORT_, TLS_ALT_PORT_, PID_<NAME>
    local name=${1:-hipache} metrics=${2:-off} pid address tls_address access_log=null i observability=
    local alt_port
    alt_port=$(free_port)
    local dir=$WORK/$name
    mkdir -p "$dir"
    [[ $ACCESS_LOG == on ]] && access_log="\"$dir/access.log\""
    if [[ $metrics == on ]]; then
        [[ -n ${STATSD_PORT:-} ]] || start_statsd_sink
        observability=", \"metrics\": { \"host\": \"127.0.0.1\", \"port\": $STATSD_PORT, \"session\": \"bench\" },"
        observability+=" \"logging\": { \"web\": { \"host\": \"127.0.0.1\", \"port\": 0 } }"
    fi
    fill "$HERE/hipache.json.in" "$dir/config.json" WORKERS="$WORKERS" ACCESS_LOG="$access_log" \
        REDIS_PORT="$REDIS_PORT" TLS_KEY="$WORK/tls/key.pem" TLS_CERT="$WORK/tls/cert.pem" \
        TLS_ALT_PORT="$alt_port" TLS_ALT_KEY="$WORK/tls/alt/key.pem" TLS_ALT_CERT="$WORK/tls/alt/cert.pem" \
        OBSERVABILITY="$observability"
    # Created here: the background child opens its redirections when it gets to run, and the
    # loop below may read stderr.log before that (a missing file fails sed, and set -e the script).
    : >"$dir/stdout.log"
    : >"$dir/stderr.log"
    "$HIPACHE_BIN" --config "$dir/config.json" >"$dir/stdout.log" 2>"$dir/stderr.log" &
    pid=$!
    PIDS+=("$pid")
    address=
    for ((i = 0; i < 200; i++)); do
        address=$(sed -n '/https/!s/.*listening on.*address=\([0-9.]*:[0-9]*\).*/\1/p' "$dir/stderr.log" | head -1)
        tls_address=$(sed -n '/https/s/.*listening on.*address=\([0-9.]*:[0-9]*\).*/\1/p' "$dir/stderr.log" |
            awk -v alt="127.0.0.1:$alt_port" '$0 != alt' | head -1)
        [[ -n $address && -n $tls_address ]] && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    [[ -n $address && -n $tls_address ]] ||
        die "$name logged no 'listening on ... address=' line for http and https: $(tail -5 "$dir/stderr.log")"
    printf -v "PORT_$name" '%s' "${address##*:}"
    printf -v "TLS_PORT_$name" '%s' "${tls_address##*:}"
    printf -v "TLS_ALT_PORT_$name" '%s' "$alt_port"
    printf -v "PID_$name" '%s' "$pid"
    wait_for 10 "$name ping" answers "${address##*:}" __ping__ ok ||
        die "$name does not answer Host: __ping__ on $address: $(tail -5 "$dir/stderr.log")"
    wait_for 10 "$name route" answers "${address##*:}" "$HOST" hello ||
        die "$name does not route $HOST to the origin: $(tail -5 "$dir/stderr.log")"
    wait_for 10 "$name TLS" answers_tls "${tls_address##*:}" "$HOST" hello ||
        die "$name does not answer over TLS on $tls_address: $(tail -5 "$dir/stderr.log")"
    wait_for 10 "$name TLS ($(other_key))" answers_tls "$alt_port" "$HOST" hello ||
        die "$name does not answer over TLS on 127.0.0.1:$alt_port: $(tail -5 "$dir/stderr.log")"
}

stop_target() { # stop_target PID: stops it and forgets it
    local pid=$1 kept=() p
    stop_pid "$pid"
    for p in "${PIDS[@]}"; do [[ $p == "$pid" ]] || kept+=("$p"); done
    PIDS=("${kept[@]}")
}

start_proxies() {
    local access_log="access_log off;"
    [[ $ACCESS_LOG == on ]] && access_log="access_log $WORK/nginx/access.log combined buffer=64k flush=100ms;"
    # Same batching as hipache's writer: a 64 KiB buffer flushed at least every 100 ms.
    TLS_PORT_nginx=$(free_port)
    TLS_ALT_PORT_nginx=$(free_port)
    start_nginx nginx "$HERE/nginx-proxy.conf.in" ORIGIN_PORT="$PORT_origin" \
        KEEPALIVE="$NGINX_KEEPALIVE" ACCESS_LOG="$access_log" TLS_PORT="$TLS_PORT_nginx" \
        TLS_CERT="$WORK/tls/cert.pem" TLS_KEY="$WORK/tls/key.pem" WS_PORT="$PORT_ws" \
        TLS_ALT_PORT="$TLS_ALT_PORT_nginx" TLS_ALT_CERT="$WORK/tls/alt/cert.pem" \
        TLS_ALT_KEY="$WORK/tls/alt/key.pem" CONNECTIONS="$(proxy_connections)"
    wait_for 10 "nginx TLS" answers_tls "$TLS_PORT_nginx" "$HOST" hello ||
        die "nginx does not answer over TLS on port $TLS_PORT_nginx: $(tail -5 "$WORK/nginx/error.log")"
    wait_for 10 "nginx TLS ($(other_key))" answers_tls "$TLS_ALT_PORT_nginx" "$HOST" hello ||
        die "nginx does not answer over TLS on port $TLS_ALT_PORT_nginx: $(tail -5 "$WORK/nginx/error.log")"
    start_haproxy
    start_hipache hipache "$([[ $METRICS == on ]] && echo on || echo off)"
    [[ $METRICS != both ]] || start_hipache hipache_m on
}

restart_proxies() { # fresh processes: nothing earlier profiles allocated counts
    [[ $METRICS != both ]] || stop_target "$PID_hipache_m"
    stop_target "$PID_hipache"
    stop_target "$PID_haproxy"
    stop_target "$PID_nginx"
    start_proxies
    scale_warm=0 # fresh workers, empty lookup caches
}

# shellcheck source=measure.sh
source "$HERE/measure.sh"

# ---------------------------------------------------------------------------------------------
# Set-up.
if [[ -z ${HIPACHE_BIN:-} ]]; then
    log "building hipache (cargo build --release)"
    (cd "$ROOT" && cargo build --release --quiet) || die "cargo build --release failed"
    HIPACHE_BIN=$ROOT/target/release/hipache
fi
[[ -x $HIPACHE_BIN ]] || die "no hipache binary at $HIPACHE_BIN"
if [[ " $PROFILES " == *" https-close "* && $TLS_CLIENT == tls-load ]]; then
    if [[ -z ${TLS_LOAD_BIN:-} ]]; then
        log "building the tls-load client (cargo build --release --manifest-path benches/tls-load/Cargo.toml)"
        cargo build --release --quiet --manifest-path "$ROOT/benches/tls-load/Cargo.toml" ||
            die "cargo build of benches/tls-load failed"
        TLS_LOAD_BIN=$ROOT/benches/tls-load/target/release/tls-load
    fi
    [[ -x $TLS_LOAD_BIN ]] || die "no tls-load binary at $TLS_LOAD_BIN"
fi
# handshakes.sh's settings; TLS_CLIENT_LOG collects the client's own CPU per connection.
export TLS_CLIENT TLS_VERSION TLS_LOAD_THREADS TLS_LOAD_BIN="${TLS_LOAD_BIN:-}" TLS_CLIENT_LOG=$WORK/handshakes-client.tsv

# shellcheck source=targets.sh
source "$HERE/targets.sh"
# shellcheck source=profiles.sh
source "$HERE/profiles.sh"
make_cert
start_redis
start_nginx origin "$HERE/nginx-origin.conf.in"
redis-cli -p "$REDIS_PORT" rpush "frontend:$HOST" bench "http://127.0.0.1:$PORT_origin" >/dev/null
# The WebSocket echo origin's port is in every proxy's config; it starts with the ws profile.
PORT_ws=$(free_port)
redis-cli -p "$REDIS_PORT" rpush "frontend:ws.$HOST" ws "http://127.0.0.1:$PORT_ws" >/dev/null
if [[ " $PROFILES " == *" scale "* ]]; then
    # FRONTENDS keys as raw RESP through --pipe: 100,000 RPUSH in well under a second.
    log "loading $FRONTENDS frontends into Redis"
    awk -v n="$FRONTENDS" -v url="http://127.0.0.1:$PORT_origin" 'BEGIN {
        for (i = 1; i <= n; i++) {
            key = "frontend:h" i ".scale.local"
            printf "*4\r\n$5\r\nRPUSH\r\n$%d\r\n%s\r\n$5\r\nscale\r\n$%d\r\n%s\r\n",
                length(key), key, length(url), url
        }
    }' | redis-cli -p "$REDIS_PORT" --pipe >"$WORK/redis-pipe.log" 2>&1 ||
        die "loading frontends failed: $(tail -3 "$WORK/redis-pipe.log")"
    loaded=$(redis-cli -p "$REDIS_PORT" dbsize)
    ((loaded >= FRONTENDS)) || die "only $loaded keys in Redis after loading $FRONTENDS frontends"
fi
start_proxies
if [[ " $PROFILES " == *" scale "* ]]; then
    answers "$PORT_hipache" "h$FRONTENDS.scale.local" hello || die "hipache does not route the scale frontends"
fi

hipache_procs=$(tree_pids "$PID_hipache" | wc -l)
nginx_procs=$(tree_pids "$PID_nginx" | wc -l)
haproxy_threads=$(awk '/^Threads:/ { print $2 }' "/proc/$PID_haproxy/status")
rev=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
git -C "$ROOT" diff --quiet HEAD -- src Cargo.toml 2>/dev/null || rev="$rev+dirty"
cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)

{
    echo "# hipache load benchmark"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); machine: $(nproc) cores, ${cpu_model:-unknown CPU}, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)"
    echo "- versions: $(nginx -v 2>&1 | sed 's/nginx version: //'), $(haproxy -v | awk 'NR == 1 { print "haproxy " $3 }'), hipache $rev, $(openssl version | awk '{ print "openssl " $2 }'), $(wrk --version 2>&1 | head -1 | awk '{ print "wrk " $2 }'), $(redis-server --version | awk '{ print $3 }' | tr -d 'v=' | sed 's/^/redis /')"
    echo "- workers: WORKERS=$WORKERS; nginx runs $nginx_procs processes (master + workers); haproxy one process with $haproxy_threads threads (nbthread $WORKERS); hipache runs $hipache_procs process(es) with server.workers=$WORKERS$( ((hipache_procs == 1)) && echo ' (one serving process: server.workers not honoured yet)')"
    echo "- wrk: $WRK_THREADS threads, ${WARMUP}s warm-up + ${DURATION}s measured, $ROUNDS interleaved round(s); access log $ACCESS_LOG on every proxy; hipache metrics $METRICS; nginx upstream keepalive $NGINX_KEEPALIVE; TLS key $TLS_KEY"
    if [[ " $PROFILES " == *" https-close "* ]]; then
        tls_client="openssl s_time -new, $TLS_CLIENTS processes"
        [[ $TLS_CLIENT == s_time ]] ||
            tls_client="tls-load (rustls, no resumption), $TLS_CLIENTS connections on $TLS_LOAD_THREADS threads"
        echo "- https-close: $tls_client, TLS $TLS_VERSION, keys: $TLS_CLOSE_KEYS"
    fi
    echo "- origin: nginx, $WORKERS workers, \`return 200 \"hello\"\`; load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} >"$WORK/header.md"
cat "$WORK/header.md" >&2

# ---------------------------------------------------------------------------------------------
# The runs, interleaved: round 1 (every profile, every target), round 2, ...
: >"$WORK/results.tsv"
: >"$WORK/idle.tsv"
scale_warm=0 # hipache's lookup caches have not seen the scale hosts yet
for ((round = 1; round <= ROUNDS; round++)); do
    log "round $round/$ROUNDS"
    for profile in $PROFILES; do
        "profile_${profile//-/_}" "$round"
    done
done

[[ -n $RESULTS_TSV ]] && cp "$WORK/results.tsv" "$RESULTS_TSV"

# ---------------------------------------------------------------------------------------------
# The tables: means over rounds, spread = (max - min) / mean, ratios against nginx's and
# HAProxy's rows of the same profile (summary.awk).
{
    cat "$WORK/header.md"
    echo "- load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo
    awk -F'\t' -v frontends="$FRONTENDS" -v busy="$BUSY_CONNS" -v ws_depth="$WS_DEPTH" -v ws_size="$WS_SIZE" \
        -f "$HERE/summary.awk" "$WORK/results.tsv" "$WORK/idle.tsv"
    echo
    echo "CPU µs/req: CPU time of the target's processes (the origin's for direct) over requests served;"
    echo "Redis µs/req: CPU time redis-server spent during the run per request (hipache's lookups; 0 for the others);"
    echo "RSS: sum over master + workers, sampled every 0.2 s; PSS (memory table): the same processes'"
    echo "proportional set size from smaps_rollup, read fresh and at each new RSS peak (pages shared by"
    echo "master and workers, such as the binary's text, counted once); spread: (max - min) / mean of req/s over rounds;"
    echo "vs nginx / HAProxy: this row over nginx's / HAProxy's row of the same profile (above 1× is better"
    echo "for req/s, worse for the others); ws-echo: messages/s, p50/p99 of a round trip of $WS_DEPTH messages."
    echo "Machine busy µs/req: every CPU's busy time (/proc/stat: user, system, irq, softirq, steal) over requests;"
    echo "user space: the target's utime (the rest of its time is the kernel's, loopback TCP for both ends of"
    echo "each send); client and rest: machine busy time neither the target's nor the origin's (wrk, Redis, other);"
    echo "req/s with a free user space: req/s x busy / (busy - user space), the most any user-space work could"
    echo "reach on this machine, the kernel's share staying."
    if [[ -s $WORK/tls-client-cpu.tsv ]]; then
        # The https-close rows measure the proxy only while the client needs less CPU than it.
        echo
        echo "https-close, the load client's own CPU µs per connection ($TLS_CLIENT) / the target's, means over rounds:"
        awk -F'\t' '{ k = $1 " " $3; if (!(k in n)) o[++c] = k; n[k]++; cl[k] += $4; t[k] += $5 }
            END { for (i = 1; i <= c; i++) { k = o[i]
                printf "- %s: %.0f / %.0f (%.2f×)\n", k, cl[k] / n[k], t[k] / n[k], t[k] ? cl[k] / t[k] : 0 } }' \
            "$WORK/tls-client-cpu.tsv"
    fi
}
