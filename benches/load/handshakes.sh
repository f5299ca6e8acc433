#!/usr/bin/env bash
# Full TLS handshakes, one per request, CLIENTS at a time: each connection connects, handshakes
# without resumption, sends one GET / with `Host: HOST` and `Connection: close`, and reads the
# answer until the server closes. wrk cannot do this: on a reconnect it resumes its previous
# session (SSL_clear keeps it).
#
# Usage: handshakes.sh PORT CLIENTS WARMUP_SECONDS SECONDS HOST
# Environment:
#   TLS_CLIENT [tls-load]  tls-load: ../tls-load (rustls, CLIENTS connections in flight on
#                  TLS_LOAD_THREADS threads, no certificate or signature check: its CPU per
#                  handshake is a fraction of the server's); s_time: CLIENTS `openssl s_time -new` processes (each of
#                  which spends more CPU per handshake than the server: the client is the limit)
#   TLS_LOAD_BIN [../tls-load/target/release/tls-load]  TLS_VERSION [1.3|1.2]
#   TLS_LOAD_THREADS [2]  tls-load's threads (the CLIENTS connections spread over them)
#   TLS_CLIENT_LOG [unset]  a file: a line is appended to it per run, tab-separated: client,
#                  TLS version, the server's signature scheme (tls-load; "-" for s_time), the
#                  client's own CPU µs per connection
# Prints the line report.lua prints: RESULT connections duration_us p50_us p99_us errors non_200
# (s_time reports no latencies: 0 0, and its errors are failed processes). Connects to 127.0.0.1
# only.
set -euo pipefail
port=$1 clients=$2 warmup=$3 seconds=$4 host=$5
client=${TLS_CLIENT:-tls-load}
version=${TLS_VERSION:-1.3}
[[ $version == 1.3 || $version == 1.2 ]] || {
    echo "handshakes.sh: TLS_VERSION must be 1.3 or 1.2, got '$version'" >&2
    exit 2
}

client_log() { # client_log SIGNATURE CPU_US_PER_CONNECTION
    [[ -z ${TLS_CLIENT_LOG:-} ]] || printf '%s\t%s\t%s\t%s\n' "$client" "$version" "$1" "$2" >>"$TLS_CLIENT_LOG"
}

if [[ $client == tls-load ]]; then
    here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
    bin=${TLS_LOAD_BIN:-$here/../tls-load/target/release/tls-load}
    [[ -x $bin ]] || {
        echo "handshakes.sh: no tls-load binary at $bin: cargo build --release --manifest-path benches/tls-load/Cargo.toml" >&2
        exit 1
    }
    flag=--tls13
    [[ $version == 1.2 ]] && flag=--tls12
    out=$("$bin" "$port" "$clients" "$warmup" "$seconds" "$host" "$flag" "--threads=${TLS_LOAD_THREADS:-2}")
    echo "$out"
    client_log "$(awk '/^CLIENT / { print $7 }' <<<"$out")" "$(awk '/^CLIENT / { print $NF }' <<<"$out")"
    exit 0
fi
[[ $client == s_time ]] || {
    echo "handshakes.sh: TLS_CLIENT must be tls-load or s_time, got '$client'" >&2
    exit 2
}

# s_time sends "GET <path> HTTP/1.0\r\n\r\n": the path carries the Host header in.
path=$'/ HTTP/1.0\r\nHost: '"$host"$'\r\nX-Bench:'
dir=$(mktemp -d -t handshakes.XXXXXX)
trap 'rm -rf "$dir"' EXIT

run() { # run SECONDS TAG: CLIENTS loops in parallel, each one's output in $dir/TAG.N
    local i
    local -a pids=()
    for ((i = 0; i < clients; i++)); do
        timeout $(($1 + 30)) openssl s_time -connect "127.0.0.1:$port" -new "-tls${version/./_}" \
            -time "$1" -www "$path" >"$dir/$2.$i" 2>&1 &
        pids+=($!)
    done
    failed=0
    for i in "${pids[@]}"; do wait "$i" || failed=$((failed + 1)); done
}

children_cpu_us() { # user + system CPU of the reaped children so far (bash's `times`, 2nd line)
    # `times` in this shell, not in a $(...) subshell, whose children's times start at zero.
    times >"$dir/times"
    awk 'NR == 2 {
        split($1, u, /[ms]/); split($2, s, /[ms]/)
        printf "%.0f", ((u[1] + s[1]) * 60 + u[2] + s[2]) * 1e6
    }' "$dir/times"
}

# s_time does not look at the answers: check once that this request gets a 200 through the proxy.
status=$(printf 'GET / HTTP/1.0\r\nHost: %s\r\n\r\n' "$host" |
    timeout 10 openssl s_client -quiet -connect "127.0.0.1:$port" 2>/dev/null | head -1 | tr -d '\r' || true)
[[ $status == "HTTP/1."?" 200"* ]] || {
    echo "handshakes.sh: GET / HTTP/1.0 over TLS on port $port answered '$status', not 200" >&2
    exit 1
}
((warmup > 0)) && run "$warmup" warm
children_cpu_us >"$dir/cpu.before"
start=$(date +%s%N)
run "$seconds" run
end=$(date +%s%N)
children_cpu_us >"$dir/cpu.after"
cpu=$(($(cat "$dir/cpu.after") - $(cat "$dir/cpu.before")))
connections=$(cat "$dir"/run.* | awk '/connections in .* real seconds/ { n += $1 } END { print n + 0 }')
((failed == 0)) || grep -h -m1 -i error "$dir"/run.* | head -3 >&2 || true
echo "RESULT $connections $(((end - start) / 1000)) 0 0 $failed 0"
client_log - "$(awk -v c="$cpu" -v n="$connections" 'BEGIN { printf "%.1f", n ? c / n : 0 }')"
