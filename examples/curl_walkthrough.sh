#!/usr/bin/env bash
# Jifen's HTTP API with curl: one customer's journey, step by step.
#
# A shop on any stack talks to Jifen's server with a server key (jfn_sk_…) of its program:
#
#   jifen keys create --program shop --scope earn --scope read --scope redeem --scope refund
#   export JIFEN_URL=http://127.0.0.1:8000 JIFEN_API_KEY=jfn_sk_…
#   bash examples/curl_walkthrough.sh
#
# It enrols a customer, prices and earns an order, pays part of a second order with points
# (quote, hold, capture), refunds part of the first order, and reads the balance and the
# history. Every write sends an Idempotency-Key: sending the same request again (a retry after
# a timeout, or running this whole script twice) answers the first result again, marked with
# the header "Idempotent-Replayed: true", and changes nothing.
#
# Needs bash and curl; the JSON is pretty-printed by python3 if it is there (jq is not needed).
# JIFEN_MEMBER picks another customer id (default cust-1001).
set -euo pipefail

: "${JIFEN_URL:?set JIFEN_URL to the Jifen server, e.g. http://127.0.0.1:8000}"
: "${JIFEN_API_KEY:?set JIFEN_API_KEY to a server key (jfn_sk_…) of the program}"
MEMBER="${JIFEN_MEMBER:-cust-1001}"
JIFEN_URL="${JIFEN_URL%/}"

workdir="$(mktemp -d)"
trap 'rm -rf "$workdir"' EXIT

pretty() {
  if command -v python3 >/dev/null 2>&1; then python3 -m json.tool; else cat; echo; fi
}

# api METHOD PATH [JSON_BODY] [IDEMPOTENCY_KEY]
# Sends one request, prints the status line and the JSON answer; stops the script on an error
# (the answer is then application/problem+json with a stable "code" and a "detail").
api() {
  local method="$1" path="$2" body="${3:-}" key="${4:-}"
  local args=(--silent --show-error --request "$method"
    --header "Authorization: Bearer $JIFEN_API_KEY"
    --dump-header "$workdir/headers" --output "$workdir/body" --write-out '%{http_code}')
  if [ -n "$body" ]; then
    args+=(--header "Content-Type: application/json" --data "$body")
  fi
  if [ -n "$key" ]; then
    args+=(--header "Idempotency-Key: $key")
  fi
  local status
  status="$(curl "${args[@]}" "$JIFEN_URL$path")"
  local replayed=""
  if grep -qi '^idempotent-replayed: true' "$workdir/headers"; then replayed=" (replayed)"; fi
  echo "$method $path -> HTTP $status$replayed"
  pretty <"$workdir/body"
  echo
  case "$status" in
    2??) ;;
    *) echo "stopped: the server answered $status" >&2; exit 1 ;;
  esac
}

echo "== 1. Enrol the customer (scope earn). Enrolling again with the same details answers them."
api POST /v1/members "{\"member\": \"$MEMBER\", \"email\": \"$MEMBER@example.com\"}" \
  "enrol-$MEMBER"

echo "== 2. What would an order of 258.00 earn? A quote writes nothing (scope read)."
api POST /v1/quotes/earn "{\"amount_minor\": 25800, \"member\": \"$MEMBER\"}"

echo "== 3. The order is paid: earn its points, once per order (scope earn)."
EARN="{\"member\": \"$MEMBER\", \"order_id\": \"WEB-1001\", \"amount_minor\": 25800}"
api POST /v1/earnings/purchase "$EARN" "earn-WEB-1001"

echo "== 4. A retry with the same Idempotency-Key: the same answer, nothing earned twice."
api POST /v1/earnings/purchase "$EARN" "earn-WEB-1001"

echo "== 5. Next order, 100.00: how many points may pay for part of it? (scope read)"
api POST /v1/quotes/redemption "{\"member\": \"$MEMBER\", \"order_total_minor\": 10000}"

echo "== 6. The customer uses 200 points: hold them while the card is charged (scope redeem)."
api POST /v1/holds \
  "{\"member\": \"$MEMBER\", \"order_id\": \"WEB-1002\", \"points\": 200, \"order_total_minor\": 10000}" \
  "hold-WEB-1002"

echo "== 7. The payment succeeded: capture the hold (a failed payment would release it)."
api POST /v1/holds/WEB-1002/capture "" "capture-WEB-1002"

echo "== 8. 50.00 of the first order is refunded: its share of the points is taken back (scope refund)."
api POST /v1/refunds \
  '{"order_id": "WEB-1001", "refund_id": "RF-1001", "amount_minor": 5000, "succeeded": true}' \
  "refund-RF-1001"

echo "== 9. The balance, and the points that expire within 120 days."
api GET "/v1/members/$MEMBER/balance?expiring_within_days=120"

echo "== 10. The history, newest first (pass next_cursor as ?cursor= for the next page)."
api GET "/v1/members/$MEMBER/history?limit=10"
