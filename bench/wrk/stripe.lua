-- POST a new signed Stripe payment_intent.succeeded event on every request.
--
-- The body is a template (JIFEN_WRK_BODY, a file) with three placeholders: XXEVTXX (the
-- event id) and XXPIXX (the PaymentIntent id) become a new id per request, XXCUSXX a random
-- member's Stripe customer (cus_bench<i>). Each body is signed as Stripe signs it,
-- "Stripe-Signature: t=<now>,v1=<HMAC-SHA256(secret, t.body)>", with OpenSSL's HMAC (wrk
-- links libcrypto; LuaJIT's FFI calls it). Answers other than 200 "applied" are counted.
--   JIFEN_WRK_BODY=event.json JIFEN_WRK_SECRET=whsec_… JIFEN_WRK_PATH=/webhooks/stripe \
--   wrk -t2 -c8 -d8s --latency -s bench/wrk/stripe.lua http://127.0.0.1:8000
dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")

local ffi = require("ffi")
ffi.cdef [[
typedef struct evp_md_st EVP_MD;
const EVP_MD *EVP_sha256(void);
unsigned char *HMAC(const EVP_MD *md, const void *key, int key_len, const unsigned char *data,
                    size_t data_len, unsigned char *out, unsigned int *out_len);
]]
local mac, mac_len = ffi.new("unsigned char[32]"), ffi.new("unsigned int[1]")

local function hmac_sha256_hex(key, data)
  ffi.C.HMAC(ffi.C.EVP_sha256(), key, #key, data, #data, mac, mac_len)
  local hex = {}
  for i = 0, mac_len[0] - 1 do hex[#hex + 1] = string.format("%02x", mac[i]) end
  return table.concat(hex)
end

function init(args)
  read_settings()
  must_contain = '"applied"'
  secret = os.getenv("JIFEN_WRK_SECRET")
  local file = assert(io.open(os.getenv("JIFEN_WRK_BODY"), "rb"))
  template = file:read("*a")
  file:close()
  headers["Content-Type"] = "application/json"
  id_prefix = prefix:gsub("%-", "")
end

function request()
  sent = sent + 1
  local id = id_prefix .. "x" .. sent
  local payload = template:gsub("XXEVTXX", id):gsub("XXPIXX", id)
    :gsub("XXCUSXX", "bench" .. math.random(0, members - 1))
  local t = os.time()
  headers["Stripe-Signature"] = string.format("t=%d,v1=%s", t, hmac_sha256_hex(secret, t .. "." .. payload))
  return wrk.format("POST", path, headers, payload)
end
