"""``jifen tiers`` as an operator runs it, in process, against a SQLite file in a temp dir:
the versions and the ladder (also as JSON), publishing and cancelling a version, the
evaluation sweep with a line per batch, the forecast, a member's progress and history, a
manual change with a lock, and the errors that say what to do next.

The commands run on the real clock; the shop's history is written with a fixed clock 500
days back, so its members' first evaluations are due now."""

from __future__ import annotations

import datetime as dt
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

START = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(days=500)
LADDER: dict[str, Any] = {
    "tiers": [
        {"code": "member", "name": "普通", "threshold": 0},
        {"code": "silver", "name": "银卡", "threshold": 1_000, "multiplier": "1.5"},
        {
            "code": "gold",
            "name": "金卡",
            "threshold": 5_000,
            "multiplier": "2",
            "benefits": ["Free shipping"],
        },
    ],
    "window": "rolling",
    "window_months": 3,  # the evaluation a year on counts none of the earns
    "anchor": "upgrade",
    "period_months": 12,
}


@pytest.fixture(autouse=True)
def wide_tables(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tables one line per row, whatever width the console took when it was created."""
    monkeypatch.setattr(render.console, "_width", 200)


def jifen(url: str, *args: str) -> Result:
    return CliRunner().invoke(main, [*args, "--database-url", url], prog_name="jifen")


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


@pytest.fixture
def shop(tmp_path: Path) -> str:
    """Alice earned to gold and Bob to silver 500 days ago; Carol earned nothing. A program
    without tiers sits next to it."""
    url = f"sqlite:///{tmp_path / 'jifen.db'}"
    migrate.upgrade(url)
    db = Database.from_url(url, clock=FixedClock(START))
    try:
        for code in ("shop", "plain"):
            svc.create_program(
                db, code=code, name=code, currency="CNY", timezone="Asia/Shanghai", rules={}
            )
        svc.publish_tiers(db, program="shop", rules=LADDER, created_by="test")
        for member, amount in (("alice", 600_000), ("bob", 150_000), ("carol", 0)):
            svc.enrol_member(db, program="shop", external_id=member)
            if amount:
                svc.earn_purchase(
                    db,
                    program="shop",
                    member=member,
                    order_id=f"o-{member}",
                    currency="CNY",
                    amount_minor=amount,
                )
    finally:
        db.dispose()
    return url


def test_show_lists_the_ladder_with_members_per_tier_and_the_rules(shop: str) -> None:
    result = jifen(shop, "tiers", "show", "--program", "shop")
    assert result.exit_code == 0, result.output
    assert table_rows(result.stdout) == [
        ["member", "普通", "0", "1", "", "1"],
        ["silver", "银卡", "1,000", "1.5", "", "1"],
        ["gold", "金卡", "5,000", "2", "Free shipping", "1"],
    ]
    assert "Tiers of shop, version 1" in result.stdout
    assert "window: rolling 3 months" in result.stdout


def test_show_json_round_trips_through_publish_list_and_cancel(shop: str, tmp_path: Path) -> None:
    shown = jifen(shop, "tiers", "show", "--program", "shop", "--json")
    assert shown.exit_code == 0, shown.output
    found = json.loads(shown.stdout)
    assert (found["version"], found["members"]) == (1, {"member": 1, "silver": 1, "gold": 1})
    rules = found["rules"]
    rules["tiers"][1]["threshold"] = 2_000
    draft = tmp_path / "tiers.json"
    draft.write_text(json.dumps(rules, ensure_ascii=False), encoding="utf-8")

    published = jifen(
        shop, "tiers", "publish", "--program", "shop", str(draft),
        "--effective-from", "2099-01-01",
    )  # fmt: skip
    assert published.exit_code == 0, published.output
    assert "published tier version 2 of shop: member 0 < silver 2,000 < gold 5,000" in (
        published.stdout
    )
    assert "2099-01-01 00:00 Asia/Shanghai" in published.stdout  # read in the program's zone

    listed = table_rows(jifen(shop, "tiers", "list", "--program", "shop").stdout)
    assert [(r[0], r[-1]) for r in listed] == [("1", "in force"), ("2", "scheduled")]
    later = jifen(shop, "tiers", "show", "--program", "shop")
    assert "version 2 takes effect 2099-01-01 00:00 Asia/Shanghai" in later.stdout

    cancelled = jifen(shop, "tiers", "cancel", "--program", "shop", "2")
    assert cancelled.exit_code == 0, cancelled.output
    assert "cancelled tier version 2 of shop" in cancelled.stdout
    listed = table_rows(jifen(shop, "tiers", "list", "--program", "shop").stdout)
    assert [r[0] for r in listed] == ["1"]
    assert_one_line_error(
        jifen(shop, "tiers", "cancel", "--program", "shop", "1"),
        "version 1 is in force",
        "publish a new version",
    )


def test_publish_refuses_a_bad_file_and_a_time_in_the_past(shop: str, tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"tiers": [', encoding="utf-8")
    assert_one_line_error(
        jifen(shop, "tiers", "publish", "--program", "shop", str(broken)),
        "is not UTF-8 JSON",
        "fix the file",
    )
    listing = tmp_path / "list.json"
    listing.write_text("[]", encoding="utf-8")
    assert_one_line_error(
        jifen(shop, "tiers", "publish", "--program", "shop", str(listing)),
        "JSON list",
        "jifen tiers show --json",
    )
    good = tmp_path / "good.json"
    good.write_text(json.dumps(LADDER), encoding="utf-8")
    assert_one_line_error(
        jifen(shop, "tiers", "publish", "--program", "shop", str(good),
              "--effective-from", "2020-01-01"),
        "cannot take effect in the past",
    )  # fmt: skip
    assert_one_line_error(
        jifen(shop, "tiers", "publish", "--program", "shop", str(good),
              "--effective-from", "next week"),
        "is not a date or time",
        "2027-01-01T08:00",
    )  # fmt: skip
    listed = table_rows(jifen(shop, "tiers", "list", "--program", "shop").stdout)
    assert [r[0] for r in listed] == ["1"]  # nothing was published


def test_evaluate_shows_a_line_per_batch_and_runs_once(shop: str) -> None:
    result = jifen(shop, "tiers", "evaluate", "--program", "shop", "--batch-size", "1")
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [
        "batch 1: 1 members evaluated",
        "batch 2: 2 members evaluated",
    ]
    assert "evaluated 2 members in 2 batches: 0 up, 0 kept, 2 down" in result.stdout
    shown = table_rows(jifen(shop, "tiers", "show", "--program", "shop").stdout)
    assert [row[-1] for row in shown] == ["2", "1", "0"]  # alice silver, bob member

    again = jifen(shop, "tiers", "evaluate")
    assert again.exit_code == 0, again.output
    assert "no tier evaluation was due" in again.stdout
    runs = table_rows(jifen(shop, "jobs", "--job", "tiers").stdout)
    assert [(r[0], r[2], r[3], r[6]) for r in runs] == [
        ("tiers", "succeeded", "cli", "0"),
        ("tiers", "succeeded", "cli", "2"),
    ]


def test_place_moves_members_up_to_their_measure_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'jifen.db'}"
    migrate.upgrade(url)
    recently = dt.datetime.now(dt.UTC) - dt.timedelta(days=10)  # in the window the CLI weighs
    db = Database.from_url(url, clock=FixedClock(recently))
    try:
        svc.create_program(
            db, code="shop", name="shop", currency="CNY", timezone="Asia/Shanghai", rules={}
        )
        svc.enrol_member(db, program="shop", external_id="alice")
        svc.earn_purchase(
            db, program="shop", member="alice", order_id="o-1", currency="CNY",
            amount_minor=600_000,
        )  # fmt: skip
        svc.publish_tiers(db, program="shop", rules=LADDER, created_by="test")
    finally:
        db.dispose()
    first = jifen(url, "tiers", "place", "--program", "shop")
    assert first.exit_code == 0, first.output
    assert "placed members of shop by their measure: 1 moved up in 1 batches" in first.stdout
    again = jifen(url, "tiers", "place", "--program", "shop")
    assert "0 moved up" in again.stdout


def test_forecast_shows_who_would_move_at_the_next_evaluations(shop: str) -> None:
    result = jifen(shop, "tiers", "forecast", "--program", "shop", "--days", "30")
    assert result.exit_code == 0, result.output
    rows = {row[0]: row for row in table_rows(result.stdout)}
    assert rows["gold"][3:] == ["1", "silver: 1"]
    assert rows["silver"][3:] == ["1", "member: 1"]
    assert "0 up, 0 keep, 2 down" in result.stdout
    assert_one_line_error(
        jifen(shop, "tiers", "forecast", "--program", "plain"),
        "program plain has no tiers",
        "jifen tiers publish --program plain",
    )


def test_member_shows_progress_and_history(shop: str) -> None:
    result = jifen(shop, "tiers", "member", "--program", "shop", "alice")
    assert result.exit_code == 0, result.output
    assert "alice: 金卡 (gold)" in result.stdout
    assert "earns x2" in result.stdout
    assert "next tier: none (top tier)" in result.stdout
    assert "benefits: Free shipping" in result.stdout
    history = table_rows(result.stdout)
    assert [(r[1], r[2], r[3], r[4]) for r in history] == [("member", "gold", "earn", "6,000")]

    bob = jifen(shop, "tiers", "member", "--program", "shop", "bob")
    assert "measure: 0 points" in bob.stdout  # the 3-month window left the earn behind
    assert "next tier: 金卡 (gold) at 5,000, 5,000 to go" in bob.stdout
    assert_one_line_error(
        jifen(shop, "tiers", "member", "--program", "shop", "nobody"),
        "nobody",
        "external id",
    )
    plain = jifen(shop, "tiers", "show", "--program", "plain")
    assert "program plain has no tiers in force" in plain.stdout


def test_set_moves_a_member_by_hand_with_a_lock_and_replays(shop: str) -> None:
    args = ("tiers", "set", "--program", "shop", "carol", "gold", "--reason", "VIP guest",
            "--change-id", "vip-1", "--lock-until", "2099-06-30")  # fmt: skip
    first = jifen(shop, *args)
    assert first.exit_code == 0, first.output
    assert "carol moved from member to gold, locked until 2099-06-30 00:00 Asia/Shanghai" in (
        first.stdout
    )
    again = jifen(shop, *args)
    assert again.exit_code == 0, again.output
    assert again.stdout.startswith("already done: carol moved from member to gold")

    history = table_rows(jifen(shop, "tiers", "member", "--program", "shop", "carol").stdout)
    assert len(history) == 1
    assert history[0][1:4] == ["member", "gold", "lock"]
    assert history[0][6].startswith("cli")
    assert history[0][7] == "VIP guest (locked until 2099-06-30 00:00 Asia/Shanghai)"

    assert_one_line_error(
        jifen(shop, "tiers", "set", "--program", "shop", "carol", "platinum",
              "--reason", "x", "--change-id", "vip-2"),
        "no tier 'platinum'",
        "member, silver, gold",
    )  # fmt: skip
    assert_one_line_error(
        jifen(shop, "tiers", "set", "--program", "shop", "carol", "silver",
              "--reason", "other", "--change-id", "vip-1"),
        "vip-1",
    )  # fmt: skip
    assert_one_line_error(
        jifen(shop, "tiers", "set", "--program", "nowhere", "carol", "gold",
              "--reason", "x", "--change-id", "vip-3"),
        "no program has the code 'nowhere'",
        "shop",
    )  # fmt: skip


@pytest.mark.parametrize(
    "command",
    ["list", "show", "publish", "cancel", "evaluate", "place", "forecast", "member", "set"],
)
def test_every_tiers_command_has_help(command: str) -> None:
    result = CliRunner().invoke(main, ["tiers", command, "--help"], prog_name="jifen")
    assert result.exit_code == 0, result.output
    assert f"Usage: jifen tiers {command}" in result.output
    assert "--database-url" in result.output
