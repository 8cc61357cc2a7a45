-- wrk script for benches/load/api-read.sh: every request carries the API key from LC_TOKEN;
-- at the end one machine-readable line is printed for the shell script to pick up (timeouts:
-- requests slower than wrk's --timeout, 2 s by default, which the latency histogram omits).
local token = os.getenv("LC_TOKEN")
if token == nil or token == "" then
  error("LC_TOKEN is not set")
end
wrk.headers["Authorization"] = "Bearer " .. token
wrk.headers["Accept"] = "application/json"

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f rps=%.1f requests=%d timeouts=%d socket_errors=%d non2xx=%d\n",
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000, summary.requests / (summary.duration / 1e6), summary.requests,
    e.timeout, e.connect + e.read + e.write, e.status))
end
