-- wrk script for bench/console.sh: GET the paths of one request class in turn
-- with the session cookie, count every answer that is not 2xx (a redirect to
-- /login means the session was lost: counted, not followed), and print one
-- result line in done():
--   CONSOLE_RESULT {"requests":…, "p50_ms":…, "p95_ms":…, …}
-- Environment: CONSOLE_PATHS (file, one request path a line),
--              CONSOLE_COOKIE (the Cookie header value).

local paths_file = os.getenv("CONSOLE_PATHS")
local cookie = os.getenv("CONSOLE_COOKIE")
wrk.headers["Cookie"] = cookie
wrk.headers["Accept-Language"] = "en"

local threads = {}
local next_id = 0

-- main state: keep each thread to read its counters in done()
function setup(thread)
   thread:set("id", next_id)
   next_id = next_id + 1
   table.insert(threads, thread)
end

-- per thread state
local paths = {}
local i = 0
non2xx = 0
statuses = ""
requests_sent = 0

function init(args)
   for line in io.lines(paths_file) do
      if line ~= "" then paths[#paths + 1] = line end
   end
   if #paths == 0 then error("no paths in " .. tostring(paths_file)) end
   -- threads (and connections within them) start at different places of the list
   i = (id or 0) * 7 % #paths
end

function request()
   i = i % #paths + 1
   requests_sent = requests_sent + 1
   return wrk.format("GET", paths[i])
end

function response(status, headers, body)
   if status < 200 or status > 299 then
      non2xx = non2xx + 1
      if #statuses < 200 then
         local where = headers["Location"] or headers["location"] or ""
         statuses = statuses .. status .. (where ~= "" and ("->" .. where) or "") .. " "
      end
   end
end

function done(summary, latency, requests)
   local bad, seen = 0, ""
   for _, t in ipairs(threads) do
      bad = bad + (t:get("non2xx") or 0)
      seen = seen .. (t:get("statuses") or "")
   end
   local e = summary.errors
   local secs = summary.duration / 1e6
   local function ms(us) return string.format("%.1f", us / 1000) end
   io.write(string.format(
      'CONSOLE_RESULT {"requests":%d,"seconds":%.2f,"rps":%.1f,' ..
      '"p50_ms":%s,"p90_ms":%s,"p95_ms":%s,"p99_ms":%s,"max_ms":%s,"mean_ms":%s,' ..
      '"non2xx":%d,"connect_errors":%d,"read_errors":%d,"write_errors":%d,' ..
      '"timeouts":%d,"status_errors":%d,"bad_statuses":"%s"}\n',
      summary.requests, secs, summary.requests / secs,
      ms(latency:percentile(50)), ms(latency:percentile(90)), ms(latency:percentile(95)),
      ms(latency:percentile(99)), ms(latency.max), ms(latency.mean),
      bad, e.connect, e.read, e.write, e.timeout, e.status,
      seen:gsub('"', "'"):sub(1, 300)))
end
