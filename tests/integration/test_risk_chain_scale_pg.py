"""The transfer chains rule at scale on PostgreSQL: 100,000 transfers in one day.

Members ``g0``… give to members ``r0``… (90,000 gifts of 100 points), who give a little back
(10,000 of 10 points): every giver receives a little and sends a lot of their own, every
receiver receives a lot and keeps it, so no one is a chain. Among them, 100 mules each
receive 5 gifts of 500 points and pass 90 % on. The transfers are made in SQL (with their
operations and the events ``backfill_events`` writes for them), all within the rule's
window, the worst case for its one grouped query: the scan finds exactly the 100 mules.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import text

from loyalty import services as s
from loyalty.db import Database
from loyalty.domain.clock import FixedClock
from loyalty.events.backfill import backfill_events
from tests.integration.helpers import PROGRAM, make_program

GIVERS = 5_000
RECEIVERS = 5_000
TRANSFERS = 100_000
MULES = 100


def seed(db: Database, clock: FixedClock) -> None:
    make_program(db, transfers_enabled=True)
    now = clock.now()
    with db.engine.begin() as conn:
        program_id = conn.execute(text("SELECT id FROM programs")).scalar_one()
        conn.execute(
            text(
                "INSERT INTO members (program_id, external_id, status, created_at)"
                " SELECT :p, prefix || g, 'active', :at"
                " FROM (VALUES ('g', :givers), ('r', :receivers), ('mule', :mules),"
                " ('sink', 1)) AS kinds(prefix, n), generate_series(0, n - 1) g"
            ),
            {
                "p": program_id,
                "at": now - dt.timedelta(days=60),
                "givers": GIVERS,
                "receivers": RECEIVERS,
                "mules": MULES,
            },
        )
        # (n, sender, recipient, points, seconds before now) for every transfer.
        conn.execute(
            text(
                "CREATE TEMP TABLE seed AS"
                " SELECT g AS n, CASE WHEN g % 10 = 0 THEN 'r' || (g % :r) ELSE 'g' || (g % :g)"
                " END AS sender, CASE WHEN g % 10 = 0 THEN 'g' || ((g * 13) % :g)"
                " ELSE 'r' || ((g * 7) % :r) END AS recipient,"
                " CASE WHEN g % 10 = 0 THEN 10 ELSE 100 END AS points, 80000.0 * g / :t AS ago"
                " FROM generate_series(1, :t - :mules * 6) g"
                " UNION ALL SELECT :t + k * 6 + i, 'g' || (k * 5 + i), 'mule' || k, 500,"
                " 3600 * 20 - k * 60 - i"
                " FROM generate_series(0, :mules - 1) k, generate_series(0, 4) i"
                " UNION ALL SELECT :t + k * 6 + 5, 'mule' || k, 'sink0', 2250,"
                " 3600 * 20 - k * 60 - 10 FROM generate_series(0, :mules - 1) k"
            ),
            {"g": GIVERS, "r": RECEIVERS, "t": TRANSFERS, "mules": MULES},
        )
        conn.execute(
            text(
                "INSERT INTO operations (program_id, key, kind, member_id, request_hash, result,"
                " created_at) SELECT :p, 'seed-' || n, 'transfer', m.id, '', '{}',"
                " :now - ago * interval '1 second' FROM seed JOIN members m"
                " ON m.external_id = seed.sender"
            ),
            {"p": program_id, "now": now},
        )
        conn.execute(
            text(
                "INSERT INTO transfers (program_id, operation_id, sender_id, recipient_id,"
                " points, fee, day, created_at)"
                " SELECT :p, o.id, a.id, b.id, seed.points, 0, to_char(o.created_at, 'YYYY-MM-DD'),"
                " o.created_at FROM seed JOIN operations o ON o.key = 'seed-' || seed.n"
                " JOIN members a ON a.external_id = seed.sender"
                " JOIN members b ON b.external_id = seed.recipient"
            ),
            {"p": program_id},
        )
        backfill_events(conn)
        conn.execute(text("ANALYZE transfers"))
        assert conn.execute(text("SELECT count(*) FROM transfers")).scalar_one() == TRANSFERS


def test_the_chain_rule_finds_the_mules_among_100k_transfers_in_one_grouped_query(
    pg_db: Database, clock: FixedClock
) -> None:
    seed(pg_db, clock)
    s.publish_risk_rules(
        pg_db,
        program=PROGRAM,
        rules={"rules": [{"id": "mule-chain", "kind": "transfer_chain", "hours": 24}]},
    )
    result = s.scan_risk(pg_db)
    assert (result.trips, result.opened) == (MULES, MULES)
    again = s.scan_risk(pg_db)
    assert (again.trips, again.opened, again.updated) == (MULES, 0, 0)
    page = s.list_risk_cases(pg_db, program=PROGRAM, limit=MULES)
    assert sorted(c.member or "" for c in page.items) == sorted(f"mule{k}" for k in range(MULES))
    case = s.risk_case(pg_db, program=PROGRAM, case_id=page.items[0].id)
    assert case.figures["received"] == 2_500 and case.figures["passed_on_percent"] == 90
    assert len(case.evidence) == 6
