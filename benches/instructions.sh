#!/usr/bin/env bash
# Instructions per request of one worker, counted by callgrind (deterministic where wall-clock
# figures are not, on a busy machine): a keep-alive HTTP/1.1 connection, then an h2c one, each
# sending N GETs through the worker to a local keep-alive backend (file driver, access log off);
# with MODES="h2load" (or adding it to the list), h2load's 16 h2c connections of 32 streams each
# send N GETs (the shape of the HTTP/2 load rows). The counters are zeroed after a warm-up and
# dumped after the N requests, so start-up is not counted; each dump stays in OUT (a directory,
# when set) for callgrind_annotate. See benches/README.md, "Instructions per request".
#
# ORIGIN=nginx puts one nginx worker (load/nginx-origin.conf.in) in the Python backend's place:
# it writes each answer whole, in one segment, so the worker's polls per request vary less from
# run to run.
#
# usage: [MODES="h1 h2c h2load"] [OUT=dir] [ORIGIN=python|nginx] benches/instructions.sh PATH/TO/hipache [N]
#        (the client of h1 and h2c: cargo build --bench requests)
set -euo pipefail
BIN=$(realpath "$1")
N=${2:-2000}
MODES=${MODES:-h1 h2c}
OUT=${OUT:-}
ORIGIN=${ORIGIN:-python}
cd "$(dirname "$0")/.."
CLIENT=$(ls -t target/debug/deps/requests-* 2>/dev/null | grep -v '\.d$' | head -1 || true)
DIR=$(mktemp -d)
WORK=$DIR # common.sh's cleanup stops PIDS and removes it
PIDS=()
# shellcheck source=SCRIPTDIR/common.sh
source "$(pwd)/benches/common.sh"
trap cleanup EXIT

PROXY_PORT=$(free_port)
if [[ $ORIGIN == nginx ]]; then run_origin "$DIR/origin" 1; else run_python_origin "$DIR/origin"; fi
BACKEND_PORT=$ORIGIN_PORT

cat > "$DIR/routes.json" <<EOF
{ "frontend:bench.test": ["bench", "http://127.0.0.1:$BACKEND_PORT"] }
EOF
cat > "$DIR/config.json" <<EOF
{
    "server": { "workers": 1, "tcpTimeout": 30, "retryOnError": 3, "httpKeepAlive": true, "accessLog": null },
    "http": { "port": $PROXY_PORT, "bind": ["127.0.0.1"] },
    "driver": "file:$DIR/routes.json",
    "user": "root"
}
EOF

# The worker alone under callgrind, handed what its master would hand it (the listener, its
# readiness pipe, its stats socket, the lifeline): the launcher holds the lifeline's write end,
# and the worker leaves when the launcher does.
python3 - "$BIN" "$DIR" "$PROXY_PORT" <<'PY' >"$DIR/launcher.log" 2>&1 &
import os, socket, subprocess, sys, time
binary, dir, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("127.0.0.1", port))
listener.listen(1024)
listener.setblocking(False)
ready_read, ready_write = os.pipe()
life_read, life_write = os.pipe()
stats, worker_stats = socket.socketpair()
fds = [listener.fileno(), ready_write, life_read, worker_stats.fileno()]
for fd in fds:
    os.set_inheritable(fd, True)
env = dict(os.environ,
           HIPACHE_LISTEN_FDS=f"{listener.fileno()}=http@127.0.0.1:{port}",
           HIPACHE_READY_FD=str(ready_write),
           HIPACHE_LIFELINE_FD=str(life_read),
           HIPACHE_STATS_FD=str(worker_stats.fileno()),
           HIPACHE_WORKER_ID="1.0")
worker = subprocess.Popen(
    ["valgrind", "--tool=callgrind", f"--callgrind-out-file={dir}/cg.%p",
     binary, "--worker", "--config", f"{dir}/config.json"],
    env=env, pass_fds=fds, stderr=open(f"{dir}/valgrind.log", "w"))
os.close(ready_write)
if os.read(ready_read, 1) != b"R":
    sys.exit("the worker did not report ready")
open(f"{dir}/worker.pid", "w").write(str(worker.pid))
worker.wait()
PY
PIDS+=($!)

for _ in $(seq 1 1200); do
    [ -s "$DIR/worker.pid" ] && break
    kill -0 "${PIDS[-1]}" 2>/dev/null || { echo "the worker did not start"; cat "$DIR"/*.log; exit 1; }
    sleep 0.5
done
WORKER=$(cat "$DIR/worker.pid")

send() { # send MODE COUNT
    if [[ $1 == h2load ]]; then
        h2load -c16 -m32 -n "$2" -H ':authority: bench.test' "http://127.0.0.1:$PROXY_PORT/" >"$DIR/h2load.log"
        grep -q " 0 failed, 0 errored" "$DIR/h2load.log" || { echo "h2load failed:"; cat "$DIR/h2load.log"; exit 1; }
    else
        "$CLIENT" "$1" "127.0.0.1:$PROXY_PORT" bench.test "$2"
    fi
}

for mode in $MODES; do
    # A warm-up: h2load's opens its 16 connections and their backend streams.
    if [[ $mode == h2load ]]; then send "$mode" 1024; else send "$mode" 200; fi
    callgrind_control -z "$WORKER" >/dev/null
    send "$mode" "$N"
    callgrind_control -d "$mode" "$WORKER" >/dev/null
    DUMP=$(ls -t "$DIR"/cg."$WORKER".* | head -1)
    [[ -n $OUT ]] && mkdir -p "$OUT" && cp "$DUMP" "$OUT/callgrind.$mode"
    TOTAL=$(awk '/^(summary|totals):/ { print $2 }' "$DUMP" | tail -1)
    echo "$mode: $TOTAL instructions for $N requests, $((TOTAL / N)) per request"
done
