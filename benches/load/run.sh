#!/usr/bin/env bash
# Load benchmark: wrk straight to an origin, through nginx and through hipache, on loopback,
# interleaved (A B C A B C) so that noise from a shared machine hits every target alike, and
# every figure printed as a ratio against nginx measured in the same run. See README.md here.
#
# Environment (defaults in brackets):
#   DURATION [10]  seconds measured per wrk run      WARMUP [2]  seconds of discarded warm-up
#   ROUNDS [2]     interleaved rounds                WORKERS [nproc]  nginx and hipache workers
#   PROFILES ["ka64 ka256 close scale mem"]          QUICK=1  2 s runs, 1 round (smoke check)
#   WRK_THREADS [2]  FRONTENDS [100000]  IDLE_CONNS [1000]  ACCESS_LOG [on|off]
#   NGINX_KEEPALIVE [64]  HIPACHE_BIN [build with cargo]  RESULTS_TSV [file for raw per-run rows]
#   PERF_OUT [unset]  a file: record hipache with perf during round 1's ka64 run, write the report
#   PERF_PROFILE [ka64]  PERF_TARGET [hipache]  which run PERF_OUT records (e.g. scale and
#                  "hipache 100000 hosts")
#   SCALE_WARMUP [60; 3 with QUICK]  seconds of random-host traffic that fill hipache's lookup
#                  caches before the first scale round (steady state, not a cold start)
#   METRICS [off]  on: hipache runs with the seed's `metrics` (statsd to a local UDP sink) and
#                  `logging.web` sections; both: a second hipache with them ("hipache+metrics")
#                  is measured right after the first in ka64, ka256 and close, and the summary
#                  prints CPU per request with metrics over without, same run
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)

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
PROFILES=${PROFILES:-ka64 ka256 close scale mem}
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

log() { printf '%s\n' "$*" >&2; }
die() {
    log "run.sh: error: $*"
    exit 1
}

for value in "$DURATION" "$WARMUP" "$ROUNDS" "$WORKERS" "$WRK_THREADS" "$FRONTENDS" "$IDLE_CONNS"; do
    [[ $value =~ ^[0-9]+$ ]] || die "numeric setting expected, got '$value'"
done
for profile in $PROFILES; do
    case $profile in ka64 | ka256 | close | scale | mem) ;; *) die "unknown profile '$profile'" ;; esac
done
[[ $ACCESS_LOG == on || $ACCESS_LOG == off ]] || die "ACCESS_LOG must be on or off"
[[ $METRICS == on || $METRICS == off || $METRICS == both ]] || die "METRICS must be on, off or both"

# ---------------------------------------------------------------------------------------------
# Tools: installed from Debian when missing, so the script runs on a fresh machine.
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
export PATH="$PATH:/usr/sbin:/sbin" # nginx lives in /usr/sbin
need redis-server redis-server
need redis-cli redis-tools
need nginx nginx
need wrk wrk
need curl curl
need python3 python3
[[ -z $PERF_OUT ]] || need perf linux-perf

# 1,000 idle connections plus wrk's need more descriptors than the usual 1024.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

# ---------------------------------------------------------------------------------------------
# Processes we start, stopped (TERM, then KILL) and their temp dir removed on any exit.
WORK=$(mktemp -d -t hipache-bench.XXXXXX)
declare -a PIDS=()
# Set by start_redis, start_nginx (through printf -v) and start_hipache.
REDIS_PORT='' PID_redis='' PORT_origin='' PID_origin='' PORT_nginx='' PID_nginx='' PORT_hipache='' PID_hipache=''
PORT_hipache_m='' PID_hipache_m='' STATSD_PORT=''

stop_pid() { # stop_pid PID: TERM, wait up to 10 s, then KILL
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
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        stop_pid "${PIDS[i]}"
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_for() { # wait_for SECONDS WHAT COMMAND...: polls COMMAND every 0.1 s
    local seconds=$1 what=$2 i
    shift 2
    for ((i = 0; i < seconds * 10; i++)); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    log "timed out after ${seconds}s waiting for $what"
    return 1
}

answers() { # answers PORT HOST EXPECTED: GET / returns EXPECTED
    [[ $(curl -s --max-time 2 -H "Host: $2" "http://127.0.0.1:$1/") == "$3" ]]
}

fill() { # fill TEMPLATE OUT KEY=VALUE...: substitutes @KEY@
    local template=$1 out=$2 pair script=()
    shift 2
    for pair in "$@"; do
        script+=(-e "s|@${pair%%=*}@|${pair#*=}|g")
    done
    sed "${script[@]}" "$template" >"$out"
}

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

start_statsd_sink() { # a UDP port that reads and drops what hipache's statsd sends; sets STATSD_PORT
    STATSD_PORT=$(free_port)
    python3 -c 'import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", int(sys.argv[1])))
while True:
    s.recv(65536)' "$STATSD_PORT" >/dev/null 2>&1 &
    PIDS+=("$!")
}

start_hipache() { # start_hipache [NAME [METRICS on|off]]: sets PORT_<NAME> and PID_<NAME>
    local name=${1:-hipache} metrics=${2:-off} pid address access_log=null i observability=
    local dir=$WORK/$name
    mkdir -p "$dir"
    [[ $ACCESS_LOG == on ]] && access_log="\"$dir/access.log\""
    if [[ $metrics == on ]]; then
        [[ -n ${STATSD_PORT:-} ]] || start_statsd_sink
        observability=", \"metrics\": { \"host\": \"127.0.0.1\", \"port\": $STATSD_PORT, \"session\": \"bench\" },"
        observability+=" \"logging\": { \"web\": { \"host\": \"127.0.0.1\", \"port\": 0 } }"
    fi
    fill "$HERE/hipache.json.in" "$dir/config.json" WORKERS="$WORKERS" ACCESS_LOG="$access_log" \
        REDIS_PORT="$REDIS_PORT" OBSERVABILITY="$observability"
    "$HIPACHE_BIN" --config "$dir/config.json" >"$dir/stdout.log" 2>"$dir/stderr.log" &
    pid=$!
    PIDS+=("$pid")
    address=
    for ((i = 0; i < 200; i++)); do
        address=$(sed -n 's/.*listening on.*address=\([0-9.]*:[0-9]*\).*/\1/p' "$dir/stderr.log" | head -1)
        [[ -n $address ]] && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    [[ -n $address ]] || die "hipache logged no 'listening on ... address=' line: $(tail -5 "$dir/stderr.log")"
    printf -v "PORT_$name" '%s' "${address##*:}"
    printf -v "PID_$name" '%s' "$pid"
    wait_for 10 "$name ping" answers "${address##*:}" __ping__ ok ||
        die "$name does not answer Host: __ping__ on $address: $(tail -5 "$dir/stderr.log")"
    wait_for 10 "$name route" answers "${address##*:}" "$HOST" hello ||
        die "$name does not route $HOST to the origin: $(tail -5 "$dir/stderr.log")"
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
    start_nginx nginx "$HERE/nginx-proxy.conf.in" ORIGIN_PORT="$PORT_origin" \
        KEEPALIVE="$NGINX_KEEPALIVE" ACCESS_LOG="$access_log"
    start_hipache hipache "$([[ $METRICS == on ]] && echo on || echo off)"
    [[ $METRICS != both ]] || start_hipache hipache_m on
}

# ---------------------------------------------------------------------------------------------
# Measuring: memory and CPU of a process and its direct children (master + workers).
tree_pids() {
    echo "$1"
    pgrep -P "$1" || true
}

rss_kib() { # current RSS, summed
    local sum=0 pid value
    for pid in $(tree_pids "$1"); do
        value=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || true)
        sum=$((sum + ${value:-0}))
    done
    echo "$sum"
}

cpu_ticks() { # utime + stime, plus reaped children's, summed (clock ticks)
    local sum=0 pid value
    for pid in $(tree_pids "$1"); do
        # Fields after the ")" that ends the command name: utime is the 12th, cstime the 15th.
        value=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | awk '{ print $12 + $13 + $14 + $15 }' || true)
        sum=$((sum + ${value:-0}))
    done
    echo "$sum"
}
TICK_US=$((1000000 / $(getconf CLK_TCK)))

sample_rss() { # sample_rss PID OUT: writes the peak RSS seen to OUT every 0.2 s, at most 5 min
    local pid=$1 out=$2 peak=0 now i
    for ((i = 0; i < 1500; i++)); do
        now=$(rss_kib "$pid")
        ((now > peak)) && peak=$now
        echo "$peak" >"$out"
        sleep 0.2
    done
}

# One wrk run (wrk options, then optionally -- and the Lua script's arguments); appends a row to $WORK/results.tsv:
# profile round target conns req/s p50_us p99_us errors non2xx peak_rss_kib cpu_us_per_req requests
# redis_cpu_us_per_req
measure() { # measure PROFILE ROUND TARGET CONNS PORT PID [wrk args...]
    local profile=$1 round=$2 target=$3 conns=$4 port=$5 pid=$6 out sampler ticks line
    local requests duration p50 p99 errors non2xx redis_ticks
    shift 6
    # wrk wants the URL before the `--` that starts the Lua script's own arguments.
    local -a args=(-t "$WRK_THREADS" -c "$conns" --timeout 5s)
    while (($# > 0)) && [[ $1 != -- ]]; do
        args+=("$1")
        shift
    done
    args+=("http://127.0.0.1:$port/" "$@")
    out=$WORK/wrk.out
    if ((WARMUP > 0)); then
        timeout $((WARMUP + 30)) wrk -d "${WARMUP}s" "${args[@]}" >/dev/null 2>&1 || true
    fi
    local perf_pid=''
    if [[ -n $PERF_OUT && $profile == "$PERF_PROFILE" && $target == "$PERF_TARGET" && $round == 1 ]]; then
        # cpu-clock, not cycles: hardware counters are often missing in VMs. DWARF unwinding,
        # since the release profile keeps debug info but no frame pointers. The workers serve,
        # not the master: record the master's children.
        local recorded
        recorded=$(pgrep -P "$pid" | paste -sd, -)
        perf record -e cpu-clock -F 499 --call-graph dwarf,16384 -p "${recorded:-$pid}" -o "$WORK/perf.data" \
            -- sleep "$DURATION" >"$WORK/perf.log" 2>&1 &
        perf_pid=$!
    fi
    sample_rss "$pid" "$WORK/rss.peak" &
    sampler=$!
    ticks=$(cpu_ticks "$pid")
    redis_ticks=$(cpu_ticks "$PID_redis")
    if ! timeout $((DURATION + 60)) wrk -d "${DURATION}s" "${args[@]}" >"$out" 2>&1; then
        kill "$sampler" 2>/dev/null || true
        die "wrk failed on $target ($profile): $(tail -5 "$out")"
    fi
    ticks=$(($(cpu_ticks "$pid") - ticks))
    redis_ticks=$(($(cpu_ticks "$PID_redis") - redis_ticks))
    kill "$sampler" 2>/dev/null || true
    wait "$sampler" 2>/dev/null || true
    if [[ -n $perf_pid ]]; then
        wait "$perf_pid" || log "warning: perf record failed: $(tail -3 "$WORK/perf.log")"
        write_perf_report
    fi
    line=$(grep '^RESULT ' "$out" || true)
    [[ -n $line ]] || die "wrk printed no result for $target ($profile): $(tail -5 "$out")"
    read -r _ requests duration p50 p99 errors non2xx <<<"$line"
    ((requests > 0)) || die "no request succeeded through $target ($profile)"
    if ((errors + non2xx > requests / 100)); then
        log "warning: $target ($profile): $errors socket errors, $non2xx non-2xx answers of $requests"
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$profile" "$round" "$target" "$conns" \
        "$(awk -v r="$requests" -v d="$duration" 'BEGIN { printf "%.0f", r / (d / 1e6) }')" \
        "$p50" "$p99" "$errors" "$non2xx" "$(cat "$WORK/rss.peak")" \
        "$(awk -v t="$ticks" -v u="$TICK_US" -v r="$requests" 'BEGIN { printf "%.1f", t * u / r }')" \
        "$requests" \
        "$(awk -v t="$redis_ticks" -v u="$TICK_US" -v r="$requests" 'BEGIN { printf "%.1f", t * u / r }')" \
        >>"$WORK/results.tsv"
    log "  $(tail -1 "$WORK/results.tsv" | awk -F'\t' '{ printf "%-8s %-18s c=%-4s %8s req/s  p99 %s us", $1, $3, $4, $5, $7 }')"
}

write_perf_report() { # the flat profile, then inclusive costs of hipache's and its libraries' code
    # `head` closes the pipes early: a SIGPIPE'd perf report is expected, hence the `|| true`s.
    {
        echo "# perf: $PERF_TARGET, $PERF_PROFILE, round 1 ($(date -u '+%Y-%m-%d %H:%M UTC'), rev $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null))"
        echo "## self time by shared object"
        perf report -i "$WORK/perf.data" --no-children --sort dso -g none --stdio 2>/dev/null | grep '%' || true
        echo "## self time by symbol (top 40)"
        perf report -i "$WORK/perf.data" --no-children --sort dso,symbol -g none --stdio 2>/dev/null |
            grep '%' | head -40 || true
        echo "## inclusive time of hipache, redis and hyper functions (top 60)"
        perf report -i "$WORK/perf.data" --children --sort symbol -g none --stdio 2>/dev/null |
            grep '%' | grep -E 'hipache::|redis::|hyper::proto|malloc|free|writev|recv|epoll' | head -60 || true
    } | sed -e 's/  *$//' -e 's/ *-  *-$//' >"$PERF_OUT"
    log "perf report written to $PERF_OUT"
}

# The idle-connection memory profile: fresh proxies, RSS before and with IDLE_CONNS open.
measure_idle() { # measure_idle TARGET PORT PID
    local target=$1 port=$2 pid=$3 before peak=0 now ready=$WORK/idle.ready client i
    rm -f "$ready"
    before=$(rss_kib "$pid")
    python3 "$HERE/idle_conns.py" "$port" "$IDLE_CONNS" "$IDLE_HOLD" "$HOST" "$ready" \
        >"$WORK/idle.log" 2>&1 &
    client=$!
    wait_for 70 "idle connections" test -e "$ready" ||
        die "could not open $IDLE_CONNS connections to $target: $(tail -3 "$WORK/idle.log")"
    for ((i = 0; i < 10; i++)); do
        now=$(rss_kib "$pid")
        ((now > peak)) && peak=$now
        sleep 0.2
    done
    wait "$client" || die "idle connection client failed on $target: $(tail -3 "$WORK/idle.log")"
    printf 'mem\t1\t%s\t%s\t%s\t%s\n' "$target" "$IDLE_CONNS" "$before" "$peak" >>"$WORK/idle.tsv"
    log "  mem      $target: $((before / 1024)) MiB idle, $((peak / 1024)) MiB with $IDLE_CONNS connections"
}

# ---------------------------------------------------------------------------------------------
# Set-up.
if [[ -z ${HIPACHE_BIN:-} ]]; then
    log "building hipache (cargo build --release)"
    (cd "$ROOT" && cargo build --release --quiet) || die "cargo build --release failed"
    HIPACHE_BIN=$ROOT/target/release/hipache
fi
[[ -x $HIPACHE_BIN ]] || die "no hipache binary at $HIPACHE_BIN"

start_redis
start_nginx origin "$HERE/nginx-origin.conf.in"
redis-cli -p "$REDIS_PORT" rpush "frontend:$HOST" bench "http://127.0.0.1:$PORT_origin" >/dev/null
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
rev=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
git -C "$ROOT" diff --quiet HEAD -- src Cargo.toml 2>/dev/null || rev="$rev+dirty"
cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)

{
    echo "# hipache load benchmark"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); machine: $(nproc) cores, ${cpu_model:-unknown CPU}, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)"
    echo "- versions: $(nginx -v 2>&1 | sed 's/nginx version: //'), hipache $rev, $(wrk --version 2>&1 | head -1 | awk '{ print "wrk " $2 }'), $(redis-server --version | awk '{ print $3 }' | tr -d 'v=' | sed 's/^/redis /')"
    echo "- workers: WORKERS=$WORKERS; nginx runs $nginx_procs processes (master + workers); hipache runs $hipache_procs process(es) with server.workers=$WORKERS$( ((hipache_procs == 1)) && echo ' (one serving process: server.workers not honoured yet)')"
    echo "- wrk: $WRK_THREADS threads, ${WARMUP}s warm-up + ${DURATION}s measured, $ROUNDS interleaved round(s); access log $ACCESS_LOG on both proxies; hipache metrics $METRICS; nginx upstream keepalive $NGINX_KEEPALIVE"
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
        case $profile in
        ka64 | ka256)
            conns=${profile#ka}
            measure "$profile" "$round" direct "$conns" "$PORT_origin" "$PID_origin" -s "$HERE/report.lua" -H "Host: $HOST"
            measure "$profile" "$round" nginx "$conns" "$PORT_nginx" "$PID_nginx" -s "$HERE/report.lua" -H "Host: $HOST"
            measure "$profile" "$round" hipache "$conns" "$PORT_hipache" "$PID_hipache" -s "$HERE/report.lua" -H "Host: $HOST"
            if [[ $METRICS == both ]]; then
                measure "$profile" "$round" hipache+metrics "$conns" "$PORT_hipache_m" "$PID_hipache_m" \
                    -s "$HERE/report.lua" -H "Host: $HOST"
            fi
            ;;
        close)
            targets=(direct nginx hipache)
            [[ $METRICS == both ]] && targets+=(hipache+metrics)
            for target in "${targets[@]}"; do
                port_var=PORT_$target pid_var=PID_$target
                [[ $target == direct ]] && port_var=PORT_origin pid_var=PID_origin
                [[ $target == hipache+metrics ]] && port_var=PORT_hipache_m pid_var=PID_hipache_m
                measure close "$round" "$target" 64 "${!port_var}" "${!pid_var}" -s "$HERE/report.lua" \
                    -H "Host: $HOST" -H 'Connection: close'
            done
            ;;
        scale)
            # Same Lua request function for every row, so wrk's own cost is the same.
            cat "$HERE/random_host.lua" "$HERE/report.lua" >"$WORK/scale.lua"
            measure scale "$round" "nginx ${FRONTENDS} hosts" 64 "$PORT_nginx" "$PID_nginx" \
                -s "$WORK/scale.lua" -- "$FRONTENDS" "h%d.scale.local"
            measure scale "$round" "hipache 1 host" 64 "$PORT_hipache" "$PID_hipache" \
                -s "$WORK/scale.lua" -- 1 "$HOST"
            if ((!scale_warm && SCALE_WARMUP > 0)); then
                # Steady state, as a proxy serving these hosts all day would be: every worker's
                # lookup cache has seen (nearly) every host before the measured runs.
                log "scale: warming hipache's lookup caches over ${FRONTENDS} hosts for ${SCALE_WARMUP}s"
                timeout $((SCALE_WARMUP + 30)) wrk -t "$WRK_THREADS" -c 64 -d "${SCALE_WARMUP}s" \
                    -s "$WORK/scale.lua" "http://127.0.0.1:$PORT_hipache/" "$FRONTENDS" "h%d.scale.local" \
                    >/dev/null 2>&1 || true
                scale_warm=1
            fi
            measure scale "$round" "hipache ${FRONTENDS} hosts" 64 "$PORT_hipache" "$PID_hipache" \
                -s "$WORK/scale.lua" -- "$FRONTENDS" "h%d.scale.local"
            ;;
        mem)
            # Fresh proxies, so earlier profiles' buffers do not count; once is enough.
            if ((round == 1)); then
                stop_target "$PID_hipache"
                [[ $METRICS != both ]] || stop_target "$PID_hipache_m"
                stop_target "$PID_nginx"
                start_proxies
                scale_warm=0 # fresh workers, empty lookup caches
                measure_idle nginx "$PORT_nginx" "$PID_nginx"
                measure_idle hipache "$PORT_hipache" "$PID_hipache"
            fi
            ;;
        esac
    done
done

[[ -n $RESULTS_TSV ]] && cp "$WORK/results.tsv" "$RESULTS_TSV"

# ---------------------------------------------------------------------------------------------
# The table: means over rounds, spread = (max - min) / mean, ratios against nginx's row.
{
    cat "$WORK/header.md"
    echo "- load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo
    awk -F'\t' -v frontends="$FRONTENDS" '
    function ratio(a, b) { return (b > 0) ? sprintf("%.2f×", a / b) : "-" }
    FNR == 1 && FILENAME ~ /idle/ { idle = 1 }
    idle {
        mem_before[$3] = $5; mem_peak[$3] = $6; mem_conns = $4; mem_order[++mem_n] = $3; next
    }
    {
        key = $1 SUBSEP $3
        if (!(key in n)) { order[++count] = key; conns[key] = $4 }
        n[key]++; rps[key] += $5; p50[key] += $6; p99[key] += $7
        err[key] += $8 + $9; cpu[key] += $11; redis[key] += $13
        if (!(key in lo) || $5 < lo[key]) lo[key] = $5
        if ($5 > hi[key]) hi[key] = $5
        if ($10 > rss[key]) rss[key] = $10
    }
    END {
        if (count > 0) {
            print "| profile | target | conns | req/s | spread | vs nginx | p50 ms | p99 ms | vs nginx | peak RSS MiB | vs nginx | CPU µs/req | vs nginx | Redis µs/req | errors |"
            print "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
        }
        for (i = 1; i <= count; i++) {
            key = order[i]; split(key, part, SUBSEP); profile = part[1]; target = part[2]
            m = n[key]; r = rps[key] / m
            ref = profile SUBSEP "nginx"
            if (profile == "scale") ref = profile SUBSEP "nginx " frontends " hosts"
            vs_r = vs_p = vs_m = vs_c = ""
            if (target ~ /^hipache/ && (ref in n)) {
                vs_r = ratio(r, rps[ref] / n[ref]); vs_p = ratio(p99[key] / m, p99[ref] / n[ref])
                vs_m = ratio(rss[key], rss[ref]); vs_c = ratio(cpu[key] / m, cpu[ref] / n[ref])
            }
            label = (target == "direct") ? "direct (origin)" : target
            printf "| %s | %s | %d | %.0f | %.0f%% | %s | %.2f | %.2f | %s | %.1f | %s | %.1f | %s | %.1f | %d |\n",
                (profile == "close" ? "close (Connection: close)" : profile), label, conns[key], r,
                (r > 0 ? 100 * (hi[key] - lo[key]) / r : 0), vs_r, p50[key] / m / 1000,
                p99[key] / m / 1000, vs_p, rss[key] / 1024, vs_m, cpu[key] / m, vs_c,
                redis[key] / m, err[key]
        }
        for (i = 1; i <= count; i++) {
            key = order[i]; split(key, part, SUBSEP)
            off = part[1] SUBSEP "hipache"
            if (part[2] == "hipache+metrics" && (off in n))
                printf "\nmetrics on / off, %s, same run: CPU per request %s, req/s %s\n", part[1],
                    ratio(cpu[key] / n[key], cpu[off] / n[off]), ratio(rps[key] / n[key], rps[off] / n[off])
        }
        one = "scale" SUBSEP "hipache 1 host"; many = "scale" SUBSEP "hipache " frontends " hosts"
        if ((one in n) && (many in n))
            printf "\nscale: hipache with %d frontends / with 1 frontend, same run: %s req/s\n",
                frontends, ratio(rps[many] / n[many], rps[one] / n[one])
        if (mem_n > 0) {
            printf "\n| memory, %d idle keep-alive connections | RSS before MiB | RSS with them MiB | KiB per connection | vs nginx |\n", mem_conns
            print "|---|---|---|---|---|"
            for (i = 1; i <= mem_n; i++) {
                t = mem_order[i]
                printf "| %s | %.1f | %.1f | %.1f | %s |\n", t, mem_before[t] / 1024, mem_peak[t] / 1024,
                    (mem_peak[t] - mem_before[t]) / mem_conns,
                    (t == "hipache" ? ratio(mem_peak[t], mem_peak["nginx"]) : "")
            }
        }
    }' "$WORK/results.tsv" "$WORK/idle.tsv"
    echo
    echo "CPU µs/req: CPU time of the target's processes (the origin's for direct) over requests served;"
    echo "Redis µs/req: CPU time redis-server spent during the run per request (hipache's lookups; 0 for the others);"
    echo "RSS: sum over master + workers, sampled every 0.2 s; spread: (max - min) / mean of req/s over rounds."
}
