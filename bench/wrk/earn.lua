-- POST an earn for a random member with a new order id and Idempotency-Key on every request.
--   JIFEN_WRK_PATH=/v1/earnings/purchase JIFEN_API_KEY=jfn_sk_… JIFEN_WRK_MEMBERS=2000 \
--   wrk -t2 -c8 -d8s --latency -s bench/wrk/earn.lua http://127.0.0.1:8000
-- Answers other than 201 are counted (and so are replays, which unique keys never cause).
dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")

function init(args)
  read_settings()
  expect = tonumber(os.getenv("JIFEN_WRK_EXPECT") or "201")
  amount = tonumber(os.getenv("JIFEN_WRK_AMOUNT") or "12345")
  headers["Content-Type"] = "application/json"
end

function request()
  sent = sent + 1
  local order = prefix .. sent
  headers["Idempotency-Key"] = "bench-" .. order
  local body = string.format('{"member":"%s","order_id":"%s","amount_minor":%d}',
    random_member(), order, amount)
  return wrk.format("POST", path, headers, body)
end
