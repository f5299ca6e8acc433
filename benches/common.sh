# Shell helpers shared by the benchmark scripts (benches/load, benches/scale, benches/uring-spike,
# benches/certs, benches/h3, benches/miss),
# sourced right after `set -euo pipefail`. A script lists the processes it starts in PIDS and
# its temp dir in WORK, then installs `cleanup` as its EXIT trap.
# shellcheck shell=bash disable=SC2034 # apt_updated and TICK_US are read by the callers

log() { printf '%s\n' "$*" >&2; }
die() {
    log "run.sh: error: $*"
    exit 1
}

# Tools are installed from Debian when missing, so a script runs on a fresh machine.
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

cleanup() { # stops PIDS, newest first, and removes WORK
    local i
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        stop_pid "${PIDS[i]}"
    done
    rm -rf "$WORK"
}

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

# Memory and CPU of a process and its direct children (master + workers).
tree_pids() {
    echo "$1"
    pgrep -P "$1" || true
}

tree_kib() { # tree_kib PID FIELD FILE: a "FIELD: N kB" line of /proc/<pid>/FILE, summed over the tree
    local sum=0 pid value
    for pid in $(tree_pids "$1"); do
        value=$(awk -v field="$2:" '$1 == field { print $2 }' "/proc/$pid/$3" 2>/dev/null || true)
        sum=$((sum + ${value:-0}))
    done
    echo "$sum"
}

rss_kib() { tree_kib "$1" VmRSS status; } # current RSS, summed

# Proportional set size, summed: each shared page counted once over all the processes mapping it
# (the binary's text, shared by master and workers, counts once, where the RSS sum counts it per
# process). Reading smaps_rollup walks the process's page tables under its mmap lock, much dearer
# than VmRSS from status: callers read it at the moments that matter (fresh, and whenever the
# sampled RSS reaches a new peak), not on every sample.
pss_kib() { tree_kib "$1" Pss smaps_rollup; }

# Clock ticks from /proc/<pid>/stat, summed over the process tree: EXPR adds up fields counted
# after the ")" that ends the command name (utime is the 12th, stime the 13th, the reaped
# children's cutime and cstime the 14th and 15th).
tree_ticks() { # tree_ticks PID EXPR
    local sum=0 pid value
    for pid in $(tree_pids "$1"); do
        value=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | awk "{ print $2 }" || true)
        sum=$((sum + ${value:-0}))
    done
    echo "$sum"
}

# shellcheck disable=SC2016 # awk's fields, not the shell's
cpu_ticks() { tree_ticks "$1" '$12 + $13 + $14 + $15'; } # user + system, reaped children's too
# shellcheck disable=SC2016
user_ticks() { tree_ticks "$1" '$12 + $14'; }            # cpu_ticks without the kernel's

# Busy clock ticks of the whole machine, all CPUs (user, nice, system, irq, softirq, steal): the
# kernel's network work for loopback traffic runs in softirq, which the sending process's stime
# also counts (no IRQ time accounting) but which belongs to no process when it runs elsewhere.
machine_busy_ticks() { awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }
TICK_US=$((1000000 / $(getconf CLK_TCK)))

# A throw-away redis-server on a free loopback port, its files in DIR: sets REDIS_PORT, adds its
# pid to PIDS.
run_redis() { # run_redis DIR
    mkdir -p "$1"
    REDIS_PORT=$(free_port)
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$1" \
        >"$1/redis.log" 2>&1 &
    PIDS+=($!)
    wait_for 10 redis redis-cli -p "$REDIS_PORT" ping || die "redis-server did not start"
}

# The origin every benchmark proxies to: nginx answering a fixed 5-byte body
# (load/nginx-origin.conf.in) with WORKERS workers, its files in DIR: sets ORIGIN_PORT and
# PID_origin, adds its pid to PIDS.
run_origin() { # run_origin DIR WORKERS
    mkdir -p "$1"
    ORIGIN_PORT=$(free_port)
    fill "$(dirname "${BASH_SOURCE[0]}")/load/nginx-origin.conf.in" "$1/nginx.conf" \
        WORKERS="$2" DIR="$1" PORT="$ORIGIN_PORT"
    nginx -p "$1" -c "$1/nginx.conf" -e "$1/error.log" >"$1/stdout.log" 2>&1 &
    PID_origin=$!
    PIDS+=($!)
    wait_for 10 origin answers "$ORIGIN_PORT" any hello || die "origin nginx did not start"
}

# The callgrind scripts' default origin: Python's threaded HTTP server answering `hello` with
# keep-alive, its log in DIR: sets ORIGIN_PORT, adds its pid to PIDS. Its timing moves a proxy's
# polls per request from run to run; run_origin's nginx does not.
run_python_origin() { # run_python_origin DIR
    mkdir -p "$1"
    ORIGIN_PORT=$(free_port)
    python3 - "$ORIGIN_PORT" >"$1/python-origin.log" 2>&1 <<'PY' &
import http.server, sys
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = b"hello\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
class Server(http.server.ThreadingHTTPServer):
    request_queue_size = 1024  # the proxies open up to hundreds of connections at once
    daemon_threads = True
Server(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
PY
    PIDS+=($!)
    wait_for 10 origin answers "$ORIGIN_PORT" any hello || die "the Python origin did not start"
}
