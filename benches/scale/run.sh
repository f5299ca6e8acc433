#!/usr/bin/env bash
# Scale benchmark (not a test): FRONTENDS frontends in Redis, hipache in front of an nginx origin,
# and wrk runs with the same script: uniformly random hosts cold (right after the start, before
# any warm-up), then warm: one host, uniformly random hosts, Zipf(s = 1) hosts; then cold again,
# right after a SIGHUP (new workers, empty caches). Prints req/s (and the ratio to one host),
# Redis commands per request (INFO commandstats delta), CPU per request of hipache and Redis
# (/proc/<pid>/stat deltas), and hipache's RSS (master + workers; sampled every second, the
# highest of each run, and of the whole benchmark at the end). Needs a quiet machine for figures that mean
# anything; QUICK=1 (or a small FRONTENDS) is a smoke check of the script itself.
#
# Environment (defaults in brackets):
#   FRONTENDS [1000000]  frontends loaded, "frontend:h<i>.scale.local" = ["app<i % APPS>", origin]
#   APPS [1000]          distinct frontend ids (applications); every frontend has the one origin
#   WORKERS [2]          hipache (and origin nginx) workers
#   LRU_SIZE [unset]     server.lruCache.size; unset: no lruCache section (the default cache)
#   WARMUP [600]         most seconds of warm-up before measuring: sweeps over every host, in
#                        WARM_CHUNK [20] second runs, until one ran with fewer than WARM_MISSES
#                        [0.001] cache misses per request, so each worker's cache has seen the
#                        hosts (steady state, not a cold start)
#   DURATION [20]        seconds per measured run        CONNS [64]  WRK_THREADS [2]
#   COLD [60]            seconds of each cold run (uniform hosts from empty caches: right after
#                        the start and right after a SIGHUP); 0: no cold runs
#   DISTRIBUTIONS [one uniform zipf]  the runs, in order; ratios are to the first one's req/s
#                        (e.g. "one uniform zipf one" to see the drift of a noisy machine)
#   HIPACHE_BIN [cargo build --release]                  QUICK=1: 20,000 frontends, 3 s runs
#   PERF [unset]         a directory: perf record (cpu-clock, call graphs) of hipache's workers
#                        during each measured run, into PERF/<distribution>.data
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
# shellcheck source=SCRIPTDIR/../common.sh
source "$ROOT/benches/common.sh"

if [[ ${QUICK:-0} == 1 ]]; then
    FRONTENDS=${FRONTENDS:-20000} WARMUP=${WARMUP:-3} DURATION=${DURATION:-3} COLD=${COLD:-3}
fi
COLD=${COLD:-60}
FRONTENDS=${FRONTENDS:-1000000}
APPS=${APPS:-1000}
WORKERS=${WORKERS:-2}
LRU_SIZE=${LRU_SIZE:-}
WARMUP=${WARMUP:-600}
WARM_CHUNK=${WARM_CHUNK:-20}
WARM_MISSES=${WARM_MISSES:-0.001}
DURATION=${DURATION:-20}
CONNS=${CONNS:-64}
WRK_THREADS=${WRK_THREADS:-2}
DISTRIBUTIONS=${DISTRIBUTIONS:-one uniform zipf}
export WRK_THREADS # hosts.lua interleaves the threads' sweeps

for value in "$FRONTENDS" "$APPS" "$WORKERS" "$WARMUP" "$WARM_CHUNK" "$DURATION" "$COLD" "$CONNS" "$WRK_THREADS" ${LRU_SIZE:+"$LRU_SIZE"}; do
    [[ $value =~ ^[0-9]+$ ]] || die "numeric setting expected, got '$value'"
done
((FRONTENDS > 0 && APPS > 0 && WARM_CHUNK > 0)) || die "FRONTENDS, APPS and WARM_CHUNK must be positive"
[[ $WARM_MISSES =~ ^[0-9]*\.?[0-9]+$ ]] || die "WARM_MISSES: a number expected, got '$WARM_MISSES'"

# Tools: installed from Debian when missing (common.sh `need`).
export PATH="$PATH:/usr/sbin:/sbin"
need redis-server redis-server
need redis-cli redis-tools
need nginx nginx
need wrk wrk
need curl curl
need python3 python3
need /usr/bin/time time
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

# Processes we start, stopped (TERM, then KILL) and the temp dir removed on any exit.
WORK=$(mktemp -d -t hipache-scale.XXXXXX)
declare -a PIDS=()
trap cleanup EXIT
trap 'exit 130' INT TERM

redis_lookups() { # lookups the workers answered with a Redis round trip (admin /metrics)
    curl -s --max-time 5 "http://$ADMIN/metrics" |
        awk '/^hipache_lookups_total\{source="redis"\}/ { print $2; found = 1 } END { if (!found) print 0 }'
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
    built_from=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
else
    built_from=$HIPACHE_BIN # a binary given: the checkout's commit may not be what it runs
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
PID_origin=$!
PIDS+=("$PID_origin")
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
  "logging": { "web": { "host": "127.0.0.1", "port": 0 } },
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
ADMIN=$(sed -n 's/.*admin page serving.*admin=\([0-9.]*:[0-9]*\).*/\1/p' "$WORK/hipache/stderr.log" | head -1)
[[ -n $ADMIN ]] || die "hipache logged no admin address: $(tail -5 "$WORK/hipache/stderr.log")"
wait_for 10 "hipache route" answers "$PORT" "h$FRONTENDS.scale.local" hello ||
    die "hipache does not route the frontends: $(tail -5 "$WORK/hipache/stderr.log")"

# hipache's RSS (master + workers, KiB) every second, one line each, for the whole benchmark:
# a run reports the highest sample taken while it ran.
(
    while kill -0 "$PID_hipache" 2>/dev/null; do
        rss_kib "$PID_hipache"
        sleep 1
    done
) >"$WORK/rss.samples" 2>/dev/null &
PIDS+=("$!")
samples() { wc -l <"$WORK/rss.samples"; }
max_rss_kib() { # max_rss_kib FROM: the highest sample after line FROM (the current RSS if none)
    awk -v from="$1" -v now="$(rss_kib "$PID_hipache")" \
        'NR > from && $1 > max { max = $1 } END { print (max > now ? max : now) }' "$WORK/rss.samples"
}

# One wrk run with hosts.lua; prints "req/s calls/req misses/req hipache_us wrk_us redis_us
# origin_us max_rss_kib": Redis commands and cache misses (lookups answered by Redis) per request, CPU
# time per request in microseconds of hipache (master and workers), wrk, redis-server, nginx (user +
# system; on a shared machine these move far less than req/s), the highest RSS sampled during
# the run.
run() { # run SECONDS DISTRIBUTION [START]
    local seconds=$1 distribution=$2 before after line requests duration errors non2xx
    local lookups_before lookups_after cpu_before cpu_after redis_before redis_after wrk_cpu
    local origin_before origin_after sampled
    sampled=$(samples)
    before=$(redis_calls)
    lookups_before=$(redis_lookups)
    cpu_before=$(cpu_ticks "$PID_hipache")
    redis_before=$(cpu_ticks "$PID_redis")
    origin_before=$(cpu_ticks "$PID_origin")
    local perf_pid=''
    if [[ -n ${PERF:-} && $distribution != sweep ]]; then
        perf record -q -e cpu-clock -F 999 -g -p "$(pgrep -d, -P "$PID_hipache")" \
            -o "$PERF/$distribution.data" -- sleep "$seconds" >/dev/null 2>&1 &
        perf_pid=$!
    fi
    /usr/bin/time -f '%U %S' -o "$WORK/wrk.time" \
        timeout $((seconds + 120)) wrk -t "$WRK_THREADS" -c "$CONNS" -d "${seconds}s" --timeout 5s \
        -s "$HERE/hosts.lua" "http://127.0.0.1:$PORT/" -- "$FRONTENDS" "$distribution" "${3:-0}" \
        >"$WORK/wrk.out" 2>&1 || die "wrk failed ($distribution): $(tail -5 "$WORK/wrk.out")"
    cpu_after=$(cpu_ticks "$PID_hipache")
    [[ -n $perf_pid ]] && wait "$perf_pid"
    redis_after=$(cpu_ticks "$PID_redis")
    origin_after=$(cpu_ticks "$PID_origin")
    after=$(redis_calls)
    lookups_after=$(redis_lookups)
    wrk_cpu=$(awk 'END { print $1 + $2 }' "$WORK/wrk.time")
    line=$(grep '^RESULT ' "$WORK/wrk.out") || die "wrk printed no result: $(tail -5 "$WORK/wrk.out")"
    read -r _ requests duration errors non2xx <<<"$line"
    ((requests > 0)) || die "no request succeeded ($distribution)"
    ((errors + non2xx <= requests / 100)) ||
        log "warning: $distribution: $errors socket errors, $non2xx non-2xx of $requests"
    awk -v r="$requests" -v d="$duration" -v c=$((after - before)) \
        -v l="$((lookups_after - lookups_before))" -v h=$((cpu_after - cpu_before)) \
        -v w="$wrk_cpu" -v s=$((redis_after - redis_before)) \
        -v o=$((origin_after - origin_before)) -v tick="$(getconf CLK_TCK)" \
        -v m="$(max_rss_kib "$sampled")" 'BEGIN {
            printf "%.0f %.3f %.4f %.1f %.1f %.1f %.1f %d\n", r / (d / 1e6), c / r, l / r,
                h / tick / r * 1e6, w / r * 1e6, s / tick / r * 1e6, o / tick / r * 1e6, m
        }'
}

# Cold: the first COLD seconds after the start, every worker's cache empty at first.
cold_start=''
if ((COLD > 0)); then
    log "cold run: ${COLD}s of uniform hosts right after the start"
    cold_start=$(run "$COLD" uniform)
fi

# Warm: every worker has seen (almost) every host, as a long-running proxy has. Sweeps ask for
# each host once per pass on whichever connection is free, so a host a worker has not seen yet is
# about one in 2^passes; sweep until a chunk's lookups needed Redis for fewer than WARM_MISSES of
# its requests (or WARMUP seconds have passed: then the table says how cold it still was).
log "warming up: sweeps over $FRONTENDS hosts until misses/request < $WARM_MISSES (at most ${WARMUP}s)"
warmed=0 start=0
while ((warmed < WARMUP)); do
    chunk=$((WARM_CHUNK < WARMUP - warmed ? WARM_CHUNK : WARMUP - warmed))
    read -r rps _ misses _ <<<"$(run "$chunk" sweep "$start")"
    warmed=$((warmed + chunk))
    # The next sweep goes on about where this one stopped, so passes cover the hosts evenly.
    start=$(((start + rps * chunk) % FRONTENDS))
    log "  ${warmed}s: $rps req/s, $misses misses/request"
    awk -v m="$misses" -v t="$WARM_MISSES" 'BEGIN { exit !(m < t) }' && break
done

printf '# hipache scale benchmark: %s frontends (%s apps), %s workers, %s conns, %ss runs\n' \
    "$FRONTENDS" "$APPS" "$WORKERS" "$CONNS" "$DURATION"
printf '# %s, %s cores, hipache %s, lruCache.size %s, Redis holds %s MiB\n' \
    "$(date -u '+%Y-%m-%d %H:%M UTC')" "$(nproc)" \
    "$built_from" "${LRU_SIZE:-default}" "$redis_mib"
printf '# load average before the runs: %s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
row() { # row NAME BASE "RUN OUTPUT"
    local rps calls misses hipache_us wrk_us redis_us origin_us rss
    read -r rps calls misses hipache_us wrk_us redis_us origin_us rss <<<"$3"
    printf '%-12s %9s %6s %8s %10s %8s %8s %8s %8s %8s\n' "$1" "$rps" \
        "$(awk -v a="$rps" -v b="${2:-$rps}" 'BEGIN { printf "%.2f", a / b }')" "$calls" "$misses" \
        "$hipache_us" "$wrk_us" "$redis_us" "$origin_us" \
        "$(awk -v k="$rss" 'BEGIN { printf "%.0f", k / 1024 }')"
}
printf '%-12s %9s %6s %8s %10s %8s %8s %8s %8s %8s\n' hosts req/s ratio redis/req \
    misses/req "hipache" wrk redis origin "RSS MiB"
printf '%-12s %9s %6s %8s %10s %8s %8s %8s %8s %8s\n' '' '' '' '' '' "CPU us" "CPU us" "CPU us" "CPU us" "max"
base=''
for distribution in $DISTRIBUTIONS; do
    line=$(run "$DURATION" "$distribution")
    base=${base:-${line%% *}}
    row "$distribution" "$base" "$line"
done
if [[ -n $cold_start ]]; then
    row "cold start" "$base" "$cold_start"
    # A reload: new workers, each with an empty cache, while the old ones drain.
    readied() { grep -c 'reload done' "$WORK/hipache/stderr.log" || true; }
    more_ready() { (($(readied) > $1)); }
    ready_before=$(readied)
    kill -HUP "$PID_hipache"
    wait_for 60 "the reloaded workers" more_ready "$ready_before" ||
        die "no new workers after SIGHUP: $(tail -5 "$WORK/hipache/stderr.log")"
    row "cold SIGHUP" "$base" "$(run "$COLD" uniform)"
fi
printf '# highest RSS sampled over the whole benchmark (master + workers): %s MiB; PSS now: %s MiB\n' \
    "$(awk -v k="$(max_rss_kib 0)" 'BEGIN { printf "%.0f", k / 1024 }')" \
    "$(awk -v k="$(pss_kib "$PID_hipache")" 'BEGIN { printf "%.0f", k / 1024 }')"
printf '# load average after the runs: %s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
