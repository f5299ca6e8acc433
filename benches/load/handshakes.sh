#!/usr/bin/env bash
# Full TLS handshakes, one per request: CLIENTS `openssl s_time -new` loops in parallel, each
# connecting, handshaking without resumption (s_time -new never offers an earlier session),
# sending one HTTP/1.0 GET with `Host: HOST` and reading the answer until the server closes.
# wrk cannot do this: on a reconnect it resumes its previous session (SSL_clear keeps it).
#
# Usage: handshakes.sh PORT CLIENTS WARMUP_SECONDS SECONDS HOST
# Prints the line report.lua prints: RESULT connections duration_us 0 0 failed_clients 0
# (no latencies: s_time does not report them). Connects to 127.0.0.1 only.
set -euo pipefail
port=$1 clients=$2 warmup=$3 seconds=$4 host=$5
# s_time sends "GET <path> HTTP/1.0\r\n\r\n": the path carries the Host header in.
path=$'/ HTTP/1.0\r\nHost: '"$host"$'\r\nX-Bench:'
dir=$(mktemp -d -t handshakes.XXXXXX)
trap 'rm -rf "$dir"' EXIT

run() { # run SECONDS TAG: CLIENTS loops in parallel, each one's output in $dir/TAG.N
    local i
    local -a pids=()
    for ((i = 0; i < clients; i++)); do
        timeout $(($1 + 30)) openssl s_time -connect "127.0.0.1:$port" -new -time "$1" -www "$path" \
            >"$dir/$2.$i" 2>&1 &
        pids+=($!)
    done
    failed=0
    for i in "${pids[@]}"; do wait "$i" || failed=$((failed + 1)); done
}

# s_time does not look at the answers: check once that this request gets a 200 through the proxy.
status=$(printf 'GET / HTTP/1.0\r\nHost: %s\r\n\r\n' "$host" |
    timeout 10 openssl s_client -quiet -connect "127.0.0.1:$port" 2>/dev/null | head -1 | tr -d '\r' || true)
[[ $status == "HTTP/1."?" 200"* ]] || {
    echo "handshakes.sh: GET / HTTP/1.0 over TLS on port $port answered '$status', not 200" >&2
    exit 1
}
((warmup > 0)) && run "$warmup" warm
start=$(date +%s%N)
run "$seconds" run
end=$(date +%s%N)
connections=$(cat "$dir"/run.* | awk '/connections in .* real seconds/ { n += $1 } END { print n + 0 }')
((failed == 0)) || grep -h -m1 -i error "$dir"/run.* | head -3 >&2 || true
echo "RESULT $connections $(((end - start) / 1000)) 0 0 $failed 0"
