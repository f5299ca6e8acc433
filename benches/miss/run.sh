#!/usr/bin/env bash
# The cost of a miss, seen from Redis (not a test): FRONTENDS frontends in Redis, hipache in
# front of a small origin, and MISSES requests each for a host no worker has cached yet (hosts
# h1..hMISSES, spread over CONNS keep-alive connections, each asking for its share in order). Prints, from `INFO commandstats` and
# `INFO cpu` deltas around the requests: the commands Redis ran per miss (top-level ones, and
# with an older build's lookup script those it ran inside), and Redis CPU (user + system) per miss in microseconds (a busy
# machine inflates it: `redis_cost.sh` counts instructions instead).
# Then, with WARM=1, the handover: kill -9 one worker and report how long its replacement took to
# preload the sibling's hosts and what that cost Redis.
#
# Environment (defaults in brackets):
#   FRONTENDS [100000]  frontends loaded, "frontend:h<i>.miss.local" = ["app<i>", origin]
#   MISSES [20000]      distinct hosts requested (at most FRONTENDS)
#   CONNS [32]          concurrent client connections (1: one miss at a time)
#   WORKERS [2]         hipache workers        WARM [1]  the handover measurement too
#   HIPACHE_BIN [cargo build --release]
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
# shellcheck source=SCRIPTDIR/../common.sh
source "$ROOT/benches/common.sh"

FRONTENDS=${FRONTENDS:-100000}
MISSES=${MISSES:-20000}
WORKERS=${WORKERS:-2}
WARM=${WARM:-1}
CONNS=${CONNS:-32}
for value in "$FRONTENDS" "$MISSES" "$WORKERS" "$WARM" "$CONNS"; do
    [[ $value =~ ^[0-9]+$ ]] || die "numeric setting expected, got '$value'"
done
((MISSES <= FRONTENDS)) || die "MISSES must be at most FRONTENDS"

export PATH="$PATH:/usr/sbin:/sbin"
need redis-server redis-server
need redis-cli redis-tools
need python3 python3

if [[ -z ${HIPACHE_BIN:-} ]]; then
    log "building hipache (cargo build --release)"
    (cd "$ROOT" && cargo build --release --quiet) || die "cargo build --release failed"
    HIPACHE_BIN=$ROOT/target/release/hipache
fi
[[ -x $HIPACHE_BIN ]] || die "no hipache binary at $HIPACHE_BIN"

WORK=$(mktemp -d)
PIDS=()
trap '[[ -n ${KEEP:-} ]] && cp "$WORK"/*.log "$KEEP"/ ; cleanup' EXIT

REDIS_PORT=$(free_port)
mkdir -p "$WORK/redis"
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$WORK/redis" \
    >"$WORK/redis.log" 2>&1 &
PIDS+=($!)
wait_for 10 redis redis-cli -p "$REDIS_PORT" ping || die "redis-server did not start"
rcli() { redis-cli -p "$REDIS_PORT" "$@"; }

ORIGIN_PORT=$(free_port)
# A keep-alive origin with a deep accept queue: a refused connection would mark a backend dead,
# which writes to Redis too.
python3 - "$ORIGIN_PORT" >"$WORK/origin.log" 2>&1 <<'PY' &
import http.server, sys
class Origin(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")
    def log_message(self, *args):
        pass
class Server(http.server.ThreadingHTTPServer):
    request_queue_size = 1024
Server(("127.0.0.1", int(sys.argv[1])), Origin).serve_forever()
PY
PIDS+=($!)
wait_for 10 origin curl -sf "http://127.0.0.1:$ORIGIN_PORT/" || die "origin did not start"

log "loading $FRONTENDS frontends"
python3 - "$FRONTENDS" "$ORIGIN_PORT" <<'PY' | rcli --pipe >/dev/null
import sys
count, port = int(sys.argv[1]), sys.argv[2]
out = sys.stdout
def arg(s):
    return "$%d\r\n%s\r\n" % (len(s), s)
for i in range(1, count + 1):
    parts = ["RPUSH", "frontend:h%d.miss.local" % i, "app%d" % i, "http://127.0.0.1:%s" % port]
    out.write("*%d\r\n%s" % (len(parts), "".join(arg(p) for p in parts)))
PY

HTTP_PORT=$(free_port)
cat >"$WORK/hipache.json" <<JSON
{
  "server": { "workers": $WORKERS, "httpKeepAlive": true, "tcpTimeout": 30, "accessLog": "$WORK/access.log" },
  "http": { "port": $HTTP_PORT, "bind": ["127.0.0.1"] },
  "driver": "redis://127.0.0.1:$REDIS_PORT",
  "user": "root"
}
JSON
"$HIPACHE_BIN" --config "$WORK/hipache.json" >"$WORK/hipache.log" 2>&1 &
HIPACHE_PID=$!
PIDS+=("$HIPACHE_PID")
wait_for 20 hipache curl -s -o /dev/null "http://127.0.0.1:$HTTP_PORT/" || die "hipache did not start"
wait_for 20 "redis tracking" bash -c "[[ \$(grep -c 'redis tracking enabled' '$WORK/hipache.log') -ge $WORKERS ]]" ||
    die "tracking did not come up"

# Sum of `calls` over commandstats lines matching a regex of command names.
calls() { # calls REGEX
    rcli INFO commandstats | tr -d '\r' |
        awk -F'[:=,]' -v re="^cmdstat_($1)\$" '$1 ~ re { sum += $3 } END { print sum + 0 }'
}
cpu_us() { rcli INFO cpu | tr -d '\r' | awk -F: '/^used_cpu_(sys|user):/ { sum += $2 } END { printf "%d\n", sum * 1000000 }'; }
TOP='evalsha|eval|multi|exec|lrange|smembers|hgetall|pttl'

send() { # send FIRST LAST: one GET per host, over CONNS keep-alive connections
    python3 - "$HTTP_PORT" "$1" "$2" "$CONNS" <<'PY'
import http.client, sys, threading
port, first, last, conns = (int(a) for a in sys.argv[1:5])
bad = [0]
def run(share):
    conn = http.client.HTTPConnection("127.0.0.1", port)
    for i in share:
        conn.request("GET", "/", headers={"Host": "h%d.miss.local" % i})
        r = conn.getresponse()
        r.read()
        if r.status != 200:
            bad[0] += 1
hosts = list(range(first, last + 1))
threads = [threading.Thread(target=run, args=(hosts[n::conns],)) for n in range(conns)]
for t in threads:
    t.start()
for t in threads:
    t.join()
if bad[0]:
    sys.exit("%d answers were not 200" % bad[0])
PY
}

rcli CONFIG RESETSTAT >/dev/null
cpu0=$(cpu_us)
send 1 "$MISSES"
cpu1=$(cpu_us)

stats=$(rcli INFO commandstats | tr -d '\r' | grep -E "^cmdstat_($TOP):" || true)
# Every form of the lookup (the pipeline, and the MULTI or the script of older builds) reads the
# dead set of a host that has a frontend once.
lookups=$(calls 'smembers')
((lookups > 0)) || die "no lookup reached redis"
printf 'misses sent: %d, lookups redis ran: %d\n' "$MISSES" "$lookups"
printf '%s\n' "$stats"
awk -v c="$(calls "$TOP")" -v s="$(calls 'evalsha')" -v l="$lookups" -v cpu=$((cpu1 - cpu0)) 'BEGIN {
    if (s > 0) printf "commands per miss: 1 sent (EVALSHA), %.1f run inside the script (an older build)\n", (c - s) / l
    else printf "commands per miss: %.1f sent\n", c / l
    printf "redis cpu per miss: %.1f us (user + sys)\n", cpu / l
}'

if [[ $WARM == 1 && $WORKERS -ge 2 ]]; then
    # Every worker has looked up the hosts it was asked for; warm the other worker(s) too, with
    # new connections, until each worker has seen the hosts (enough rounds for the kernel's spread).
    for _ in 1 2 3 4; do send 1 "$MISSES"; done
    victim=$(pgrep -P "$HIPACHE_PID" | head -1)
    rcli CONFIG RESETSTAT >/dev/null
    cpu0=$(cpu_us)
    kill -KILL "$victim"
    wait_for 60 "preload" grep -q 'cache preloaded' "$WORK/hipache.log" || die "no preload"
    cpu1=$(cpu_us)
    grep 'cache preloaded' "$WORK/hipache.log" | tail -1
    printf 'handover: %d lookups, redis cpu %d us\n' "$(calls 'smembers')" $((cpu1 - cpu0))
fi
