#!/usr/bin/env bash
# Scale benchmark (not a test): FRONTENDS frontends in Redis, hipache in front of an nginx origin,
# and three wrk runs with the same script: one host, uniformly random hosts, Zipf(s = 1) hosts.
# Prints req/s (and the ratio to one host), Redis commands per request (INFO commandstats delta)
# and hipache's RSS (master + workers) after each run. Needs a quiet machine for figures that mean
# anything; QUICK=1 (or a small FRONTENDS) is a smoke check of the script itself.
#
# Environment (defaults in brackets):
#   FRONTENDS [1000000]  frontends loaded, "frontend:h<i>.scale.local" = ["app<i % APPS>", origin]
#   APPS [1000]          distinct frontend ids (applications); every frontend has the one origin
#   WORKERS [2]          hipache (and origin nginx) workers
#   LRU_SIZE [unset]     server.lruCache.size; unset: no lruCache section (the default cache)
#   WARMUP [120]         seconds of uniform traffic before measuring, so each worker's cache has
#                        seen the hosts (steady state, not a cold start)
#   DURATION [20]        seconds per measured run        CONNS [64]  WRK_THREADS [2]
#   HIPACHE_BIN [cargo build --release]                  QUICK=1: 20,000 frontends, 3 s runs
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)

if [[ ${QUICK:-0} == 1 ]]; then
    FRONTENDS=${FRONTENDS:-20000} WARMUP=${WARMUP:-3} DURATION=${DURATION:-3}
fi
FRONTENDS=${FRONTENDS:-1000000}
APPS=${APPS:-1000}
WORKERS=${WORKERS:-2}
LRU_SIZE=${LRU_SIZE:-}
WARMUP=${WARMUP:-120}
DURATION=${DURATION:-20}
CONNS=${CONNS:-64}
WRK_THREADS=${WRK_THREADS:-2}

log() { printf '%s\n' "$*" >&2; }
die() {
    log "run.sh: error: $*"
    exit 1
}

for value in "$FRONTENDS" "$APPS" "$WORKERS" "$WARMUP" "$DURATION" "$CONNS" "$WRK_THREADS" ${LRU_SIZE:+"$LRU_SIZE"}; do
    [[ $value =~ ^[0-9]+$ ]] || die "numeric setting expected, got '$value'"
done
((FRONTENDS > 0 && APPS > 0)) || die "FRONTENDS and APPS must be positive"

# Tools: installed from Debian when missing, as benches/load/run.sh does.
apt_updated=0
need() { # need COMMAND PACKAGE
    command -v "$1" >/dev/null 2>&1 && return 0
    [[ $(id -u) == 0 ]] || die "$1 is missing: apt-get install $2 (as root)"
    log "installing $2 (for $1)"
    if [[ $apt_updated == 0 ]]; then
        apt-get update -qq >/dev/null
        apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
    command -v "$1" >/dev/null 2>&1 || die "$2 installed but $1 is still not on PATH"
}
export PATH="$PATH:/usr/sbin:/sbin"
need redis-server redis-server
need redis-cli redis-tools
need nginx nginx
need wrk wrk
need curl curl
need python3 python3
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

# Processes we start, stopped (TERM, then KILL) and the temp dir removed on any exit.
WORK=$(mktemp -d -t hipache-scale.XXXXXX)
declare -a PIDS=()
stop_pid() {
    local pid=$1 i
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
cleanup() {
    local i
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do stop_pid "${PIDS[i]}"; done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_for() { # wait_for SECONDS WHAT COMMAND...
    local seconds=$1 what=$2 i
    shift 2
    for ((i = 0; i < seconds * 10; i++)); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    log "timed out after ${seconds}s waiting for $what"
    return 1
}
answers() { # answers PORT HOST EXPECTED
    [[ $(curl -s --max-time 2 -H "Host: $2" "http://127.0.0.1:$1/") == "$3" ]]
}
rss_kib() { # RSS of a process and its direct children, summed
    local sum=0 pid value
    for pid in "$1" $(pgrep -P "$1" || true); do
        value=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || true)
        sum=$((sum + ${value:-0}))
    done
    echo "$sum"
}
redis_calls() { # commands Redis ran so far (INFO commandstats, all commands)
    redis-cli -p "$REDIS_PORT" info commandstats |
        awk -F'[=,]' '/^cmdstat_/ { sum += $2 } END { print sum + 0 }'
}

# Set-up: hipache binary, Redis with the frontends, the origin, hipache.
if [[ -z ${HIPACHE_BIN:-} ]]; then
    log "building hipache (cargo build --release)"
    (cd "$ROOT" && cargo build --release --quiet) || die "cargo build --release failed"
    HIPACHE_BIN=$ROOT/target/release/hipache
fi
[[ -x $HIPACHE_BIN ]] || die "no hipache binary at $HIPACHE_BIN"

mkdir -p "$WORK/redis" "$WORK/origin" "$WORK/hipache"
REDIS_PORT=$(free_port)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$WORK/redis" \
    >"$WORK/redis/redis.log" 2>&1 &
PID_redis=$!
PIDS+=("$PID_redis")
wait_for 10 redis redis-cli -p "$REDIS_PORT" ping || die "redis-server did not start"

ORIGIN_PORT=$(free_port)
sed -e "s|@WORKERS@|$WORKERS|g" -e "s|@DIR@|$WORK/origin|g" -e "s|@PORT@|$ORIGIN_PORT|g" \
    "$HERE/../load/nginx-origin.conf.in" >"$WORK/origin/nginx.conf"
nginx -p "$WORK/origin" -c "$WORK/origin/nginx.conf" -e "$WORK/origin/error.log" \
    >"$WORK/origin/stdout.log" 2>&1 &
PIDS+=("$!")
wait_for 10 origin answers "$ORIGIN_PORT" any hello || die "origin nginx did not start"

log "loading $FRONTENDS frontends ($APPS applications) into Redis"
awk -v n="$FRONTENDS" -v apps="$APPS" -v url="http://127.0.0.1:$ORIGIN_PORT" 'BEGIN {
    for (i = 1; i <= n; i++) {
        key = "frontend:h" i ".scale.local"
        id = "app" (i % apps)
        printf "*4\r\n$5\r\nRPUSH\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n",
            length(key), key, length(id), id, length(url), url
    }
}' | redis-cli -p "$REDIS_PORT" --pipe >"$WORK/redis-pipe.log" 2>&1 ||
    die "loading frontends failed: $(tail -3 "$WORK/redis-pipe.log")"
loaded=$(redis-cli -p "$REDIS_PORT" dbsize)
((loaded >= FRONTENDS)) || die "only $loaded keys in Redis after loading $FRONTENDS frontends"
redis_mib=$(redis-cli -p "$REDIS_PORT" info memory | awk -F: '/^used_memory:/ { printf "%.0f", $2 / 1048576 }')

lru=''
[[ -n $LRU_SIZE ]] && lru=", \"lruCache\": {\"size\": $LRU_SIZE, \"ttl\": 3600}"
cat >"$WORK/hipache/config.json" <<JSON
{
  "server": { "workers": $WORKERS, "accessLog": null, "httpKeepAlive": true, "maxSockets": 256,
              "tcpTimeout": 30$lru },
  "http": { "port": 0, "bind": ["127.0.0.1"] },
  "driver": "redis://127.0.0.1:$REDIS_PORT",
  "user": "root"
}
JSON
"$HIPACHE_BIN" --config "$WORK/hipache/config.json" >/dev/null 2>"$WORK/hipache/stderr.log" &
PID_hipache=$!
PIDS+=("$PID_hipache")
address=''
for ((i = 0; i < 200; i++)); do
    address=$(sed -n 's/.*listening on.*address=\([0-9.]*:[0-9]*\).*/\1/p' "$WORK/hipache/stderr.log" | head -1)
    [[ -n $address ]] && break
    sleep 0.1
done
[[ -n $address ]] || die "hipache did not start: $(tail -5 "$WORK/hipache/stderr.log")"
PORT=${address##*:}
wait_for 10 "hipache route" answers "$PORT" "h$FRONTENDS.scale.local" hello ||
    die "hipache does not route the frontends: $(tail -5 "$WORK/hipache/stderr.log")"

# One wrk run with hosts.lua; prints "req/s calls/req rss_kib" (RSS after the run).
run() { # run SECONDS DISTRIBUTION
    local seconds=$1 distribution=$2 before after line requests duration errors non2xx
    before=$(redis_calls)
    timeout $((seconds + 120)) wrk -t "$WRK_THREADS" -c "$CONNS" -d "${seconds}s" --timeout 5s \
        -s "$HERE/hosts.lua" "http://127.0.0.1:$PORT/" -- "$FRONTENDS" "$distribution" \
        >"$WORK/wrk.out" 2>&1 || die "wrk failed ($distribution): $(tail -5 "$WORK/wrk.out")"
    after=$(redis_calls)
    line=$(grep '^RESULT ' "$WORK/wrk.out") || die "wrk printed no result: $(tail -5 "$WORK/wrk.out")"
    read -r _ requests duration errors non2xx <<<"$line"
    ((requests > 0)) || die "no request succeeded ($distribution)"
    ((errors + non2xx <= requests / 100)) ||
        log "warning: $distribution: $errors socket errors, $non2xx non-2xx of $requests"
    awk -v r="$requests" -v d="$duration" -v c=$((after - before)) -v m="$(rss_kib "$PID_hipache")" \
        'BEGIN { printf "%.0f %.3f %d\n", r / (d / 1e6), c / r, m }'
}

log "warming up: ${WARMUP}s of uniform traffic over $FRONTENDS hosts"
run "$WARMUP" uniform >/dev/null

printf '# hipache scale benchmark: %s frontends (%s apps), %s workers, %s conns, %ss runs\n' \
    "$FRONTENDS" "$APPS" "$WORKERS" "$CONNS" "$DURATION"
printf '# %s, %s cores, hipache %s, lruCache.size %s, Redis holds %s MiB\n' \
    "$(date -u '+%Y-%m-%d %H:%M UTC')" "$(nproc)" \
    "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)" "${LRU_SIZE:-default}" "$redis_mib"
printf '%-8s %10s %8s %14s %12s\n' hosts req/s ratio redis/request "RSS MiB"
base=''
for distribution in one uniform zipf; do
    read -r rps calls rss <<<"$(run "$DURATION" "$distribution")"
    base=${base:-$rps}
    printf '%-8s %10s %8s %14s %12s\n' "$distribution" "$rps" \
        "$(awk -v a="$rps" -v b="$base" 'BEGIN { printf "%.2f", a / b }')" "$calls" \
        "$(awk -v k="$rss" 'BEGIN { printf "%.0f", k / 1024 }')"
done
