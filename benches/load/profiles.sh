# Sourced by run.sh: one function per profile, profile_<name> ROUND (a "-" in the name is "_"
# here), each running its rows on every target in turn. Uses run.sh's measure, measure_run,
# measure_idle, restart_proxies and the PORT_/PID_/TLS_PORT_ variables.

# METRICS=both: the second hipache right after the first in every profile but scale (its
# lookup-cache warm-up and 1-host/N-hosts rows are about hipache's routing, not its metrics).
PROXIES="nginx haproxy hipache"
[[ $METRICS != both ]] || PROXIES+=" hipache+metrics"

suffix_of() { # suffix_of TARGET: the <NAME> of TARGET's PORT_, TLS_PORT_ and PID_ variables
    case $1 in
    direct) echo origin ;;
    hipache+metrics) echo hipache_m ;;
    *) echo "$1" ;;
    esac
}
port_of() { # port_of TARGET: "direct" is the origin
    local var
    var=PORT_$(suffix_of "$1")
    echo "${!var}"
}
tls_port_of() { # tls_port_of TARGET [KEY]: the listener with KEY's certificate (TLS_KEY's by default)
    local var=TLS_PORT_
    [[ ${2:-$TLS_KEY} == "$TLS_KEY" ]] || var=TLS_ALT_PORT_
    var=$var$(suffix_of "$1")
    echo "${!var}"
}
pid_of() {
    local var
    var=PID_$(suffix_of "$1")
    echo "${!var}"
}

profile_keepalive() { # profile_keepalive PROFILE ROUND CONNS
    local target
    for target in direct $PROXIES; do
        measure "$1" "$2" "$target" "$3" "$(port_of "$target")" "$(pid_of "$target")" \
            -s "$HERE/report.lua" -H "Host: $HOST"
    done
}
profile_ka64() { profile_keepalive ka64 "$1" 64; }
profile_ka256() { profile_keepalive ka256 "$1" 256; }

profile_close() {
    local target
    for target in direct $PROXIES; do
        measure close "$1" "$target" 64 "$(port_of "$target")" "$(pid_of "$target")" \
            -s "$HERE/report.lua" -H "Host: $HOST" -H 'Connection: close'
    done
}

profile_scale() {
    local round=$1
    # Same Lua request function for every row, so wrk's own cost is the same.
    cat "$HERE/random_host.lua" "$HERE/report.lua" >"$WORK/scale.lua"
    measure scale "$round" "nginx ${FRONTENDS} hosts" 64 "$PORT_nginx" "$PID_nginx" \
        -s "$WORK/scale.lua" -- "$FRONTENDS" "h%d.scale.local"
    measure scale "$round" "haproxy ${FRONTENDS} hosts" 64 "$PORT_haproxy" "$PID_haproxy" \
        -s "$WORK/scale.lua" -- "$FRONTENDS" "h%d.scale.local"
    measure scale "$round" "hipache 1 host" 64 "$PORT_hipache" "$PID_hipache" \
        -s "$WORK/scale.lua" -- 1 "$HOST"
    if ((!scale_warm && SCALE_WARMUP > 0)); then
        # Steady state, as a proxy serving these hosts all day would be: every worker's
        # lookup cache has seen (nearly) every host before the measured runs.
        log "scale: warming hipache's lookup caches over ${FRONTENDS} hosts for ${SCALE_WARMUP}s"
        timeout $((SCALE_WARMUP + 30)) wrk -t "$WRK_THREADS" -c 64 -d "${SCALE_WARMUP}s" \
            -s "$WORK/scale.lua" "http://127.0.0.1:$PORT_hipache/" "$FRONTENDS" "h%d.scale.local" \
            >/dev/null 2>&1 || true
        scale_warm=1
    fi
    measure scale "$round" "hipache ${FRONTENDS} hosts" 64 "$PORT_hipache" "$PID_hipache" \
        -s "$WORK/scale.lua" -- "$FRONTENDS" "h%d.scale.local"
}

profile_mem() { # idle connections on fresh proxies, so earlier profiles' buffers do not count
    local target
    ((${1} == 1)) || return 0
    restart_proxies
    for target in $PROXIES; do
        measure_idle "$target" "$(port_of "$target")" "$(pid_of "$target")"
    done
}

profile_busy() { # BUSY_CONNS keep-alive connections all busy, on fresh proxies; once
    local target fresh fresh_pss
    ((${1} == 1)) || return 0
    restart_proxies
    for target in $PROXIES; do
        # Fresh means before wrk's warm-up, which already opens the BUSY_CONNS connections.
        fresh=$(rss_kib "$(pid_of "$target")") fresh_pss=$(pss_kib "$(pid_of "$target")")
        measure busy 1 "$target" "$BUSY_CONNS" "$(port_of "$target")" "$(pid_of "$target")" \
            -s "$HERE/report.lua" -H "Host: $HOST"
        # results.tsv: peak RSS is field 10, PSS at that peak field 15.
        held_row busy "$target" "$BUSY_CONNS" "$fresh" "$fresh_pss" \
            "$(tail -1 "$WORK/results.tsv" | cut -f10)" "$(tail -1 "$WORK/results.tsv" | cut -f15)" \
            "$(rss_after "$(pid_of "$target")")"
    done
}

profile_https() { # profile_https PROFILE ROUND [wrk headers...]: the proxies' TLS listeners
    local profile=$1 round=$2 target
    shift 2
    for target in $PROXIES; do
        measure "$profile" "$round" "$target" 64 "https://127.0.0.1:$(tls_port_of "$target")" \
            "$(pid_of "$target")" \
            -s "$HERE/report.lua" -H "Host: $HOST" "$@"
    done
}
profile_https_ka64() { profile_https https-ka64 "$1"; }
# A new TCP connection per request, and an abbreviated handshake: wrk resumes its session.
profile_https_resume() { profile_https https-resume "$1" -H 'Connection: close'; }

# A full handshake per request (handshakes.sh: tls-load, or openssl s_time -new), a row per key
# type of TLS_CLOSE_KEYS, each on the proxies' listener with that key's certificate. The client's
# own CPU per connection (handshakes.sh's line in TLS_CLIENT_LOG) goes beside the target's into
# tls-client-cpu.tsv: the row measures the proxy only while the client's figure stays below it.
profile_https_close() {
    local round=$1 key target client signature
    for key in $TLS_CLOSE_KEYS; do
        for target in $PROXIES; do
            measure_run "https-close-$key" "$round" "$target" "$TLS_CLIENTS" "$(pid_of "$target")" \
                "$HERE/handshakes.sh" "$(tls_port_of "$target" "$key")" "$TLS_CLIENTS" "$WARMUP" \
                "$DURATION" "$HOST"
            IFS=$'\t' read -r _ _ signature client < <(tail -1 "$TLS_CLIENT_LOG")
            # tls-load says which key signed: a listener with the other certificate is a bad row.
            case $key:$signature in
            ecdsa:ECDSA_* | rsa2048:RSA_* | *:-) ;;
            *) die "https-close-$key: $target's port $(tls_port_of "$target" "$key") signed with $signature" ;;
            esac
            printf 'https-close-%s\t%s\t%s\t%s\t%s\n' "$key" "$round" "$target" "$client" \
                "$(tail -1 "$WORK/results.tsv" | cut -f11)" >>"$WORK/tls-client-cpu.tsv"
            log "    client CPU µs/connection: $client ($TLS_CLIENT), $target's: $(tail -1 "$WORK/results.tsv" | cut -f11)"
        done
    done
}

profile_ws() {
    local round=$1 target
    if ((round == 1)); then
        # Fresh proxies whose connection limits fit WS_CONNS tunnels (two sockets each); the
        # profiles after this one keep these limits (ws runs last by default).
        WS_RUNNING=1
        [[ -n $PID_ws ]] || start_ws_origin
        restart_proxies
        for target in $PROXIES; do
            # HAProxy's one process holds every tunnel's two sockets: past what its capped
            # maxconn takes it is left out of this row, not the run.
            if [[ $target == haproxy ]] && ((WS_CONNS + 64 > $(haproxy_connections))); then
                log "  ws       haproxy: left out, $WS_CONNS tunnels exceed its maxconn $(haproxy_connections) (descriptor limit $(ulimit -n))"
                continue
            fi
            measure_tunnels "$target" "$(port_of "$target")" "$(pid_of "$target")"
        done
    fi
    for target in direct $PROXIES; do
        local port=$PORT_ws pid=$PID_ws
        [[ $target == direct ]] || port=$(port_of "$target") pid=$(pid_of "$target")
        measure_run ws-echo "$round" "$target" "$WS_ECHO_CONNS" "$pid" \
            python3 "$HERE/ws_client.py" echo "$port" "$WS_ECHO_CONNS" "$WARMUP" "$DURATION" \
            "ws.$HOST" /ws "$WS_DEPTH" "$WS_SIZE"
    done
}
