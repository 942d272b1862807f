"""Receive Jifen's outbound events in your own system: verify, deduplicate, react.

Jifen signs every delivery per the Standard Webhooks specification (headers ``webhook-id``,
``webhook-timestamp``, ``webhook-signature``). This receiver

1. verifies the signature over the raw body with the ``standardwebhooks`` package (any
   Standard Webhooks library works; a delivery older or newer than five minutes is refused);
2. keeps each ``webhook-id`` it has handled (here in a SQLite file), so a delivery that comes
   again (Jifen delivers at least once) is answered ``200`` and not handled twice;
3. reacts: here it appends one line per event to a JSON-lines file; a shop would update its
   CRM, push a notification or feed its analytics.

Answer 2xx quickly (Jifen waits 15 seconds at most) and do slow work after; any other status
makes Jifen retry on the specification's schedule (5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h).
A ``410 Gone`` disables the endpoint.

Run it, then point an endpoint at it (the secret is printed once)::

    python examples/webhook_receiver.py --port 8088 --secret whsec_...
    jifen webhooks add --program shop --url https://your-host/jifen/events

While you rotate the endpoint's secret both secrets sign each delivery, so the receiver can
switch to the new one at its leisure: pass ``--secret`` twice during the overlap.
"""

from __future__ import annotations

import argparse
import binascii
import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

from flask import Flask, request
from flask.typing import ResponseReturnValue
from standardwebhooks import Webhook, WebhookVerificationError


def create_app(secrets: list[str], seen_path: Path, log_path: Path) -> Flask:
    """The receiver: ``POST /jifen/events``."""
    app = Flask(__name__)
    verifiers = [Webhook(secret) for secret in secrets]
    seen = _Seen(seen_path)

    @app.post("/jifen/events")
    def receive() -> ResponseReturnValue:
        body = request.get_data()  # the raw bytes: never verify a re-serialised body
        event = _verified(verifiers, body, dict(request.headers))
        if event is None:
            return {"error": "bad signature"}, 400
        if not seen.first_time(request.headers["webhook-id"]):
            return {"status": "duplicate"}, 200
        with log_path.open("a", encoding="utf-8") as log:
            log.write(json.dumps(_summary(event), ensure_ascii=False) + "\n")
        return {"status": "ok"}, 200

    return app


def _verified(verifiers: list[Webhook], body: bytes, headers: dict[str, str]) -> Any:
    """The event if any secret verifies the delivery, else ``None``."""
    for verifier in verifiers:
        try:
            return verifier.verify(body, headers)
        except (WebhookVerificationError, ValueError, binascii.Error):
            continue
    return None


def _summary(event: dict[str, Any]) -> dict[str, Any]:
    """What this example keeps of an event: its id, type, member, points and balance."""
    data = event["data"]
    return {
        "id": event["id"],
        "type": event["type"],
        "member": data.get("member"),
        "points": data.get("points"),
        "available": (data.get("balance") or {}).get("available"),
    }


class _Seen:
    """The webhook ids handled so far, in a SQLite file (one connection per call)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.Lock()
        with sqlite3.connect(path) as db:
            db.execute("CREATE TABLE IF NOT EXISTS seen (id TEXT PRIMARY KEY)")

    def first_time(self, webhook_id: str) -> bool:
        with self.lock, sqlite3.connect(self.path) as db:
            added = db.execute("INSERT OR IGNORE INTO seen (id) VALUES (?)", (webhook_id,))
            return added.rowcount == 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8088)
    parser.add_argument(
        "--secret",
        action="append",
        required=True,
        help="the endpoint's whsec_ secret (twice while rotating)",
    )
    parser.add_argument("--seen", type=Path, default=Path("jifen_seen.sqlite3"))
    parser.add_argument("--log", type=Path, default=Path("jifen_events.jsonl"))
    args = parser.parse_args()
    app = create_app(args.secret, args.seen, args.log)
    app.run(host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main()
