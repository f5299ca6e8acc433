#!/usr/bin/env bash
# Certificates benchmark (not a test): full TLS handshakes per second when every server name has
# its own certificate in Redis (`https.redisCertificates`, NAMES of them, every one cached by the
# workers: warm), against the same binary serving one certificate from a file for every name.
# Both hipaches run side by side on one Redis and one origin; the rounds alternate (file, redis,
# file, redis, ...) so that a shared machine's noise hits both alike. The client is tls-load
# (benches/tls-load) with `--sni`: every connection sends the next of the NAMES server names and
# asks for `/` with that Host, a full handshake each time (no resumption); against the Redis
# hipache `--check-name` counts any connection served a certificate that does not carry its own
# name as an error, so a fallback to the file certificate cannot pass as a Redis one.
#
# Prints per round the handshakes per second, the proxy's CPU per handshake (master + workers,
# /proc), and at the end the medians, the ratio redis/file, and the memory that NAMES cached
# certificates cost (RSS of master + workers after the warm-up, minus right after start, per
# certificate).
#
# Environment (defaults in brackets):
#   NAMES [10000]  certificates in Redis and server names the client cycles through
#   WORKERS [1]    hipache workers       CLIENTS [16]  connections in flight   THREADS [2]
#   DURATION [10]  seconds per run       WARMUP [2]    uncounted seconds before each run
#   ROUNDS [3]     rounds (one run of each hipache per round)
#   HIPACHE_BIN [cargo build --release]  TLS_LOAD_DIR [benches/tls-load/target/release]
#   QUICK=1: 500 names, 3 s runs, 1 round (a check of the script itself)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
# shellcheck source=SCRIPTDIR/../common.sh
source "$ROOT/benches/common.sh"

if [[ ${QUICK:-0} == 1 ]]; then
    NAMES=${NAMES:-500} DURATION=${DURATION:-3} ROUNDS=${ROUNDS:-1}
fi
NAMES=${NAMES:-10000}
WORKERS=${WORKERS:-1}
CLIENTS=${CLIENTS:-16}
THREADS=${THREADS:-2}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
ROUNDS=${ROUNDS:-3}
for value in "$NAMES" "$WORKERS" "$CLIENTS" "$THREADS" "$DURATION" "$WARMUP" "$ROUNDS"; do
    [[ $value =~ ^[0-9]+$ ]] || die "numeric setting expected, got '$value'"
done
PATTERN='c{}.certs.bench'

export PATH="$PATH:/usr/sbin:/sbin"
need redis-server redis-server
need redis-cli redis-tools
need nginx nginx-light
need openssl openssl
need curl curl
need python3 python3
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

WORK=$(mktemp -d -t hipache-certs.XXXXXX)
declare -a PIDS=()
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ -z ${HIPACHE_BIN:-} ]]; then
    log "building hipache (cargo build --release)"
    (cd "$ROOT" && cargo build --release --quiet) || die "cargo build --release failed"
    HIPACHE_BIN=$ROOT/target/release/hipache
fi
[[ -x $HIPACHE_BIN ]] || die "no hipache binary at $HIPACHE_BIN"
TLS_LOAD_DIR=${TLS_LOAD_DIR:-$ROOT/benches/tls-load/target/release}
if [[ ! -x $TLS_LOAD_DIR/tls-load || ! -x $TLS_LOAD_DIR/cert-fill ]]; then
    log "building tls-load and cert-fill (cargo build --release)"
    cargo build --release --quiet --manifest-path "$ROOT/benches/tls-load/Cargo.toml" ||
        die "building benches/tls-load failed"
fi

mkdir -p "$WORK/file" "$WORK/redis-certs"
run_redis "$WORK/redis"
run_origin "$WORK/origin" 1

# Every name routes to the origin through one wildcard frontend; the file hipache's certificate
# is a wildcard for the same names (ECDSA P-256, as cert-fill's).
redis-cli -p "$REDIS_PORT" rpush "frontend:*.certs.bench" bench "http://127.0.0.1:$ORIGIN_PORT" >/dev/null
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
    -subj "/CN=*.certs.bench" -addext "subjectAltName=DNS:*.certs.bench" \
    -keyout "$WORK/file.key" -out "$WORK/file.crt" 2>/dev/null || die "openssl could not make the file certificate"
log "writing $NAMES certificates into Redis (cert-fill)"
"$TLS_LOAD_DIR/cert-fill" "$PATTERN" "$NAMES" | redis-cli -p "$REDIS_PORT" --pipe >"$WORK/pipe.log" 2>&1 ||
    die "loading certificates failed: $(tail -3 "$WORK/pipe.log")"
stored=$(redis-cli -p "$REDIS_PORT" --scan --pattern 'tls:*' | wc -l)
((stored == NAMES)) || die "$stored certificates in Redis, $NAMES expected"

start_hipache() { # start_hipache NAME REDIS_CERTIFICATES: sets PID_<NAME> and PORT_<NAME>
    local name=$1 from_redis=$2 port http
    port=$(free_port)
    http=$(free_port)
    cat >"$WORK/$name/config.json" <<JSON
{
  "server": { "workers": $WORKERS, "accessLog": null, "httpKeepAlive": true, "maxSockets": 256,
              "tcpTimeout": 30 },
  "http": { "port": $http, "bind": ["127.0.0.1"] },
  "https": { "port": $port, "bind": ["127.0.0.1"], "key": "$WORK/file.key", "cert": "$WORK/file.crt",
             "redisCertificates": $from_redis },
  "driver": "redis://127.0.0.1:$REDIS_PORT",
  "user": "root"
}
JSON
    "$HIPACHE_BIN" --config "$WORK/$name/config.json" >/dev/null 2>"$WORK/$name/stderr.log" &
    PIDS+=($!)
    printf -v "PID_${name//-/_}" %s "$!"
    printf -v "PORT_${name//-/_}" %s "$port"
    wait_for 15 "hipache ($name)" curl -sk --max-time 2 --resolve "c0.certs.bench:$port:127.0.0.1" \
        "https://c0.certs.bench:$port/" ||
        die "hipache ($name) did not answer: $(tail -5 "$WORK/$name/stderr.log")"
}

start_hipache file false
start_hipache redis-certs true
# Settled right after start: the baseline of the memory the cached certificates add.
sleep 1
rss_fresh=$(rss_kib "$PID_redis_certs")

redis_calls() { # commands Redis ran so far (INFO commandstats, all commands)
    redis-cli -p "$REDIS_PORT" info commandstats | awk -F'[=,]' '/^cmdstat_/ { sum += $2 } END { print sum + 0 }'
}

load() { # load PORT [--check-name]: prints "handshakes/s errors"
    "$TLS_LOAD_DIR/tls-load" "$1" "$CLIENTS" "$WARMUP" "$DURATION" unused \
        "--threads=$THREADS" "--sni=$PATTERN" "--names=$NAMES" ${2:+"$2"} >"$WORK/load.out" 2>"$WORK/load.err" ||
        die "tls-load failed: $(cat "$WORK/load.err")"
    awk '/^RESULT/ { printf "%.0f %d\n", $2 * 1e6 / $3, $6 + $7 }' "$WORK/load.out"
}

# Warm-up of both: every name's route (both) and certificate (the Redis one) read once into
# the workers' caches, two passes over the names so that every worker sees each one; the Redis
# one checked by name on every connection.
warm() { # warm PORT [--check-name]
    local seconds count errors
    # At least 500 handshakes a second even on a loaded machine, so this many seconds suffice.
    seconds=$((2 * NAMES / 500 > 10 ? 2 * NAMES / 500 : 10))
    "$TLS_LOAD_DIR/tls-load" "$1" "$CLIENTS" 0 "$seconds" unused "--threads=$THREADS" \
        "--sni=$PATTERN" "--names=$NAMES" ${2:+"$2"} >"$WORK/warm.out" 2>"$WORK/warm.err" || true
    read -r count errors < <(awk '/^RESULT/ { print $2, $6 }' "$WORK/warm.out")
    ((count >= 2 * NAMES)) || die "the warm-up made $count handshakes, $((2 * NAMES)) needed: raise it"
    ((errors == 0)) || die "the warm-up had $errors errors: $(cat "$WORK/warm.err")"
}
log "warming both: $((2 * NAMES)) handshakes each"
warm "$PORT_file"
warm "$PORT_redis_certs" --check-name
rss_warm=$(rss_kib "$PID_redis_certs")

declare -a file_rates=() redis_rates=()
printf '%-6s %-12s %14s %16s %18s %7s\n' round hipache handshakes/s "CPU µs/handshake" "Redis cmds/handshake" errors
for ((round = 1; round <= ROUNDS; round++)); do
    for name in file redis-certs; do
        var=${name//-/_}
        pid_var=PID_$var port_var=PORT_$var
        check=''
        [[ $name == redis-certs ]] && check=--check-name
        before=$(cpu_ticks "${!pid_var}")
        calls_before=$(redis_calls)
        read -r rate errors < <(load "${!port_var}" $check)
        after=$(cpu_ticks "${!pid_var}")
        calls=$(($(redis_calls) - calls_before - 1)) # less the INFO of calls_before
        per_handshake=$(awk -v c="$calls" -v r="$rate" -v s=$((DURATION + WARMUP)) 'BEGIN { printf "%.4f", (r > 0 ? c / (r * s) : 0) }')
        # CPU over the whole run (warm-up seconds included), per handshake of the whole run.
        cpu_us=$(awk -v t=$((after - before)) -v r="$rate" -v s=$((DURATION + WARMUP)) -v tick="$TICK_US" \
            'BEGIN { printf "%.0f", (r > 0 ? t * tick / (r * s) : 0) }')
        printf '%-6s %-12s %14s %16s %18s %7s\n' "$round" "$name" "$rate" "$cpu_us" "$per_handshake" "$errors"
        ((errors == 0)) || die "$name: $errors errors: $(cat "$WORK/load.err")"
        if [[ $name == file ]]; then file_rates+=("$rate"); else redis_rates+=("$rate"); fi
    done
done

median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
file_median=$(median "${file_rates[@]}")
redis_median=$(median "${redis_rates[@]}")
echo
echo "certificates in Redis: $NAMES (warm), workers: $WORKERS, clients: $CLIENTS"
echo "median handshakes/s: file $file_median, redis $redis_median, ratio redis/file $(awk -v a="$redis_median" -v b="$file_median" 'BEGIN { printf "%.3f", a / b }')"
echo "RSS (master + workers): fresh $((rss_fresh / 1024)) MiB, warm $((rss_warm / 1024)) MiB, per cached certificate $(awk -v a="$rss_warm" -v b="$rss_fresh" -v n="$NAMES" -v w="$WORKERS" 'BEGIN { printf "%.2f", (a - b) / n / w }') KiB per worker"
