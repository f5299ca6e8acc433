-- Prints one machine-readable line when wrk is done; run.sh parses it (latencies in µs).
function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format("RESULT %d %d %d %d %d %d\n",
      summary.requests,
      summary.duration,
      math.floor(latency:percentile(50)),
      math.floor(latency:percentile(99)),
      e.connect + e.read + e.write + e.timeout,
      e.status))
end
