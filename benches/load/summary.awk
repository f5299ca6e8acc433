# The summary tables of run.sh, from results.tsv (one row per measured run) and idle.tsv (the
# memory rows: kind round target connections fresh_rss_kib rss_with_them_kib fresh_pss_kib
# pss_with_them_kib rss_after_they_closed_kib, for idle keep-alive connections, busy ones and WebSocket tunnels). PSS beside
# RSS: an RSS sum counts the pages master and workers share (the binary's text) once per process,
# PSS divides each shared page among the processes mapping it.
# Variables: frontends (the scale profile's host count), busy (BUSY_CONNS), ws_depth, ws_size.
function ratio(a, b) { return (a != "" && b > 0) ? sprintf("%.2f×", a / b) : "-" }
function both(a, ref_n, ref_h) { # "vs nginx / vs HAProxy" for one figure
    return ratio(a, ref_n) " / " ratio(a, ref_h)
}
function mean(array, key) { return (key in n) ? array[key] / n[key] : 0 }
function ref_key(profile, proxy) { # the reference row for PROFILE: nginx's or haproxy's
    if (profile == "scale") return profile SUBSEP proxy " " frontends " hosts"
    return profile SUBSEP proxy
}
function label(profile) {
    if (profile == "close") return "close (Connection: close)"
    if (profile == "https-resume") return "https-resume (resumed handshake per request)"
    if (profile == "https-close-ecdsa") return "https-close, ECDSA P-256 (full handshake per request)"
    if (profile == "https-close-rsa2048") return "https-close, RSA 2048 (full handshake per request)"
    if (profile == "busy") return "busy (keep-alive, all busy)"
    if (profile == "ws-echo") return sprintf("ws-echo (messages/s, %d × %d B in flight)", ws_depth, ws_size)
    return profile
}
FNR == 1 && FILENAME ~ /idle/ { held = 1 }
held {
    key = $1 SUBSEP $3
    held_before[key] = $5; held_peak[key] = $6; held_conns[$1] = $4
    held_before_pss[key] = $7; held_peak_pss[key] = $8; held_after[key] = $9
    if ($3 == "hipache+metrics") with_metrics = 1
    next
}
{
    key = $1 SUBSEP $3
    if (!(key in n)) { order[++count] = key; conns[key] = $4 }
    n[key]++; rps[key] += $5; p50[key] += $6; p99[key] += $7
    err[key] += $8 + $9; cpu[key] += $11; redis[key] += $13
    user[key] += $16; origin[key] += $17; machine[key] += $18
    if (!(key in lo) || $5 < lo[key]) lo[key] = $5
    if ($5 > hi[key]) hi[key] = $5
    if ($10 > rss[key]) rss[key] = $10
}
END {
    if (count > 0) {
        print "| profile | target | conns | req/s | spread | vs nginx / HAProxy | p50 ms | p99 ms | vs nginx / HAProxy | peak RSS MiB | vs nginx / HAProxy | CPU µs/req | vs nginx / HAProxy | Redis µs/req | errors |"
        print "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    }
    for (i = 1; i <= count; i++) {
        key = order[i]; split(key, part, SUBSEP); profile = part[1]; target = part[2]
        m = n[key]; r = rps[key] / m
        rn = ref_key(profile, "nginx"); rh = ref_key(profile, "haproxy")
        vs_r = vs_p = vs_m = vs_c = ""
        if (target ~ /^hipache/) {
            vs_r = both(r, mean(rps, rn), mean(rps, rh))
            vs_p = both(p99[key] / m, mean(p99, rn), mean(p99, rh))
            vs_m = both(rss[key], rss[rn], rss[rh])
            vs_c = both(cpu[key] / m, mean(cpu, rn), mean(cpu, rh))
        } else if (target ~ /^haproxy/) { # the second reference against the first
            vs_r = ratio(r, mean(rps, rn)); vs_p = ratio(p99[key] / m, mean(p99, rn))
            vs_m = ratio(rss[key], rss[rn]); vs_c = ratio(cpu[key] / m, mean(cpu, rn))
        }
        printf "| %s | %s | %d | %.0f | %.0f%% | %s | %.2f | %.2f | %s | %.1f | %s | %.1f | %s | %.1f | %d |\n",
            label(profile), (target == "direct") ? "direct (origin)" : target, conns[key], r,
            (r > 0 ? 100 * (hi[key] - lo[key]) / r : 0), vs_r, p50[key] / m / 1000,
            p99[key] / m / 1000, vs_p, rss[key] / 1024, vs_m, cpu[key] / m, vs_c,
            redis[key] / m, err[key]
    }
    # METRICS=both: the cost of hipache's metrics, each profile's hipache+metrics row over its
    # hipache row (measured right after it, so under the same machine load).
    for (i = 1; i <= count; i++) {
        key = order[i]; split(key, part, SUBSEP)
        off = part[1] SUBSEP "hipache"
        if (part[2] == "hipache+metrics" && (off in n))
            printf "\nmetrics on / off, %s, same run: CPU per request %s, req/s %s\n", part[1],
                ratio(cpu[key] / n[key], cpu[off] / n[off]), ratio(rps[key] / n[key], rps[off] / n[off])
    }
    # Where the machine's CPU goes per request, for the plain keep-alive and close rows: the
    # target's share (its user space apart), the origin's, and the rest (the load client, Redis,
    # anything else). The bound: req/s had the target's user space cost nothing, the machine
    # staying as busy; no user-space work brings a target past it, since the kernel's share
    # (loopback TCP, which the sender pays for both ends) stays.
    shown_cpu = 0
    for (i = 1; i <= count; i++) {
        key = order[i]; split(key, part, SUBSEP); profile = part[1]; target = part[2]
        if (profile !~ /^(ka64|ka256|close)$/ || target == "direct" || machine[key] <= 0) continue
        if (!shown_cpu++) {
            print "\n| profile | target | req/s | machine busy µs/req | target µs/req | of which user space | origin µs/req | client and rest µs/req | req/s with a free user space | vs nginx / HAProxy req/s |"
            print "|---|---|---|---|---|---|---|---|---|---|"
        }
        # (`busy` is taken: BUSY_CONNS, for the memory rows below.)
        m = n[key]; r = rps[key] / m; all_busy = machine[key] / m; own = cpu[key] / m; u = user[key] / m
        bound = (all_busy > u) ? r * all_busy / (all_busy - u) : 0
        vs = (target ~ /^hipache/) ? both(bound, mean(rps, ref_key(profile, "nginx")), mean(rps, ref_key(profile, "haproxy"))) : "-"
        printf "| %s | %s | %.0f | %.1f | %.1f | %.1f | %.1f | %.1f | %.0f | %s |\n", profile, target, r,
            all_busy, own, u, origin[key] / m, all_busy - own - origin[key] / m, bound, vs
    }
    one = "scale" SUBSEP "hipache 1 host"; many = "scale" SUBSEP "hipache " frontends " hosts"
    if ((one in n) && (many in n))
        printf "\nscale: hipache with %d frontends / with 1 frontend, same run: %s req/s\n",
            frontends, ratio(rps[many] / n[many], rps[one] / n[one])

    # Memory, one column per proxy: fresh RSS, with the connections, and the cost of each one.
    rows = 0
    if (("mem" SUBSEP "nginx") in held_peak) {
        c = held_conns["mem"]
        add_row(sprintf("RSS fresh, MiB (before %d idle connections)", c), "mem", "before", 0)
        add_row(sprintf("RSS with %d idle keep-alive connections, MiB", c), "mem", "peak", 0)
        add_row("KiB per idle connection (RSS)", "mem", "per", c)
        add_row("PSS fresh, MiB", "mem", "before_pss", 0)
        add_row(sprintf("PSS with %d idle keep-alive connections, MiB", c), "mem", "peak_pss", 0)
        add_row("KiB per idle connection (PSS)", "mem", "per_pss", c)
        add_row("RSS once they have closed, MiB", "mem", "after", 0)
    }
    if (("busy" SUBSEP "nginx") in held_peak) {
        add_row(sprintf("RSS fresh, MiB (before %d busy connections)", busy), "busy", "before", 0)
        add_row(sprintf("peak RSS with %d busy keep-alive connections (wrk -c%d), MiB", busy, busy), "busy", "peak", 0)
        add_row("KiB per busy connection (RSS)", "busy", "per", busy)
        add_row("PSS fresh, MiB", "busy", "before_pss", 0)
        add_row(sprintf("PSS at the RSS peak with %d busy connections, MiB", busy), "busy", "peak_pss", 0)
        add_row("KiB per busy connection (PSS)", "busy", "per_pss", busy)
        add_row("RSS once they have closed, MiB", "busy", "after", 0)
    }
    if (("ws" SUBSEP "nginx") in held_peak) {
        c = held_conns["ws"]
        add_row(sprintf("RSS fresh, MiB (before %d WebSocket tunnels)", c), "ws", "before", 0)
        add_row(sprintf("RSS with %d open WebSocket tunnels, MiB", c), "ws", "peak", 0)
        add_row("KiB per tunnel (RSS)", "ws", "per", c)
        add_row("PSS fresh, MiB", "ws", "before_pss", 0)
        add_row(sprintf("PSS with %d open WebSocket tunnels, MiB", c), "ws", "peak_pss", 0)
        add_row("KiB per tunnel (PSS)", "ws", "per_pss", c)
        add_row("RSS once they have closed, MiB", "ws", "after", 0)
    }
    if (rows > 0) {
        if (with_metrics) {
            print "\n| memory | nginx | HAProxy | hipache | hipache vs nginx / HAProxy | hipache+metrics | metrics on / off |"
            print "|---|---|---|---|---|---|---|"
        } else {
            print "\n| memory | nginx | HAProxy | hipache | hipache vs nginx / HAProxy |"
            print "|---|---|---|---|---|"
        }
        for (i = 1; i <= rows; i++) print row[i]
        if ((("ws" SUBSEP "nginx") in held_peak) && !(("ws" SUBSEP "haproxy") in held_peak))
            printf "\nHAProxy: no tunnel rows (-): its one process holds both sockets of every tunnel, more than its descriptor limit allows at %d tunnels.\n", held_conns["ws"]
    }
}
function figure(kind, what, proxy, conns_, key) { # KiB, KiB per connection, "" if not measured
    key = kind SUBSEP proxy
    if (!(key in held_peak)) return ""
    if (what == "before") return held_before[key]
    if (what == "peak") return held_peak[key]
    if (what == "before_pss") return held_before_pss[key]
    if (what == "peak_pss") return held_peak_pss[key]
    if (what == "after") return held_after[key]
    if (what == "per_pss") return (held_peak_pss[key] - held_before_pss[key]) / conns_
    return (held_peak[key] - held_before[key]) / conns_
}
function shown(x, scale) { return (x == "") ? "-" : sprintf("%.1f", x / scale) }
function add_row(title, kind, what, conns_, a, b, h, hm, scale) {
    scale = (what ~ /^per/) ? 1 : 1024
    a = figure(kind, what, "nginx", conns_); b = figure(kind, what, "haproxy", conns_)
    h = figure(kind, what, "hipache", conns_)
    row[++rows] = sprintf("| %s | %s | %s | %s | %s |", title, shown(a, scale), shown(b, scale), shown(h, scale), both(h, a, b))
    if (with_metrics) {
        hm = figure(kind, what, "hipache+metrics", conns_)
        row[rows] = row[rows] sprintf(" %s | %s |", shown(hm, scale), ratio(hm, h))
    }
}
