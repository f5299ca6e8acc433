#!/usr/bin/env bash
# Instructions Redis runs per lookup, counted by callgrind (deterministic where CPU time is not, on a
# busy machine): the same lookups sent three ways, as the MULTI transaction (Hipache's shape), as
# the same reads in one pipeline without MULTI/EXEC (one write of all commands, one read of all
# replies; how hipache looks up now), and as one EVALSHA of lookup.lua (beside this file, the
# script hipache ran before), against a redis-server under callgrind whose counting is on only
# while the lookups run.
#
# usage: benches/miss/redis_cost.sh [N]   (N lookups of distinct hosts, default 2000; each a direct
# match, so the script stops at the first candidate, as for most hosts of a real fleet)
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
# shellcheck source=SCRIPTDIR/../common.sh
source "$ROOT/benches/common.sh"
N=${1:-2000}
[[ $N =~ ^[0-9]+$ ]] || die "N: a number expected, got '$N'"
need redis-server redis-server
need redis-cli redis-tools
need valgrind valgrind
need python3 python3
WORK=$(mktemp -d)
PIDS=()
trap cleanup EXIT

count() { # count FORM: instructions per lookup sent as FORM (multi, pipeline or script)
    local port dir=$WORK/$1
    port=$(free_port)
    mkdir -p "$dir"
    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$dir/out" \
        redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$dir" \
        >"$dir/log" 2>&1 &
    PIDS+=($!)
    local pid=$!
    wait_for 60 "redis under callgrind" redis-cli -p "$port" ping || die "redis did not start"
    python3 - "$port" "$N" "$1" "$HERE/lookup.lua" "$pid" <<'PY'
import socket, subprocess, sys
port, n, form, script, pid = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
sock = socket.create_connection(("127.0.0.1", port))
reader = sock.makefile("rb")
def encode(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out
def read():
    line = reader.readline()
    kind, rest = line[:1], line[1:-2]
    if kind in (b"+", b":"):
        return rest
    if kind == b"-":
        raise SystemExit("redis error: %s" % rest.decode())
    if kind == b"$":
        size = int(rest)
        return None if size < 0 else reader.read(size + 2)[:-2]
    if kind == b"*":
        size = int(rest)
        return None if size < 0 else [read() for _ in range(size)]
    raise SystemExit("unexpected reply %r" % line)
def call(*args):
    sock.sendall(encode(*args))
    return read()
for i in range(1, n + 1):
    call("RPUSH", "frontend:h%d.miss.local" % i, "app%d" % i, "http://127.0.0.1:8080")
sha = call("SCRIPT", "LOAD", open(script, "rb").read()).decode()
def lookup(i):
    host = "h%d.miss.local" % i
    keys = ["frontend:" + host, "frontend:*.miss.local", "frontend:*.local", "frontend:*",
            "dead:" + host, "state:" + host]
    if form == "script":
        return encode("EVALSHA", sha, len(keys), *keys, "1"), 1
    out = b""
    for key in keys[:4]:
        out += encode("LRANGE", key, 0, -1)
    out += encode("SMEMBERS", keys[4]) + encode("HGETALL", keys[5])
    for key in keys:
        out += encode("PTTL", key)
    if form == "pipeline":
        return out, 12
    return encode("MULTI") + out + encode("EXEC"), 14
subprocess.run(["callgrind_control", "-i", "on", pid], check=True, capture_output=True)
# 64 lookups in flight at a time, as a worker's concurrent misses share its connection.
for start in range(1, n + 1, 64):
    batch = [lookup(i) for i in range(start, min(start + 64, n + 1))]
    sock.sendall(b"".join(data for data, _ in batch))
    for _, replies in batch:
        for _ in range(replies):
            read()
subprocess.run(["callgrind_control", "-i", "off", pid], check=True, capture_output=True)
PY
    stop_pid "$pid"
    awk -v n="$N" '/^totals:/ { print int($2 / n); exit }' "$dir/out"
}

multi=$(count multi)
pipeline=$(count pipeline)
script=$(count script)
ratio() { awk -v a="$1" -v b="$multi" 'BEGIN { printf "%.2f", a / b }'; }
printf 'redis instructions per lookup (%d lookups, 64 in flight): MULTI %d, pipeline %d (%sx), EVALSHA %d (%sx)\n' \
    "$N" "$multi" "$pipeline" "$(ratio "$pipeline")" "$script" "$(ratio "$script")"
