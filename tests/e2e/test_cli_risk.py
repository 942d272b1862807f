"""``jifen risk`` as an operator runs it, in process, against a SQLite file in a temp dir:
the rules checked with --dry-run (their sentences, nothing published), published from a
file, shown (also as JSON, which publishes again), their history; the scan; the cases
listed, filtered, shown with their evidence, assigned and resolved; a member frozen,
unfrozen and their hold released; and the errors that say what to do next.

The commands run on the real clock; the shop's history is written with a fixed clock a day
back, so the farming falls inside the rules' windows."""

from __future__ import annotations

import datetime as dt
import getpass
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from loyalty import migrate
from loyalty import services as svc
from loyalty.cli import main, render
from loyalty.db import Database
from loyalty.domain.clock import FixedClock

START = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(days=1)
RULES: dict[str, Any] = {
    "rules": [
        {"id": "earn-burst", "kind": "velocity", "scope": "member", "measure": "earns",
         "limit": 20, "window": "hour", "action": "block"},
        {"id": "refund-farming", "kind": "farming", "refunded_percent": 50, "days": 30,
         "min_points": 300, "action": "hold"},
        {"id": "gift-ring", "kind": "transfer_ring", "senders": 5, "hours": 24, "action": "flag"},
    ]
}  # fmt: skip


@pytest.fixture(autouse=True)
def wide_tables(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tables one line per row, whatever width the console took when it was created."""
    monkeypatch.setattr(render.console, "_width", 250)


def jifen(url: str, *args: str) -> Result:
    return CliRunner().invoke(main, [*args, "--database-url", url], prog_name="jifen")


def ok(result: Result) -> str:
    assert result.exit_code == 0, result.output
    return result.stdout


def table_rows(output: str) -> list[list[str]]:
    return [
        [cell.strip() for cell in line.strip().strip("│").split("│")]
        for line in output.splitlines()
        if line.startswith("│")
    ]


def assert_one_line_error(result: Result, *expected: str) -> None:
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for part in expected:
        assert part in lines[0], lines[0]


def write(path: Path, data: Any) -> str:
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return str(path)


@pytest.fixture
def shop(tmp_path: Path) -> str:
    """Program shop (Asia/Shanghai) with alice, bob and carol; no risk rules yet."""
    url = f"sqlite:///{tmp_path / 'jifen.db'}"
    migrate.upgrade(url)
    db = Database.from_url(url, clock=FixedClock(START - dt.timedelta(hours=1)))
    try:
        svc.create_program(
            db, code="shop", name="Shop", currency="CNY", timezone="Asia/Shanghai", rules={}
        )
        for member in ("alice", "bob", "carol"):
            svc.enrol_member(db, program="shop", external_id=member)
    finally:
        db.dispose()
    return url


def farm(url: str) -> None:
    """alice buys and refunds four times (400 points earned, all refunded) a day ago."""
    clock = FixedClock(START)
    db = Database.from_url(url, clock=clock)
    try:
        for i in range(4):
            clock.advance(dt.timedelta(hours=1))
            svc.earn_purchase(
                db, program="shop", member="alice", order_id=f"A-{i}", currency="CNY",
                amount_minor=10_000, location="store-03",
            )  # fmt: skip
            svc.refund_order(
                db, program="shop", order_id=f"A-{i}", refund_id=f"re_{i}",
                amount_minor=10_000, currency="CNY", succeeded=True,
            )  # fmt: skip
        svc.earn_purchase(
            db, program="shop", member="bob", order_id="B-1", currency="CNY", amount_minor=5_000
        )
    finally:
        db.dispose()


def earn_now(url: str, member: str, order: str, amount_minor: int) -> str:
    db = Database.from_url(url)
    try:
        return svc.earn_purchase(
            db, program="shop", member=member, order_id=order, currency="CNY",
            amount_minor=amount_minor,
        ).status  # fmt: skip
    finally:
        db.dispose()


def open_db(url: str) -> Database:
    return Database.from_url(url)


# --- rules -----------------------------------------------------------------------------------


def test_a_dry_run_prints_the_sentences_and_publishes_nothing(shop: str, tmp_path: Path) -> None:
    out = ok(jifen(shop, "risk", "rules", "set", "--program", "shop", "--dry-run",
                   write(tmp_path / "risk.json", RULES)))  # fmt: skip
    assert "refund-farming (farming, hold)" in out
    assert "More than 20 earns per member within an hour: refuse the operation." in out
    assert "会员近 30 天获得的积分中退款比例超过 50%（获得至少 300 积分后）" in out
    assert "adds gift-ring" in out and "dry run: nothing was published" in out
    shown = ok(jifen(shop, "risk", "rules", "show", "--program", "shop"))
    assert "program shop has no risk rules in force (risk control is off)" in shown
    assert "jifen risk rules set --program shop FILE.json" in shown


def test_set_show_json_set_again_and_history(shop: str, tmp_path: Path) -> None:
    published = ok(jifen(shop, "risk", "rules", "set", "--program", "shop",
                         write(tmp_path / "risk.json", RULES), "--note", "launch"))  # fmt: skip
    user = f"cli:{getpass.getuser()}"
    assert "published risk rules version 1 of shop, 3 rules, published" in published
    assert f"by {user}: launch; in force now" in published
    shown = ok(jifen(shop, "risk", "rules", "show", "--program", "shop"))
    assert "5 or more members sending points to one member within 24 hours" in shown
    assert "24 小时内有 5 位或更多会员向同一会员转赠积分：开立风控案件待审核。" in shown

    found = json.loads(ok(jifen(shop, "risk", "rules", "show", "--program", "shop", "--json")))
    assert (found["version"], found["note"], found["created_by"]) == (1, "launch", user)
    found["rules"]["rules"][2]["senders"] = 8
    again = ok(jifen(shop, "risk", "rules", "set", "--program", "shop",
                     write(tmp_path / "shown.json", found)))  # fmt: skip
    assert "version 2 of shop, 3 rules" in again and "changes gift-ring" in again

    rows = table_rows(ok(jifen(shop, "risk", "rules", "history", "--program", "shop")))
    assert [(r[0], r[2], r[3], r[4], r[5]) for r in rows] == [
        ("2", user, "3", "", "in force"),
        ("1", user, "3", "launch", ""),
    ]
    old = ok(jifen(shop, "risk", "rules", "show", "--program", "shop", "--version", "1"))
    assert "risk rules version 1 of shop" in old and "5 or more members" in old
    history = json.loads(ok(jifen(shop, "risk", "rules", "history", "--program", "shop",
                                  "--json")))  # fmt: skip
    assert [v["version"] for v in history] == [2, 1]


def test_a_bad_rule_file_is_refused_in_one_line_and_nothing_is_published(
    shop: str, tmp_path: Path
) -> None:
    bad = {"rules": [{"id": "spike", "kind": "issuance_spike", "action": "hold"}]}
    result = jifen(
        shop, "risk", "rules", "set", "--program", "shop", write(tmp_path / "b.json", bad)
    )
    assert_one_line_error(result, "risk rule 1", "it only flags")
    not_json = tmp_path / "n.json"
    not_json.write_text("{rules: oops", encoding="utf-8")
    result = jifen(shop, "risk", "rules", "set", "--program", "shop", str(not_json))
    assert_one_line_error(result, "is not UTF-8 JSON", "fix the file")
    listed = jifen(
        shop, "risk", "rules", "set", "--program", "shop", write(tmp_path / "l.json", [])
    )
    assert_one_line_error(listed, 'an object with a "rules" list')
    assert_one_line_error(
        jifen(shop, "risk", "rules", "show", "--program", "nope"), "no program has the code 'nope'"
    )
    db = open_db(shop)
    try:
        assert svc.risk_rule_versions_of(db, program="shop") == []
    finally:
        db.dispose()


# --- the scan and the cases ------------------------------------------------------------------


@pytest.fixture
def farmed(shop: str, tmp_path: Path) -> str:
    ok(jifen(shop, "risk", "rules", "set", "--program", "shop",
             write(tmp_path / "risk.json", RULES)))  # fmt: skip
    farm(shop)
    return shop


def test_scan_list_show_assign_and_release_a_case(farmed: str) -> None:
    scanned = ok(jifen(farmed, "risk", "scan", "--program", "shop"))
    assert "2 rules evaluated, 1 over a limit; cases 1 opened" in scanned
    assert "1 member put on hold" in scanned
    assert "cases 0 opened" in ok(jifen(farmed, "risk", "scan"))  # every program, nothing new
    assert earn_now(farmed, "alice", "A-9", 20_000) == "pending"  # held

    rows = table_rows(ok(jifen(farmed, "risk", "cases", "list", "--program", "shop")))
    assert len(rows) == 1
    case_id, _when, rule, action, subject, summary, trips, assigned, status = rows[0]
    assert (rule, action, subject, trips, assigned, status) == (
        "refund-farming", "hold", "member alice", "1", "-", "open",
    )  # fmt: skip
    assert "100 % of 400 points earned in 30 days refunded (4 refunds)" in summary
    assert "no open risk cases" in ok(
        jifen(farmed, "risk", "cases", "list", "--program", "shop", "--member", "bob")
    )
    assert "no open risk cases" in ok(
        jifen(farmed, "risk", "cases", "list", "--program", "shop", "--rule", "gift-ring")
    )
    listed = json.loads(ok(jifen(farmed, "risk", "cases", "list", "--program", "shop", "--json")))
    assert listed["total"] == 1 and listed["items"][0]["held_points"] == 200

    shown = ok(jifen(farmed, "risk", "cases", "show", "--program", "shop", case_id))
    assert f"case {case_id} of shop: open" in shown
    assert "member: on hold, 200 points held" in shown
    assert "figures: earned 400, refunded 400, refunds 4, share_percent 100" in shown
    evidence = table_rows(shown)
    assert len(evidence) == 4 and evidence[0][1:6] == ["refund", "100", "A-3", "", "re_3"]
    as_json = json.loads(ok(jifen(farmed, "risk", "cases", "show", "--program", "shop", case_id,
                                  "--json")))  # fmt: skip
    assert [e["refund"] for e in as_json["evidence"]] == ["re_3", "re_2", "re_1", "re_0"]

    assigned = ok(jifen(farmed, "risk", "cases", "assign", "--program", "shop", case_id, "li.na"))
    assert f"case {case_id} assigned to li.na" in assigned
    resolved = ok(jifen(farmed, "risk", "cases", "resolve", "--program", "shop", case_id,
                        "--outcome", "release", "--note", "genuine returns"))  # fmt: skip
    assert f"case {case_id} resolved: released" in resolved
    assert "alice's 200 held points are available" in resolved
    again = jifen(farmed, "risk", "cases", "resolve", "--program", "shop", case_id,
                  "--outcome", "dismiss", "--note", "x")  # fmt: skip
    assert_one_line_error(again, f"risk case {case_id} is already resolved")
    closed = table_rows(ok(jifen(farmed, "risk", "cases", "list", "--program", "shop",
                                 "--status", "resolved")))  # fmt: skip
    assert [(r[0], r[7], r[8]) for r in closed] == [(case_id, "li.na", "resolved")]
    db = open_db(farmed)
    try:
        balance = svc.balance(db, program="shop", member="alice")
        assert (balance.available, balance.pending) == (200, 0)
        entry = svc.list_audit(db, program="shop", action="risk.case_resolved").items[0]
        assert entry.actor == f"cli:{getpass.getuser()}"
    finally:
        db.dispose()


def test_reverse_deducts_the_held_points_and_points_need_reverse(farmed: str) -> None:
    ok(jifen(farmed, "risk", "scan", "--program", "shop"))
    earn_now(farmed, "alice", "A-9", 20_000)
    case_id = table_rows(ok(jifen(farmed, "risk", "cases", "list", "--program", "shop")))[0][0]
    wrong = jifen(farmed, "risk", "cases", "resolve", "--program", "shop", case_id,
                  "--outcome", "release", "--note", "x", "--points", "5")  # fmt: skip
    assert_one_line_error(wrong, "--points goes with --outcome reverse only")
    done = ok(jifen(farmed, "risk", "cases", "resolve", "--program", "shop", case_id,
                    "--outcome", "reverse", "--note", "confirmed farming"))  # fmt: skip
    assert "resolved: reversed" in done and "200 points deducted from alice" in done
    db = open_db(farmed)
    try:
        balance = svc.balance(db, program="shop", member="alice")
        assert (balance.available, balance.pending) == (0, 0)
    finally:
        db.dispose()


def test_unknown_cases_and_members_say_how_to_find_them(shop: str) -> None:
    missing = jifen(shop, "risk", "cases", "show", "--program", "shop", "42")
    assert_one_line_error(missing, "no risk case 42", "jifen risk cases list --program shop")
    nobody = jifen(shop, "risk", "freeze", "--program", "shop", "zed", "--reason", "x")
    assert_one_line_error(nobody, "no member 'zed'", "the console's Members page")
    usage = jifen(shop, "risk", "cases", "resolve", "--program", "shop", "1", "--note", "x")
    assert usage.exit_code == 2 and "--outcome" in usage.stderr


# --- a member --------------------------------------------------------------------------------


def test_freeze_unfreeze_and_release_a_members_hold(farmed: str) -> None:
    ok(jifen(farmed, "risk", "scan", "--program", "shop"))
    earn_now(farmed, "alice", "A-9", 20_000)
    state = ok(jifen(farmed, "risk", "member", "--program", "shop", "alice"))
    assert "alice: account active; on hold, 200 points held; 1 open risk case" in state
    assert "refund-farming (hold)" in state

    frozen = ok(jifen(farmed, "risk", "freeze", "--program", "shop", "alice",
                      "--reason", "card reported stolen"))  # fmt: skip
    assert "froze alice's account: card reported stolen" in frozen
    assert "jifen risk unfreeze --program shop alice" in frozen
    shown = json.loads(ok(jifen(farmed, "risk", "member", "--program", "shop", "alice", "--json")))
    assert (shown["frozen"], shown["reason"], shown["status"]) == (
        True, "card reported stolen", "suspended",
    )  # fmt: skip
    with pytest.raises(Exception, match="card reported stolen"):
        earn_now(farmed, "alice", "A-10", 1_000)
    unfrozen = ok(jifen(farmed, "risk", "unfreeze", "--program", "shop", "alice",
                        "--reason", "card found"))  # fmt: skip
    assert "unfroze alice's account: card found" in unfrozen

    released = ok(jifen(farmed, "risk", "release-hold", "--program", "shop", "alice",
                        "--note", "checked with the store"))  # fmt: skip
    assert "released alice's hold: 200 held points are available" in released
    state = ok(jifen(farmed, "risk", "member", "--program", "shop", "alice"))
    assert "account active; not on hold, 0 points held; 1 open risk case" in state
    missing = jifen(farmed, "risk", "freeze", "--program", "shop", "alice")
    assert missing.exit_code == 2 and "--reason" in missing.stderr
