#!/usr/bin/env bash
# The io_uring spike, measured: wrk (1 thread, keep-alive) against hipache and against the two
# variants of the spike proxy (epoll = hipache's shape, uring = batched submissions), all in
# front of the same nginx origin, in interleaved rounds. Prints req/s, p99, CPU µs per request
# (utime+stime of the proxy's processes) and, from a separate short run per target, system calls
# per request. Loopback only, free ports, everything in a temp dir removed on exit. README.md.
#
# Environment (defaults in brackets):
#   DURATION [10]  WARMUP [2]  ROUNDS [3]  WORKERS_LIST ["1 2"]  CONNS_LIST ["64 256"]
#   ORIGIN_WORKERS [nproc]  SYSCALL_SECONDS [3]  SYSCALL_TOOL [perf if it works, else strace]
#   HIPACHE_BIN [cargo build --release of the repo]  SPIKE_BIN [cargo build --release here]
#   RESULTS_TSV [a file to keep the raw rows]  QUICK=1: 2 s runs, 1 round, no warm-up
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
# shellcheck source=SCRIPTDIR/../common.sh
source "$ROOT/benches/common.sh"
LOAD=$ROOT/benches/load

if [[ ${QUICK:-0} == 1 ]]; then
    DURATION=${DURATION:-2} WARMUP=${WARMUP:-0} ROUNDS=${ROUNDS:-1} SYSCALL_SECONDS=${SYSCALL_SECONDS:-2}
fi
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
ROUNDS=${ROUNDS:-3}
WORKERS_LIST=${WORKERS_LIST:-1 2}
CONNS_LIST=${CONNS_LIST:-64 256}
ORIGIN_WORKERS=${ORIGIN_WORKERS:-$(nproc)}
SYSCALL_SECONDS=${SYSCALL_SECONDS:-3}
RESULTS_TSV=${RESULTS_TSV:-}
HOST=bench.local
TARGETS=(hipache epoll uring)

[[ $WARMUP =~ ^[0-9]+$ ]] || die "WARMUP must be a number of seconds, got '$WARMUP'"
for value in "$DURATION" "$ROUNDS" "$ORIGIN_WORKERS" "$SYSCALL_SECONDS" $WORKERS_LIST $CONNS_LIST; do
    [[ $value =~ ^[1-9][0-9]*$ ]] || die "positive number expected, got '$value'"
done
export PATH="$PATH:/usr/sbin:/sbin"
for tool in nginx wrk redis-server redis-cli curl openssl python3; do
    command -v "$tool" >/dev/null || die "$tool is missing (benches/load/run.sh installs the same tools)"
done
if [[ -z ${SYSCALL_TOOL:-} ]]; then
    SYSCALL_TOOL=strace
    perf stat -e raw_syscalls:sys_enter -- true >/dev/null 2>&1 && SYSCALL_TOOL=perf
fi
[[ $SYSCALL_TOOL == perf || $SYSCALL_TOOL == strace || $SYSCALL_TOOL == none ]] ||
    die "SYSCALL_TOOL must be perf, strace or none"
[[ $SYSCALL_TOOL != strace ]] || command -v strace >/dev/null || SYSCALL_TOOL=none
ulimit -n 65536 2>/dev/null || true

WORK=$(mktemp -d -t uring-spike.XXXXXX)
declare -a PIDS=()
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- Binaries -----------------------------------------------------------------------------------
if [[ -z ${SPIKE_BIN:-} ]]; then
    log "building the spike (cargo build --release in $HERE)"
    (cd "$HERE" && cargo build --release --quiet) || die "cargo build of the spike failed"
    SPIKE_BIN=$HERE/target/release/uring-spike
fi
if [[ -z ${HIPACHE_BIN:-} ]]; then
    log "building hipache (cargo build --release in $ROOT)"
    (cd "$ROOT" && cargo build --release --quiet) || die "cargo build --release of hipache failed"
    HIPACHE_BIN=$ROOT/target/release/hipache
fi
[[ -x $SPIKE_BIN && -x $HIPACHE_BIN ]] || die "missing binary: $SPIKE_BIN or $HIPACHE_BIN"

# --- Servers ------------------------------------------------------------------------------------
ORIGIN_PORT=$(free_port)
mkdir -p "$WORK/origin"
fill "$LOAD/nginx-origin.conf.in" "$WORK/origin/nginx.conf" WORKERS="$ORIGIN_WORKERS" \
    DIR="$WORK/origin" PORT="$ORIGIN_PORT"
nginx -p "$WORK/origin" -c "$WORK/origin/nginx.conf" -e "$WORK/origin/error.log" >/dev/null 2>&1 &
PIDS+=("$!")
wait_for 10 "the nginx origin" answers "$ORIGIN_PORT" "$HOST" hello ||
    die "nginx: $(tail -3 "$WORK/origin/error.log" 2>/dev/null)"

REDIS_PORT=$(free_port)
mkdir -p "$WORK/redis"
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$WORK/redis" \
    >"$WORK/redis/log" 2>&1 &
PIDS+=("$!")
wait_for 10 redis redis-cli -p "$REDIS_PORT" ping || die "redis: $(tail -3 "$WORK/redis/log")"
redis-cli -p "$REDIS_PORT" rpush "frontend:$HOST" bench "http://127.0.0.1:$ORIGIN_PORT" >/dev/null
# hipache's config template wants an HTTPS listener; it is not measured here.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj "/CN=$HOST" \
    -keyout "$WORK/key.pem" -out "$WORK/cert.pem" >/dev/null 2>&1 || die "openssl failed"

declare -A PORT PID
start_hipache() { # start_hipache WORKERS
    local dir=$WORK/hipache-$1 address='' i
    mkdir -p "$dir"
    # No access log: the spike writes none, and the comparison is about the I/O loop.
    fill "$LOAD/hipache.json.in" "$dir/config.json" WORKERS="$1" ACCESS_LOG=null \
        REDIS_PORT="$REDIS_PORT" TLS_KEY="$WORK/key.pem" TLS_CERT="$WORK/cert.pem" OBSERVABILITY= \
        TLS_ALT_PORT="$(free_port)" TLS_ALT_KEY="$WORK/key.pem" TLS_ALT_CERT="$WORK/cert.pem"
    : >"$dir/stderr.log"
    "$HIPACHE_BIN" --config "$dir/config.json" >/dev/null 2>"$dir/stderr.log" &
    PID[hipache]=$!
    PIDS+=("$!")
    for ((i = 0; i < 200; i++)); do
        address=$(sed -n '/https/!s/.*listening on.*address=\([0-9.]*:[0-9]*\).*/\1/p' "$dir/stderr.log" | head -1)
        [[ -n $address ]] && break
        sleep 0.1
    done
    [[ -n $address ]] || die "hipache did not log its address: $(tail -3 "$dir/stderr.log")"
    PORT[hipache]=${address##*:}
    wait_for 10 "hipache routing $HOST" answers "${PORT[hipache]}" "$HOST" hello ||
        die "hipache: $(tail -3 "$dir/stderr.log")"
}
start_spike() { # start_spike VARIANT WORKERS
    local port
    port=$(free_port)
    "$SPIKE_BIN" "$1" --listen "127.0.0.1:$port" --backend "127.0.0.1:$ORIGIN_PORT" --workers "$2" \
        2>"$WORK/$1-$2.log" &
    PID[$1]=$!
    PIDS+=("$!")
    PORT[$1]=$port
    # The uring variant stops here where io_uring is missing or forbidden (seccomp, sysctl).
    wait_for 10 "the $1 spike" answers "$port" "$HOST" hello || die "$1: $(tail -3 "$WORK/$1-$2.log")"
}
stop_targets() {
    local target kept=() p
    for target in "${TARGETS[@]}"; do
        stop_pid "${PID[$target]}"
        for p in "${PIDS[@]}"; do [[ $p == "${PID[$target]}" ]] || kept+=("$p"); done
        PIDS=("${kept[@]}") kept=()
    done
}

# --- Measuring ----------------------------------------------------------------------------------
# wrk's summary: "requests req/s p99_us errors"
wrk_summary() {
    awk '/requests in/ { req = $1 }
        /Requests\/sec/ { rps = $2 }
        /^ +99%/ { v = $2; u = 1
                   if (v ~ /us$/) u = 1; else if (v ~ /ms$/) u = 1000; else if (v ~ /s$/) u = 1000000
                   sub(/[a-z]+$/, "", v); p99 = v * u }
        /Socket errors|Non-2xx/ { err += 1 }
        END { printf "%d %.0f %.0f %d\n", req, rps, p99, err }'
}
wrk_run() { # wrk_run SECONDS CONNS PORT
    wrk -t1 -c"$2" -d"$1s" --timeout 5s --latency -H "Host: $HOST" "http://127.0.0.1:$3/"
}
ROWS=$WORK/rows.tsv
SYSROWS=$WORK/syscalls.tsv
measure() { # measure WORKERS CONNS ROUND TARGET
    local target=$4 before after summary
    ((WARMUP == 0)) || wrk_run "$WARMUP" "$2" "${PORT[$target]}" >/dev/null
    before=$(cpu_ticks "${PID[$target]}")
    summary=$(wrk_run "$DURATION" "$2" "${PORT[$target]}" | wrk_summary)
    after=$(cpu_ticks "${PID[$target]}")
    read -r requests rps p99 errors <<<"$summary"
    ((requests > 0)) || die "no requests through $target"
    ((errors == 0)) || log "warning: wrk reported errors through $target"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$target" "$rps" "$p99" \
        "$(awk -v t=$((after - before)) -v us="$TICK_US" -v n="$requests" 'BEGIN { printf "%.2f", t * us / n }')" >>"$ROWS"
    log "  workers=$1 conns=$2 round=$3 $target: $rps req/s, p99 ${p99} us"
}
SYSCALLS=(recvfrom sendto read write epoll_wait epoll_pwait io_uring_enter)
count_syscalls() { # count_syscalls WORKERS CONNS TARGET: a separate short run under the counter
    local target=$3 pids out summary
    pids=$(tree_pids "${PID[$target]}" | paste -sd, -)
    out=$WORK/syscalls.out
    if [[ $SYSCALL_TOOL == perf ]]; then
        local events=raw_syscalls:sys_enter name
        for name in "${SYSCALLS[@]}"; do events+=",syscalls:sys_enter_$name"; done
        perf stat -x, -e "$events" -p "$pids" -o "$out" -- sleep $((SYSCALL_SECONDS + 1)) &
    else
        local args=() pid
        for pid in ${pids//,/ }; do args+=(-p "$pid"); done
        strace -c -f -o "$out" "${args[@]}" &
    fi
    local counter=$!
    sleep 0.5
    summary=$(wrk_run "$SYSCALL_SECONDS" "$2" "${PORT[$target]}" | wrk_summary)
    if [[ $SYSCALL_TOOL == strace ]]; then kill -INT "$counter" 2>/dev/null || true; fi
    wait "$counter" 2>/dev/null || true
    read -r requests _ <<<"$summary"
    # perf: "count,,event,..."; strace -c: "% time seconds usecs/call calls errors syscall".
    awk -v tool="$SYSCALL_TOOL" -v n="$requests" -v w="$1" -v c="$2" -v t="$target" '
        tool == "perf" { split($0, f, ","); name = f[3]; sub(/.*sys_enter_?/, "", name)
                         if (name == "") name = "total"; if (f[1] ~ /^[0-9]+$/) calls[name] = f[1] }
        tool == "strace" && NF >= 5 && $4 ~ /^[0-9]+$/ { calls[$NF] = $4 }
        END { line = ""
              for (name in calls) if (calls[name] > 0) line = line sprintf(" %s=%.2f", name, calls[name] / n)
              printf "%s\t%s\t%s\t%.2f\t%s\n", w, c, t, calls["total"] / n, line }' "$out" >>"$SYSROWS"
}

log "load average at start: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) cores)"
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
for workers in $WORKERS_LIST; do
    start_hipache "$workers"
    start_spike epoll "$workers"
    start_spike uring "$workers"
    for ((round = 1; round <= ROUNDS; round++)); do
        for conns in $CONNS_LIST; do
            for target in "${TARGETS[@]}"; do measure "$workers" "$conns" "$round" "$target"; done
        done
    done
    if [[ $SYSCALL_TOOL != none ]]; then
        for conns in $CONNS_LIST; do
            for target in "${TARGETS[@]}"; do count_syscalls "$workers" "$conns" "$target"; done
        done
    fi
    stop_targets
done
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
[[ -z $RESULTS_TSV ]] || cp "$ROWS" "$RESULTS_TSV"

# --- Summary: medians over the rounds, uring against epoll and epoll against hipache -----------
printf '\nload average: %s at start, %s at end (%s cores); wrk -t1, %s s runs, %s rounds\n' \
    "$LOAD_START" "$LOAD_END" "$(nproc)" "$DURATION" "$ROUNDS"
sort -t$'\t' -k1,1n -k2,2n -k4,4 -k5,5n "$ROWS" | awk -F'\t' '
    function median(list, count,   a, n, i, j, t) {
        n = split(list, a, " ")
        for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
        return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    { key = $1 SUBSEP $2 SUBSEP $4; rps[key] = rps[key] " " $5; p99[key] = p99[key] " " $6; cpu[key] = cpu[key] " " $7
      if (!(($1 SUBSEP $2) in seen)) { seen[$1 SUBSEP $2] = 1; order[++groups] = $1 SUBSEP $2 } }
    END {
        printf "%-8s %-6s %-8s %10s %10s %12s\n", "workers", "conns", "target", "req/s", "p99 us", "CPU us/req"
        for (g = 1; g <= groups; g++) {
            split(order[g], wc, SUBSEP)
            split("hipache epoll uring", names, " ")
            for (i = 1; i <= 3; i++) {
                key = order[g] SUBSEP names[i]
                r[i] = median(rps[key]); c[i] = median(cpu[key])
                printf "%-8s %-6s %-8s %10.0f %10.0f %12.2f\n", wc[1], wc[2], names[i], r[i], median(p99[key]), c[i]
            }
            printf "%-8s %-6s %-8s %9.2fx %10s %11.2fx   (uring / epoll)\n", wc[1], wc[2], "ratio", r[3] / r[2], "", c[3] / c[2]
            printf "%-8s %-6s %-8s %9.2fx %10s %11.2fx   (epoll / hipache)\n", wc[1], wc[2], "ratio", r[2] / r[1], "", c[2] / c[1]
        }
    }'
if [[ -s $SYSROWS ]]; then
    printf '\nsystem calls per request (%s, separate %s s run each):\n' "$SYSCALL_TOOL" "$SYSCALL_SECONDS"
    awk -F'\t' '{ printf "workers=%s conns=%-4s %-8s %6s  %s\n", $1, $2, $3, $4, $5 }' "$SYSROWS"
fi
