-- GET a path; "{member}" in it becomes a random member on every request.
--   JIFEN_WRK_PATH=/v1/members/{member}/balance JIFEN_API_KEY=jfn_sk_… \
--   wrk -t2 -c8 -d8s --latency -s bench/wrk/get.lua http://127.0.0.1:8000
-- Answers other than 200 are counted.
dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")

function init(args)
  read_settings()
  per_member = path:find("{member}", 1, true) ~= nil
end

function request()
  sent = sent + 1
  local target = path
  if per_member then target = path:gsub("{member}", random_member()) end
  return wrk.format("GET", target, headers)
end
