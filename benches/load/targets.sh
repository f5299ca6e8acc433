# Sourced by run.sh: the servers added beside nginx and hipache (HAProxy, the TLS certificate,
# the WebSocket echo origin, the statsd sink). Uses run.sh's fill, free_port, wait_for, answers,
# die, WORK, PIDS.

# Every proxy listens with TLS twice: on TLS_PORT_<name> with the TLS_KEY certificate (the
# https-ka64 and https-resume rows) and on TLS_ALT_PORT_<name> with the other key type, so that
# https-close gives rows for both in one run without restarting anything.
other_key() { # the key type that is not TLS_KEY
    [[ $TLS_KEY == ecdsa ]] && echo rsa2048 || echo ecdsa
}

make_cert() { # $WORK/tls/{ecdsa,rsa2048}/{cert,key,both}.pem for bench.local; TLS_KEY's also in $WORK/tls
    local dir=$WORK/tls kind
    local -a key_args
    for kind in ecdsa rsa2048; do
        mkdir -p "$dir/$kind"
        case $kind in
        ecdsa) key_args=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1) ;;
        rsa2048) key_args=(-newkey rsa:2048) ;;
        esac
        openssl req -x509 "${key_args[@]}" -nodes -days 2 -subj "/CN=$HOST" \
            -addext "subjectAltName=DNS:$HOST,DNS:ws.$HOST,IP:127.0.0.1" \
            -keyout "$dir/$kind/key.pem" -out "$dir/$kind/cert.pem" >"$dir/openssl.log" 2>&1 ||
            die "openssl could not make a $kind certificate: $(tail -3 "$dir/openssl.log")"
        # HAProxy wants the certificate and its key in one file.
        cat "$dir/$kind/cert.pem" "$dir/$kind/key.pem" >"$dir/$kind/both.pem"
    done
    cp "$dir/$TLS_KEY"/*.pem "$dir/"
    ln -s "$(other_key)" "$dir/alt"
}

answers_tls() { # answers_tls PORT HOST EXPECTED: GET / over TLS returns EXPECTED
    [[ $(curl -sk --max-time 2 --resolve "$2:$1:127.0.0.1" "https://$2:$1/") == "$3" ]]
}

# The ulimit-derived connection limit both reference proxies get (nginx per worker, counting
# both sides; HAProxy per process, client side), raised by the ws rows for their tunnels.
proxy_connections() {
    local want=8192
    if [[ ${WS_RUNNING:-0} == 1 ]] && ((2 * WS_CONNS + 1024 > want)); then
        want=$((2 * WS_CONNS + 1024))
    fi
    echo "$want"
}

# HAProxy's one process asks for about two descriptors per connection of maxconn and refuses
# to start beyond the hard limit: its maxconn stays where that fits.
haproxy_connections() {
    local want fit
    want=$(proxy_connections)
    fit=$((($(ulimit -n) - 200) / 2))
    echo $((want < fit ? want : fit))
}

start_haproxy() { # sets PORT_haproxy, TLS_PORT_haproxy, TLS_ALT_PORT_haproxy, PID_haproxy
    local dir=$WORK/haproxy port tls_port alt_port pid log="no log"
    mkdir -p "$dir"
    port=$(free_port)
    tls_port=$(free_port)
    alt_port=$(free_port)
    # stdout into a file: one write() per line, the same kind of cost as a UDP syslog datagram,
    # with no syslog process competing for the cores (README.md: "HAProxy's access log").
    [[ $ACCESS_LOG == on ]] && log='log stdout format raw local0 info\n    option httplog'
    fill "$HERE/haproxy.cfg.in" "$dir/haproxy.cfg" WORKERS="$WORKERS" DIR="$dir" PORT="$port" \
        TLS_PORT="$tls_port" TLS_PEM="$WORK/tls/both.pem" ORIGIN_PORT="$PORT_origin" \
        TLS_ALT_PORT="$alt_port" TLS_ALT_PEM="$WORK/tls/alt/both.pem" \
        WS_PORT="$PORT_ws" MAXCONN="$(haproxy_connections)" LOG="$log"
    haproxy -c -f "$dir/haproxy.cfg" >"$dir/check.log" 2>&1 ||
        die "haproxy refuses $dir/haproxy.cfg: $(tail -5 "$dir/check.log")"
    # -db: foreground, one process (threads), so its RSS is that process's.
    haproxy -db -f "$dir/haproxy.cfg" >"$dir/access.log" 2>"$dir/stderr.log" &
    pid=$!
    PIDS+=("$pid")
    wait_for 10 haproxy answers "$port" "$HOST" hello ||
        die "haproxy did not answer on port $port: $(tail -5 "$dir/stderr.log")"
    wait_for 10 "haproxy TLS" answers_tls "$tls_port" "$HOST" hello ||
        die "haproxy did not answer over TLS on port $tls_port: $(tail -5 "$dir/stderr.log")"
    wait_for 10 "haproxy TLS ($(other_key))" answers_tls "$alt_port" "$HOST" hello ||
        die "haproxy did not answer over TLS on port $alt_port: $(tail -5 "$dir/stderr.log")"
    PORT_haproxy=$port TLS_PORT_haproxy=$tls_port TLS_ALT_PORT_haproxy=$alt_port PID_haproxy=$pid
}

ws_answers() { # ws_answers PORT: the echo origin (or a proxy in front of it) upgrades
    python3 "$HERE/ws_client.py" open "$1" 1 0 "ws.$HOST" /ws /dev/null
}

start_ws_origin() { # sets PID_ws (PORT_ws is chosen before the proxies start)
    python3 "$HERE/ws_origin.py" "$PORT_ws" >"$WORK/ws-origin.log" 2>&1 &
    PID_ws=$!
    PIDS+=("$PID_ws")
    wait_for 10 "ws origin" ws_answers "$PORT_ws" ||
        die "the WebSocket echo origin did not upgrade on port $PORT_ws: $(tail -3 "$WORK/ws-origin.log")"
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
