"""``jifen rewards`` as an operator runs it, in process, against a SQLite catalog in a temp dir:
list, show, import and generate coupon codes, list redemptions, and the errors that say what
to do next (unknown program or reward, a bad CSV line, a code the pool holds already)."""

from __future__ import annotations

import datetime as dt
import getpass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import text

from loyalty import migrate
from loyalty import services as svc
from loyalty.cli import main, render
from loyalty.cli import rewards as rewards_cli
from loyalty.db import Database
from loyalty.domain.clock import FixedClock

NOW = dt.datetime(2026, 11, 21, 2, 0, tzinfo=dt.UTC)  # 10:00 in Asia/Shanghai


@pytest.fixture(autouse=True)
def wide_tables(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tables one line per row, whatever width the console took when it was created (its
    width is fixed then if $COLUMNS was set, as under pytest-xdist)."""
    monkeypatch.setattr(render.console, "_width", 200)


def jifen(url: str, *args: str) -> Result:
    return CliRunner().invoke(main, [*args, "--database-url", url], prog_name="jifen")


def table_rows(output: str) -> list[list[str]]:
    """The body rows of the table a command printed, as their cells."""
    return [
        [cell.strip() for cell in line.strip().strip("│").split("│")]
        for line in output.splitlines()
        if line.startswith("│")
    ]


def assert_one_line_error(result: Result, *expected: str) -> None:
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for part in expected:
        assert part in lines[0], lines[0]


@pytest.fixture
def catalog(tmp_path: Path) -> str:
    """A shop with a coupon (3 codes), a voucher, an unlimited hidden item and two
    redemptions (one cancelled)."""
    url = f"sqlite:///{tmp_path / 'jifen.db'}"
    migrate.upgrade(url)
    db = Database.from_url(url, clock=FixedClock(NOW))
    try:
        svc.create_program(
            db, code="shop", name="Shop", currency="CNY", timezone="Asia/Shanghai", rules={}
        )
        for member in ("alice", "bob"):
            svc.enrol_member(db, program="shop", external_id=member)
            svc.earn_purchase(
                db,
                program="shop",
                member=member,
                order_id=f"o-{member}",
                currency="CNY",
                amount_minor=500_000,
            )
        svc.create_reward(
            db,
            program="shop",
            code="tea",
            kind="coupon",
            terms={"name": "Tea coupon", "points": 1200, "limits": {"day": 2}},
            actor="test",
        )
        svc.add_codes(
            db, program="shop", reward="tea", codes=["TEA-1", "TEA-2", "TEA-3"], actor="test"
        )
        svc.create_reward(
            db,
            program="shop",
            code="ten-off",
            kind="voucher",
            terms={
                "name": "¥12.50 off",
                "points": 800,
                "voucher_amount_minor": 1250,
                "voucher_valid_days": 30,
            },
            actor="test",
        )
        svc.create_reward(
            db,
            program="shop",
            code="mug",
            kind="item",
            terms={"name": "Mug", "points": 2500, "visible": False},
            actor="test",
        )
        svc.redeem_reward(db, program="shop", member="alice", reward="tea")
        done = svc.redeem_reward(db, program="shop", member="bob", reward="ten-off")
        svc.cancel_redemption(db, program="shop", redemption=done.id, reason="test", actor="test")
    finally:
        db.dispose()
    return url


def test_list_shows_every_reward_with_price_stock_issued_and_state(catalog: str) -> None:
    result = jifen(catalog, "rewards", "list", "--program", "shop")
    assert result.exit_code == 0, result.output
    rows = {row[0]: row for row in table_rows(result.stdout)}
    assert rows["tea"] == ["tea", "coupon", "Tea coupon", "1,200", "2", "1", "0", "on sale"]
    assert rows["ten-off"][3:] == ["800", "no limit", "1", "1", "on sale"]
    assert rows["mug"][3:] == ["2,500", "no limit", "0", "0", "hidden"]


def test_show_prints_terms_stock_and_pool_in_the_program_time_zone(catalog: str) -> None:
    result = jifen(catalog, "rewards", "show", "--program", "shop", "tea")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "tea: Tea coupon (coupon, version 1, on sale)" in out
    assert "price: 1,200 points" in out
    assert "stock: 2 left of 3 added" in out
    assert "issued: 1 (cancelled 0)" in out
    assert "codes free in the pool: 2" in out
    assert "limits per member: 2 per day" in out
    assert "created: 2026-11-21 10:00 Asia/Shanghai" in out
    voucher = jifen(catalog, "rewards", "show", "--program", "shop", "ten-off")
    assert "voucher: 12.50 CNY off an order, valid 30 days" in voucher.stdout
    assert "issued: 1 (cancelled 1)" in voucher.stdout


def test_import_codes_adds_the_file_and_says_how_many(catalog: str, tmp_path: Path) -> None:
    csv = tmp_path / "codes.csv"
    lines = ["batch,code"] + [f"b1,NEW-{n:05d}" for n in range(25_001)] + ["", ""]
    csv.write_text("\ufeff" + "\n".join(lines), encoding="utf-8")
    result = jifen(catalog, "rewards", "import-codes", "--program", "shop", "tea", str(csv))
    assert result.exit_code == 0, result.output
    assert "added 25,001 codes to tea: 25,003 free in its pool, stock left 25,003" in result.stdout
    audited = scalar(catalog, "SELECT count(*) FROM audit_log WHERE action = 'reward.codes_added'")
    assert audited == 1 + 3  # the fixture's slice and the file's three slices of 10,000
    actor = scalar(catalog, "SELECT actor FROM audit_log ORDER BY id DESC LIMIT 1")
    assert actor == f"cli:{getpass.getuser()}"
    verify = jifen(catalog, "verify")
    assert verify.exit_code == 0, verify.output


def test_a_bad_csv_line_is_named_and_nothing_is_added(catalog: str, tmp_path: Path) -> None:
    csv = tmp_path / "codes.csv"
    csv.write_text("code\nGOOD-1\nbad code!\nGOOD-2\n", encoding="utf-8")
    result = jifen(catalog, "rewards", "import-codes", "--program", "shop", "tea", str(csv))
    assert_one_line_error(result, "line 3", "fix the file and import it again")
    repeated = tmp_path / "repeated.csv"
    repeated.write_text("GOOD-1\nGOOD-2\nGOOD-1\n", encoding="utf-8")
    result = jifen(catalog, "rewards", "import-codes", "--program", "shop", "tea", str(repeated))
    assert_one_line_error(result, "line 3", "repeats line 1")
    latin = tmp_path / "latin.csv"
    latin.write_bytes("CAFÉ-1\n".encode("latin-1"))
    result = jifen(catalog, "rewards", "import-codes", "--program", "shop", "tea", str(latin))
    assert_one_line_error(result, "not UTF-8", "save it as CSV UTF-8")
    assert scalar(catalog, "SELECT count(*) FROM reward_codes") == 3


def test_codes_the_pool_holds_are_named_and_nothing_is_added(catalog: str, tmp_path: Path) -> None:
    csv = tmp_path / "codes.csv"
    csv.write_text("NEW-1\nTEA-2\n", encoding="utf-8")
    result = jifen(catalog, "rewards", "import-codes", "--program", "shop", "tea", str(csv))
    assert_one_line_error(result, "already holds TEA-2", "remove them from the file")
    assert scalar(catalog, "SELECT count(*) FROM reward_codes") == 3


def test_a_refused_slice_after_others_says_how_many_were_added(
    catalog: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rewards_cli, "CODES_PER_SLICE", 2)
    csv = tmp_path / "codes.csv"
    csv.write_text("AAA-1\nAAA-2\nAAA-3\nTEA-1\n", encoding="utf-8")
    result = jifen(catalog, "rewards", "import-codes", "--program", "shop", "tea", str(csv))
    assert_one_line_error(result, "already holds TEA-1", "the first 2 codes were added")
    assert scalar(catalog, "SELECT count(*) FROM reward_codes") == 5


def test_generate_codes_with_length_alphabet_and_prefix(catalog: str) -> None:
    result = jifen(
        catalog,
        "rewards",
        "generate-codes",
        "--program",
        "shop",
        "tea",
        "--count",
        "12",
        "--length",
        "12",
        "--alphabet",
        "ABCDEFGH23456789",
        "--prefix",
        "XMAS-",
    )
    assert result.exit_code == 0, result.output
    assert "added 12 codes to tea: 14 free in its pool" in result.stdout
    made = scalar(catalog, "SELECT count(*) FROM reward_codes WHERE code LIKE 'XMAS-____________'")
    assert made == 12
    too_short = jifen(
        catalog, "rewards", "generate-codes", "--program", "shop", "tea", "--count", "5",
        "--length", "4", "--alphabet", "AB",
    )  # fmt: skip
    assert_one_line_error(too_short, "make the codes longer")
    not_coupon = jifen(
        catalog, "rewards", "generate-codes", "--program", "shop", "mug", "--count", "5"
    )
    assert_one_line_error(not_coupon, "'mug' is an item; only coupons have codes")


def test_redemptions_lists_newest_first_and_filters(catalog: str) -> None:
    result = jifen(catalog, "rewards", "redemptions", "--program", "shop")
    assert result.exit_code == 0, result.output
    rows = table_rows(result.stdout)
    assert [row[:7] for row in rows] == [
        ["2", "2026-11-21 10:00", "bob", "ten-off", "1", "800", "cancelled"],
        ["1", "2026-11-21 10:00", "alice", "tea", "1", "1,200", "issued"],
    ]
    assert rows[0][7].startswith("V-") and rows[1][7] == "TEA-1"
    assert "times in Asia/Shanghai" in result.stdout
    issued = jifen(catalog, "rewards", "redemptions", "--program", "shop", "--status", "issued")
    assert "TEA-1" in issued.stdout and "ten-off" not in issued.stdout
    bob = jifen(catalog, "rewards", "redemptions", "--program", "shop", "--member", "bob")
    assert "ten-off" in bob.stdout and "TEA-1" not in bob.stdout
    paged = jifen(catalog, "rewards", "redemptions", "--program", "shop", "--limit", "1")
    assert "more: add --cursor" in paged.stdout
    none = jifen(catalog, "rewards", "redemptions", "--program", "shop", "--reward", "mug")
    assert none.exit_code == 0 and "no redemptions match" in none.stdout
    bad = jifen(catalog, "rewards", "redemptions", "--program", "shop", "--status", "lost")
    assert bad.exit_code == 2 and "'lost' is not one of" in bad.stderr


@pytest.mark.parametrize(
    "command",
    [
        ["show", "--program", "shop", "tee"],
        ["redemptions", "--program", "shop", "--reward", "tee"],
        ["generate-codes", "--program", "shop", "tee", "--count", "3"],
    ],
    ids=lambda c: c[0],
)
def test_an_unknown_reward_says_how_to_find_the_codes(catalog: str, command: list[str]) -> None:
    result = jifen(catalog, "rewards", *command)
    assert_one_line_error(result, "no reward 'tee'", "jifen rewards list --program shop")


def test_an_unknown_program_lists_the_programs(catalog: str) -> None:
    result = jifen(catalog, "rewards", "list", "--program", "shoe")
    assert_one_line_error(result, "'shoe'", "the programs here are: shop")


def test_a_missing_file_is_a_usage_error(catalog: str, tmp_path: Path) -> None:
    result = jifen(
        catalog, "rewards", "import-codes", "--program", "shop", "tea", str(tmp_path / "no.csv")
    )
    assert result.exit_code == 2 and "does not exist" in result.stderr


def test_an_empty_catalog_says_where_to_create_rewards(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    migrate.upgrade(url)
    db = Database.from_url(url)
    svc.create_program(db, code="shop", name="Shop", currency="CNY", timezone="Asia/Shanghai")
    db.dispose()
    result = jifen(url, "rewards", "list", "--program", "shop")
    assert result.exit_code == 0 and "no rewards in shop yet" in result.stdout


def scalar(url: str, sql: str) -> object:
    db = Database.from_url(url)
    try:
        with db.engine.connect() as conn:
            return conn.execute(text(sql)).scalar()
    finally:
        db.dispose()


def test_a_missing_database_file_is_named_and_not_created(tmp_path: Path) -> None:
    path = tmp_path / "missing.db"
    result = jifen(f"sqlite:///{path}", "rewards", "list", "--program", "shop")
    assert_one_line_error(result, f"no database at {path}", "jifen db upgrade")
    assert not path.exists()
