/*
 * Jifen in a storefront: show a signed-in customer their points, from JavaScript.
 *
 * The shop's server never gives its server key (jfn_sk_…) to a browser. When the customer
 * signs in, it asks Jifen for a member token, which can only read this one customer's
 * balance, history and expiring points, and lives 15 minutes by default:
 *
 *   POST /v1/members/{member}/tokens        (Authorization: Bearer jfn_sk_…, scope read)
 *   {"ttl_seconds": 900}              ->    {"token": "jfn_mt_…", "expires_at": "…", …}
 *
 * and hands the token to the page. This file is what the page (or an app) then does with it:
 * GET /v1/members/{member}/balance and /history with "Authorization: Bearer jfn_mt_…".
 * A browser may call Jifen from the shop's own origin only if the program allows it (CORS):
 * `jifen keys origins add --program shop https://shop.example.com`.
 *
 * Plain JavaScript, no dependencies: Node 18+ (fetch is built in) or any browser.
 *
 *   JIFEN_URL=http://127.0.0.1:8000 JIFEN_MEMBER=cust-1001 JIFEN_MEMBER_TOKEN=jfn_mt_… \
 *     node examples/storefront.js
 *
 * In a page: <script src="storefront.js"></script>, then
 *   const points = await JifenStorefront.loadPoints({ baseUrl, member, token });
 *   element.textContent = JifenStorefront.describePoints(points).join("\n");
 */
"use strict";

/** GET a path of Jifen's API with the member token; the JSON answer, or an Error. */
async function jifenGet(baseUrl, token, path) {
  const response = await fetch(baseUrl.replace(/\/$/, "") + path, {
    headers: { Authorization: `Bearer ${token}`, Accept: "application/json" },
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    // Errors are application/problem+json with a stable `code` and a `detail` to show.
    const error = new Error(`${body.code || response.status}: ${body.detail || response.statusText}`);
    error.code = body.code;
    error.status = response.status;
    throw error;
  }
  return body;
}

/**
 * The member's balance (with the points expiring within `expiringWithinDays`) and the
 * newest `historyLimit` items of their history, fetched together.
 */
async function loadPoints({ baseUrl, member, token, expiringWithinDays = 30, historyLimit = 5 }) {
  const base = `/v1/members/${encodeURIComponent(member)}`;
  const [balance, history] = await Promise.all([
    jifenGet(baseUrl, token, `${base}/balance?expiring_within_days=${expiringWithinDays}`),
    jifenGet(baseUrl, token, `${base}/history?limit=${historyLimit}`),
  ]);
  return { balance, history, expiringWithinDays };
}

/** What a storefront shows: the points available, those that expire soon, recent activity. */
function describePoints({ balance, history, expiringWithinDays }) {
  const lines = [`${balance.member}: ${balance.available} points available`];
  if (balance.pending) lines.push(`  ${balance.pending} more points are on their way`);
  if (balance.held) lines.push(`  ${balance.held} points are held for an order`);
  if (balance.expiring.length === 0) {
    const days = expiringWithinDays === 1 ? "1 day" : `${expiringWithinDays} days`;
    lines.push(`No points expire in the next ${days}.`);
  }
  for (const lot of balance.expiring) {
    // last_day is the last day (in the program's time zone) the points can be used.
    lines.push(`Expiring: ${lot.points} points, use them by ${lot.last_day}`);
  }
  lines.push("Recent activity:");
  for (const item of history.items) {
    const points = item.points > 0 ? `+${item.points}` : String(item.points);
    lines.push(`  ${item.created_at.slice(0, 10)}  ${points.padStart(6)}  ${item.description}`);
  }
  return lines;
}

async function main() {
  const { JIFEN_URL, JIFEN_MEMBER, JIFEN_MEMBER_TOKEN } = process.env;
  if (!JIFEN_URL || !JIFEN_MEMBER || !JIFEN_MEMBER_TOKEN) {
    console.error(
      "set JIFEN_URL (the Jifen server), JIFEN_MEMBER (the customer's id) and " +
        "JIFEN_MEMBER_TOKEN (a jfn_mt_… token from POST /v1/members/{member}/tokens)",
    );
    process.exit(2);
  }
  try {
    const points = await loadPoints({
      baseUrl: JIFEN_URL,
      member: JIFEN_MEMBER,
      token: JIFEN_MEMBER_TOKEN,
      expiringWithinDays: Number(process.env.JIFEN_EXPIRING_WITHIN_DAYS || 30),
    });
    console.log(describePoints(points).join("\n"));
  } catch (error) {
    console.error(`Jifen answered ${error.message}`);
    process.exit(1);
  }
}

if (typeof module !== "undefined" && typeof require !== "undefined" && require.main === module) {
  main();
} else {
  globalThis.JifenStorefront = { loadPoints, describePoints };
}
