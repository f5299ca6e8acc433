#!/usr/bin/env bash
# Instructions per request of nginx and HAProxy as HTTP/2 front ends, counted by callgrind in the
# shape benches/instructions.sh counts hipache's worker in with MODES=h2load: one process (nginx
# with `master_process off`, HAProxy with one thread), h2load's 16 h2c connections of 32 streams
# sending N GETs through it to a local keep-alive backend (Python, the same as instructions.sh's),
# access log off, counters zeroed after a warm-up. User space only, as for hipache: callgrind
# does not see the kernel. ORIGIN=nginx puts instructions.sh's nginx origin in the Python
# backend's place, as `ORIGIN=nginx benches/instructions.sh` does for hipache. See
# benches/README.md, "HTTP/2".
#
# usage: [ORIGIN=python|nginx] benches/load/h2-callgrind.sh [N]
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
# shellcheck source=SCRIPTDIR/../common.sh
source "$ROOT/benches/common.sh"
N=${1:-10000}
export PATH="$PATH:/usr/sbin:/sbin"
need nginx nginx-light
need haproxy haproxy
need h2load nghttp2-client
need valgrind valgrind

WORK=$(mktemp -d -t hipache-h2cg.XXXXXX)
declare -a PIDS=()
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ ${ORIGIN:-python} == nginx ]]; then run_origin "$WORK/origin" 1; else run_python_origin "$WORK/origin"; fi
BACKEND_PORT=$ORIGIN_PORT

send() { # send PORT COUNT
    h2load -c16 -m32 -n "$2" -H ':authority: bench.test' "http://127.0.0.1:$1/" >"$WORK/h2load.log"
    grep -q " 0 failed, 0 errored" "$WORK/h2load.log" || die "h2load failed: $(cat "$WORK/h2load.log")"
}

count() { # count NAME PORT PID: instructions per request
    local name=$1 port=$2 pid=$3 i dump total
    for ((i = 0; i < 600; i++)); do
        h2load -n 1 -c 1 -H ':authority: bench.test' "http://127.0.0.1:$port/" 2>/dev/null |
            grep -q "1 succeeded" && break
        sleep 0.5
    done
    send "$port" 1024
    callgrind_control -z "$pid" >/dev/null
    send "$port" "$N"
    callgrind_control -d "$name" "$pid" >/dev/null
    dump=$(ls -t "$WORK"/cg."$pid".* | head -1)
    total=$(awk '/^(summary|totals):/ { print $2 }' "$dump" | tail -1)
    echo "$name: $total instructions for $N requests, $((total / N)) per request"
}

dir=$WORK/nginx
mkdir -p "$dir"
port=$(free_port)
fill "$HERE/nginx-h2.conf.in" "$dir/nginx.conf" WORKERS=1 DIR="$dir" PORT="$port" \
    TLS_PORT="$(free_port)" TLS_CERT=/dev/null TLS_KEY=/dev/null ORIGIN_PORT="$BACKEND_PORT" \
    ACCESS_LOG="access_log off;"
# One process, h2c only (no certificate needed).
sed -i -e 's/^daemon off;/daemon off;\nmaster_process off;/' -e '/ ssl http2 /d' -e '/ssl_certificate/d' "$dir/nginx.conf"
valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.%p" \
    nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" 2>"$dir/valgrind.log" &
PIDS+=("$!")
count nginx "$port" "$!"

dir=$WORK/haproxy
mkdir -p "$dir"
port=$(free_port)
fill "$HERE/haproxy-h2.cfg.in" "$dir/haproxy.cfg" WORKERS=1 DIR="$dir" PORT="$port" \
    TLS_PORT="$(free_port)" TLS_PEM=/dev/null ORIGIN_PORT="$BACKEND_PORT" LOG="no log"
sed -i '/ ssl crt /d' "$dir/haproxy.cfg"
valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.%p" \
    haproxy -db -f "$dir/haproxy.cfg" 2>"$dir/valgrind.log" &
PIDS+=("$!")
count haproxy "$port" "$!"
