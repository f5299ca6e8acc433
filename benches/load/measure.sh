#!/usr/bin/env bash
# Measuring, sourced by run.sh: memory and CPU of a target's processes, one wrk (or other client)
# run into results.tsv, the perf report, and the idle-connection and tunnel memory rows.
# shellcheck disable=SC2154 # settings and state are run.sh's


# sample_rss PID OUT [SAMPLES]: writes "peak_rss_kib pss_kib" to OUT every 0.2 s, SAMPLES times
# (1500 by default: 5 min). PSS is read only when RSS reaches a new peak (pss_kib above: dear), so
# it is the PSS at the peak-RSS moment, not the highest PSS (the two peak together: the load's
# buffers are private, anonymous pages).
sample_rss() {
    local pid=$1 out=$2 samples=${3:-1500} peak=0 pss=0 now i
    for ((i = 0; i < samples; i++)); do
        now=$(rss_kib "$pid")
        if ((now > peak)); then
            peak=$now
            pss=$(pss_kib "$pid")
        fi
        # Written aside and renamed: the reader kills this loop at any moment, and a kill between
        # the truncation and the write of "$out" would leave it empty (a peak of 0).
        echo "$peak $pss" >"$out.new" && mv -f "$out.new" "$out"
        sleep 0.2
    done
}

# How a multi-process target shares the load, halfway through a run: each worker's client
# connections on PORT and its share of the CPU the workers used meanwhile (one second), e.g.
# "conns 40/24 cpu 58%/42%". An uneven split is one cause of a wider tail with 2 workers: the
# busier worker queues its connections' requests behind each other. HAProxy's threads share one
# process and are not split here.
worker_spread() { # worker_spread PID PORT
    local pid=$1 port=$2 worker conns='' cpu='' total=0
    local -a workers ticks
    mapfile -t workers < <(pgrep -P "$pid" || true)
    ((${#workers[@]} > 1)) || return 0
    for worker in "${workers[@]}"; do ticks+=("$(cpu_ticks "$worker")"); done
    sleep 1
    local i
    for i in "${!workers[@]}"; do
        ticks[i]=$(($(cpu_ticks "${workers[i]}") - ticks[i]))
        total=$((total + ticks[i]))
    done
    for i in "${!workers[@]}"; do
        worker=${workers[i]}
        conns+="${conns:+/}$(ss -tnpH state established "( sport = :$port )" 2>/dev/null | grep -c "pid=$worker," || true)"
        cpu+="${cpu:+/}$(awk -v t="${ticks[i]}" -v s="$total" 'BEGIN { printf "%d%%", s ? 100 * t / s : 0 }')"
    done
    echo "conns $conns cpu $cpu"
}

# One wrk run (wrk options, then optionally -- and the Lua script's arguments): the warm-up, then
# measure_run. PORT is a port on 127.0.0.1 (http) or a base URL (https://127.0.0.1:N).
measure() { # measure PROFILE ROUND TARGET CONNS PORT PID [wrk args...]
    local profile=$1 round=$2 target=$3 conns=$4 port=$5 pid=$6 url
    shift 6
    url="http://127.0.0.1:$port/"
    [[ $port == *://* ]] && url="$port/"
    # wrk wants the URL before the `--` that starts the Lua script's own arguments.
    local -a args=(-t "$WRK_THREADS" -c "$conns" --timeout 5s)
    while (($# > 0)) && [[ $1 != -- ]]; do
        args+=("$1")
        shift
    done
    args+=("$url" "$@")
    if ((WARMUP > 0)); then
        timeout $((WARMUP + 30)) wrk -d "${WARMUP}s" "${args[@]}" >/dev/null 2>&1 || true
    fi
    local spread='' spreading=''
    if [[ $port != *://* ]]; then
        spread=$WORK/spread
        (sleep $((DURATION / 2)) && worker_spread "$pid" "$port") >"$spread" 2>/dev/null &
        spreading=$!
    fi
    measure_run "$profile" "$round" "$target" "$conns" "$pid" wrk -d "${DURATION}s" "${args[@]}"
    if [[ -n $spread ]]; then
        wait "$spreading" || true
        if [[ -s $spread ]]; then log "    $target workers: $(cat "$spread")"; fi
    fi
}

per_request() { # per_request TICKS REQUESTS: microseconds of CPU per request
    awk -v t="$1" -v u="$TICK_US" -v r="$2" 'BEGIN { printf "%.1f", t * u / r }'
}

# One measured run of a load COMMAND that prints report.lua's RESULT line (wrk, ws_client.py);
# appends a row to $WORK/results.tsv:
# profile round target conns req/s p50_us p99_us errors non2xx peak_rss_kib cpu_us_per_req requests
# redis_cpu_us_per_req rss_before_kib peak_pss_kib (PSS at the peak-RSS sample)
# user_us_per_req (the target's user-space share of cpu_us_per_req) origin_cpu_us_per_req
# machine_busy_us_per_req (every CPU's busy time: target, origin, Redis, the load client, and
# whatever else ran)
measure_run() { # measure_run PROFILE ROUND TARGET CONNS PID COMMAND...
    local profile=$1 round=$2 target=$3 conns=$4 pid=$5 out sampler ticks line before
    local requests duration p50 p99 errors non2xx redis_ticks peak peak_pss
    local user origin machine
    shift 5
    out=$WORK/wrk.out
    local perf_pid=''
    if [[ -n $PERF_OUT && $profile == "$PERF_PROFILE" && $target == "$PERF_TARGET" && $round == 1 ]]; then
        # cpu-clock, not cycles: hardware counters are often missing in VMs. DWARF unwinding,
        # since the release profile keeps debug info but no frame pointers. The workers serve,
        # not the master: record the master's children.
        local recorded
        recorded=$(pgrep -P "$pid" | paste -sd, -)
        perf record -e cpu-clock -F 499 --call-graph dwarf,16384 -p "${recorded:-$pid}" -o "$WORK/perf.data" \
            -- sleep "$DURATION" >"$WORK/perf.log" 2>&1 &
        perf_pid=$!
    fi
    before=$(rss_kib "$pid")
    echo "$before $(pss_kib "$pid")" >"$WORK/rss.peak"
    sample_rss "$pid" "$WORK/rss.peak" &
    sampler=$!
    ticks=$(cpu_ticks "$pid")
    redis_ticks=$(cpu_ticks "$PID_redis")
    user=$(user_ticks "$pid") origin=$(cpu_ticks "$PID_origin") machine=$(machine_busy_ticks)
    if ! timeout $((WARMUP + DURATION + 60)) "$@" >"$out" 2>&1; then
        kill "$sampler" 2>/dev/null || true
        die "$1 failed on $target ($profile): $(tail -5 "$out")"
    fi
    ticks=$(($(cpu_ticks "$pid") - ticks))
    redis_ticks=$(($(cpu_ticks "$PID_redis") - redis_ticks))
    user=$(($(user_ticks "$pid") - user)) origin=$(($(cpu_ticks "$PID_origin") - origin))
    machine=$(($(machine_busy_ticks) - machine))
    kill "$sampler" 2>/dev/null || true
    wait "$sampler" 2>/dev/null || true
    if [[ -n $perf_pid ]]; then
        wait "$perf_pid" || log "warning: perf record failed: $(tail -3 "$WORK/perf.log")"
        write_perf_report
    fi
    line=$(grep '^RESULT ' "$out" || true)
    [[ -n $line ]] || die "$1 printed no result for $target ($profile): $(tail -5 "$out")"
    read -r _ requests duration p50 p99 errors non2xx <<<"$line"
    read -r peak peak_pss <"$WORK/rss.peak"
    ((requests > 0)) || die "no request succeeded through $target ($profile)"
    if ((errors + non2xx > requests / 100)); then
        log "warning: $target ($profile): $errors socket errors, $non2xx non-2xx answers of $requests"
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$profile" "$round" "$target" "$conns" \
        "$(awk -v r="$requests" -v d="$duration" 'BEGIN { printf "%.0f", r / (d / 1e6) }')" \
        "$p50" "$p99" "$errors" "$non2xx" "$peak" \
        "$(per_request "$ticks" "$requests")" \
        "$requests" \
        "$(per_request "$redis_ticks" "$requests")" \
        "$before" "$peak_pss" \
        "$(per_request "$user" "$requests")" "$(per_request "$origin" "$requests")" \
        "$(per_request "$machine" "$requests")" >>"$WORK/results.tsv"
    log "  $(tail -1 "$WORK/results.tsv" | awk -F'\t' '{ printf "%-11s %-18s c=%-4s %8s req/s  p99 %s us", $1, $3, $4, $5, $7 }')"
}

write_perf_report() { # the flat profile, then inclusive costs of hipache's and its libraries' code
    # `head` closes the pipes early: a SIGPIPE'd perf report is expected, hence the `|| true`s.
    {
        echo "# perf: $PERF_TARGET, $PERF_PROFILE, round 1 ($(date -u '+%Y-%m-%d %H:%M UTC'), rev $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null))"
        echo "## self time by shared object"
        perf report -i "$WORK/perf.data" --no-children --sort dso -g none --stdio 2>/dev/null | grep '%' || true
        echo "## self time by symbol (top 40)"
        perf report -i "$WORK/perf.data" --no-children --sort dso,symbol -g none --stdio 2>/dev/null |
            grep '%' | head -40 || true
        echo "## inclusive time of hipache, redis and hyper functions (top 60)"
        perf report -i "$WORK/perf.data" --children --sort symbol -g none --stdio 2>/dev/null |
            grep '%' | grep -E 'hipache::|redis::|hyper::proto|malloc|free|writev|recv|epoll' | head -60 || true
    } | sed -e 's/  *$//' -e 's/ *-  *-$//' >"$PERF_OUT"
    log "perf report written to $PERF_OUT"
}

# The peak over 2 s while connections are held: "rss_kib pss_kib", PSS read at each new RSS peak.
held_peak() { # held_peak PID
    sample_rss "$1" "$WORK/held.peak" 10
    cat "$WORK/held.peak"
}

# A row of idle.tsv: kind round target conns fresh_rss peak_rss fresh_pss peak_pss after_rss
# (KiB; after: RSS once the connections have closed, what the allocator kept of the burst).
held_row() { # held_row KIND TARGET CONNS FRESH_RSS FRESH_PSS PEAK_RSS PEAK_PSS AFTER_RSS
    printf '%s\t1\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$6" "$5" "$7" "$8" >>"$WORK/idle.tsv"
}

# RSS once the connections the client held have closed: the lowest seen over 6 s, longer than
# hipache's 5 s between looks at what malloc holds free (src/worker/trim.rs), time enough for
# every proxy to notice the closes and free what they held.
rss_after() { # rss_after PID
    local pid=$1 low now i
    low=$(rss_kib "$pid")
    for ((i = 0; i < 12; i++)); do
        sleep 0.5
        now=$(rss_kib "$pid")
        ((now < low)) && low=$now
    done
    echo "$low"
}

# The idle-connection memory profile: fresh proxies, RSS before and with IDLE_CONNS open.
measure_idle() { # measure_idle TARGET PORT PID
    local target=$1 port=$2 pid=$3 before before_pss peak peak_pss ready=$WORK/idle.ready client
    rm -f "$ready"
    before=$(rss_kib "$pid") before_pss=$(pss_kib "$pid")
    python3 "$HERE/idle_conns.py" "$port" "$IDLE_CONNS" "$IDLE_HOLD" "$HOST" "$ready" \
        >"$WORK/idle.log" 2>&1 &
    client=$!
    wait_for 70 "idle connections" test -e "$ready" ||
        die "could not open $IDLE_CONNS connections to $target: $(tail -3 "$WORK/idle.log")"
    read -r peak peak_pss < <(held_peak "$pid")
    wait "$client" || die "idle connection client failed on $target: $(tail -3 "$WORK/idle.log")"
    held_row mem "$target" "$IDLE_CONNS" "$before" "$before_pss" "$peak" "$peak_pss" "$(rss_after "$pid")"
    log "  mem      $target: $((before / 1024)) MiB idle, $((peak / 1024)) MiB with $IDLE_CONNS connections (PSS $((before_pss / 1024)) -> $((peak_pss / 1024)) MiB)"
}

# How many of PORT's established client connections each of PID's processes holds ("5003/4997"):
# a proxy whose workers split the tunnels unevenly needs more descriptors in the busier one.
conns_per_process() { # conns_per_process PID PORT
    local pid=$1 port=$2 proc out=''
    for proc in $(tree_pids "$pid"); do
        local held
        held=$(ss -tnpH state established "( sport = :$port )" 2>/dev/null | grep -c "pid=$proc," || true)
        ((held > 0)) && out+="${out:+/}$held"
    done
    echo "${out:-?}"
}

# The WebSocket tunnel memory row: RSS before and with WS_CONNS open tunnels to the echo origin.
measure_tunnels() { # measure_tunnels TARGET PORT PID
    local target=$1 port=$2 pid=$3 before before_pss peak peak_pss ready=$WORK/ws.ready client split
    rm -f "$ready"
    before=$(rss_kib "$pid") before_pss=$(pss_kib "$pid")
    python3 "$HERE/ws_client.py" open "$port" "$WS_CONNS" "$IDLE_HOLD" "ws.$HOST" /ws "$ready" \
        >"$WORK/ws-open.log" 2>&1 &
    client=$!
    wait_for 300 "WebSocket tunnels" test -e "$ready" ||
        die "could not open $WS_CONNS tunnels through $target: $(tail -3 "$WORK/ws-open.log")"
    split=$(conns_per_process "$pid" "$port") # first: the client holds them IDLE_HOLD s only
    read -r peak peak_pss < <(held_peak "$pid")
    wait "$client" || die "WebSocket tunnel client failed on $target: $(tail -3 "$WORK/ws-open.log")"
    held_row ws "$target" "$WS_CONNS" "$before" "$before_pss" "$peak" "$peak_pss" "$(rss_after "$pid")"
    log "  ws       $target: $((before / 1024)) MiB before, $((peak / 1024)) MiB with $WS_CONNS tunnels (PSS $((before_pss / 1024)) -> $((peak_pss / 1024)) MiB; tunnels per process $split)"
}
