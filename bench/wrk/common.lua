-- What every Jifen wrk script shares: counting the answers and reporting them.
--
-- Each script sets `expect` (the status every answer must have) and may set `must_contain`
-- (text every answer's body must contain); answers that miss are counted as unexpected, and
-- the first one is kept to show. `done` prints one line, "JIFEN_WRK {json}", that
-- bench/api_http.py reads: requests, duration, percentiles (microseconds), socket errors.

local threads = {}

function setup(thread)  -- main state, once per thread: a thread id each
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

sent, unexpected, replayed, first_bad = 0, 0, 0, ""

function response(status, headers, body)
  if status ~= expect or (must_contain and not body:find(must_contain, 1, true)) then
    unexpected = unexpected + 1
    if first_bad == "" then first_bad = status .. " " .. body:sub(1, 300) end
  end
  if headers["Idempotent-Replayed"] then replayed = replayed + 1 end
end

local function json_string(text)
  return '"' .. text:gsub('[%c"\\]', function(c) return string.format("\\u%04x", c:byte()) end) .. '"'
end

function done(summary, latency, requests)
  local total = { sent = 0, unexpected = 0, replayed = 0 }
  local bad = ""
  for _, t in ipairs(threads) do
    for name in pairs(total) do total[name] = total[name] + t:get(name) end
    if bad == "" then bad = t:get("first_bad") end
  end
  local e = summary.errors
  io.write(string.format(
    'JIFEN_WRK {"requests":%d,"duration_us":%d,"sent":%d,"unexpected":%d,"replayed":%d,'
      .. '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f,'
      .. '"errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d,"status":%d},"first_bad":%s}\n',
    summary.requests, summary.duration, total.sent, total.unexpected, total.replayed,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    latency.mean, e.connect, e.read, e.write, e.timeout, e.status, json_string(bad)))
end

-- A random member id of the bench's m0 … m(N-1).
function random_member()
  return "m" .. math.random(0, members - 1)
end

-- Settings every script reads from the environment (set by bench/api_http.py).
function read_settings()
  members = tonumber(os.getenv("JIFEN_WRK_MEMBERS") or "1000")
  path = os.getenv("JIFEN_WRK_PATH") or "/"
  expect = tonumber(os.getenv("JIFEN_WRK_EXPECT") or "200")
  prefix = (os.getenv("JIFEN_WRK_TAG") or string.format("%x", os.time())) .. "-" .. tid .. "-"
  math.randomseed(os.time() * 1000 + tid)
  headers = {}
  local key = os.getenv("JIFEN_API_KEY")
  if key then headers["Authorization"] = "Bearer " .. key end
end
