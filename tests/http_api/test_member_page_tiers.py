"""The member's tier on the member page over HTTP, on both databases: the tier card (name,
multiplier, the way to the next tier as a bar with its words, what keeping the tier needs by
the last local day before the evaluation, benefits, a lock) in English and Chinese, tier
changes in words among the history on the page of their time, and no trace of tiers when the
program has none."""

from __future__ import annotations

import datetime as dt
import html
import re
from typing import Any

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from loyalty import services as s
from loyalty.db import Database
from loyalty.domain.clock import FixedClock
from tests.http_api.conftest import new_key
from tests.http_api.test_member_page import BROWSER_ZH, by_testid, open_page, text_of, token_for
from tests.http_api.test_member_page_rewards import follow, form_of, open_rewards, post
from tests.integration.helpers import PROGRAM, earn, enrol, local

LADDER: dict[str, Any] = {
    "tiers": [
        {"code": "member", "name": "普通", "threshold": 0},
        {
            "code": "silver",
            "name": "银卡",
            "threshold": 1_000,
            "multiplier": "1.5",
            "benefits": ["Free shipping", "生日双倍积分"],
        },
        {"code": "gold", "name": "金卡", "threshold": 5_000, "multiplier": "2"},
    ],
    "window": "rolling",
    "window_months": 6,  # so what was earned at the upgrade no longer counts at the review
    "anchor": "upgrade",
    "period_months": 12,
}


@pytest.fixture
def read_key(program_db: Database) -> str:
    return new_key(program_db, "read")


@pytest.fixture
def silver(program_db: Database, clock: FixedClock) -> Database:
    """alice: 900 points, then 200 more that make her silver at 18:05 on 21 November 2026
    (local; the test clock's start)."""
    s.publish_tiers(program_db, program=PROGRAM, rules=LADDER, created_by="mkt")
    enrol(program_db, "alice", "bob")
    earn(program_db, "alice", "o-1", 90_000)
    clock.advance(dt.timedelta(minutes=5))
    earn(program_db, "alice", "o-2", 20_000)
    return program_db


def _has_testid(page: TestResponse, name: str) -> bool:
    return f'data-testid="{name}"' in page.get_data(as_text=True)


def _benefits(page: TestResponse) -> list[str]:
    found = re.search(r'data-testid="tier-benefits">(.*?)</ul>', page.get_data(as_text=True), re.S)
    assert found, "no benefits on the page"
    return [item.strip() for item in re.findall(r"<li>(.*?)</li>", found.group(1), re.S)]


def test_the_tier_card_in_english(client: FlaskClient, silver: Database, read_key: str) -> None:
    progress = s.tier_progress(silver, program=PROGRAM, member="alice")
    assert progress.evaluate_at == local(2027, 11, 21)  # the period ends at a local midnight
    page = open_page(client, token_for(client, read_key, "alice"))
    assert page.status_code == 200
    assert by_testid(page, "tier-name") == "银卡"
    assert by_testid(page, "tier-multiplier") == "1.5× points on purchases"
    assert by_testid(page, "tier-next") == "3,900 points to 金卡"
    assert by_testid(page, "tier-measured") == "1,100 of 5,000 qualifying points"
    body = page.get_data(as_text=True)
    bar = re.search(r"<progress [^>]*>([^<]*)</progress>", body)
    assert bar, "no progress bar"
    assert 'max="5000"' in bar.group(0) and 'value="1100"' in bar.group(0)
    assert 'aria-labelledby="tier-next"' in bar.group(0)
    assert bar.group(1) == "1,100 of 5,000 qualifying points"  # words, not only a colour
    # the review is due at the midnight starting 21 November 2027: the last day is the 20th
    assert by_testid(page, "tier-keep") == (
        "Earn 1,000 more points by November 20, 2027 to keep 银卡."
    )
    assert _benefits(page) == ["Free shipping", "生日双倍积分"]
    assert "Member tier" in text_of(page)
    assert not _has_testid(page, "tier-lock")


def test_the_tier_card_in_chinese(client: FlaskClient, silver: Database, read_key: str) -> None:
    page = open_page(client, token_for(client, read_key, "alice"), BROWSER_ZH)
    assert by_testid(page, "tier-name") == "银卡"
    assert by_testid(page, "tier-multiplier") == "购物积分 1.5 倍"
    assert by_testid(page, "tier-next") == "还差 3,900 积分升级金卡"
    assert by_testid(page, "tier-measured") == "已累计 1,100 / 5,000 积分"
    assert by_testid(page, "tier-keep") == "2027年11月20日前再获得 1,000 积分即可保住银卡。"
    words = text_of(page)
    assert "会员等级" in words and "会员权益" in words


def test_enough_to_keep_the_tier_says_so(
    client: FlaskClient, silver: Database, read_key: str, clock: FixedClock
) -> None:
    clock.set(local(2027, 7, 1, 12))  # inside the window that closes at the review
    earn(silver, "alice", "o-3", 70_000)  # 700 x 1.5 = 1,050 points
    token = token_for(client, read_key, "alice")
    assert by_testid(open_page(client, token), "tier-keep") == (
        "You have done enough to keep 银卡 after November 20, 2027."
    )
    assert by_testid(open_page(client, token, BROWSER_ZH), "tier-keep") == (
        "已满足保级条件，2027年11月20日后继续享有银卡。"
    )


def test_tier_changes_read_as_words_among_the_history(
    client: FlaskClient, silver: Database, read_key: str
) -> None:
    token = token_for(client, read_key, "alice")
    words = text_of(open_page(client, token))
    upgrade = "Moved up to 银卡 Qualifying points reached 1,100 Nov 21, 2026 18:05"
    assert upgrade in words
    # the change comes before (above) the earn that made it, and after the older earn
    assert words.index(upgrade) < words.index("Order o-2") < words.index("Order o-1")
    chinese = text_of(open_page(client, token, BROWSER_ZH))
    assert "升级为银卡 累计积分达到 1,100" in chinese


def test_a_lock_and_the_top_tier(
    client: FlaskClient, silver: Database, read_key: str, clock: FixedClock
) -> None:
    clock.advance(dt.timedelta(hours=1))
    s.set_member_tier(
        silver, program=PROGRAM, member="alice", tier="gold", reason="VIP event",
        change_id="c-1", locked_until=local(2027, 9, 1),
    )  # fmt: skip
    token = token_for(client, read_key, "alice")
    page = open_page(client, token)
    assert by_testid(page, "tier-name") == "金卡"
    assert by_testid(page, "tier-top") == "You are at the top tier."
    assert not _has_testid(page, "tier-next") and "<progress" not in page.get_data(as_text=True)
    assert by_testid(page, "tier-lock") == "The shop keeps you at 金卡 until August 31, 2027."
    # the lock ends before the review of the new period, so keeping the tier still counts
    assert by_testid(page, "tier-keep") == (
        "Earn 5,000 more points by November 20, 2027 to keep 金卡."
    )
    words = text_of(page)
    assert "Moved up to 金卡 Kept by the shop until August 31, 2027" in words
    assert words.index("Moved up to 金卡") < words.index("Moved up to 银卡")
    chinese = open_page(client, token, BROWSER_ZH)
    assert by_testid(chinese, "tier-top") == "您已是最高等级。"
    assert by_testid(chinese, "tier-lock") == "商家为您保留金卡至 2027年8月31日。"
    assert "升级为金卡 商家保留至 2027年8月31日" in text_of(chinese)


def test_tier_changes_show_once_on_the_page_of_their_time(
    client: FlaskClient, program_db: Database, read_key: str, clock: FixedClock
) -> None:
    s.publish_tiers(program_db, program=PROGRAM, rules=LADDER, created_by="mkt")
    enrol(program_db, "carol")
    for n in range(1, 26):  # 25 earns of 400 points: silver on the third, gold on the tenth
        earn(program_db, "carol", f"o-{n}", 40_000)
        clock.advance(dt.timedelta(minutes=1))
    token = token_for(client, read_key, "carol")
    first = open_page(client, token)
    newest = text_of(first)  # o-25 to o-6
    assert newest.count("Moved up to") == 1
    assert (
        newest.index("Order o-11") < newest.index("Moved up to 金卡") < newest.index("Order o-10")
    )
    older = text_of(client.get(_older_link(first)))  # o-5 to o-1
    assert older.count("Moved up to") == 1
    assert older.index("Order o-4") < older.index("Moved up to 银卡") < older.index("Order o-3")


def _older_link(page: TestResponse) -> str:
    found = re.search(r'href="([^"]*)" rel="next"', page.get_data(as_text=True))
    assert found, "no link to older activity"
    return html.unescape(found.group(1))


def test_without_tiers_the_page_shows_no_tier(
    client: FlaskClient, program_db: Database, read_key: str
) -> None:
    enrol(program_db, "dan")
    earn(program_db, "dan", "o-1", 500_000)
    token = token_for(client, read_key, "dan")
    for language in ("en", BROWSER_ZH):
        page = open_page(client, token, language)
        assert page.status_code == 200
        body = page.get_data(as_text=True)
        assert 'class="card tier"' not in body and "<progress" not in body
        assert "tier-" not in body
        assert "Member tier" not in body and "会员等级" not in body


def test_a_tier_on_money_spent_speaks_money(
    client: FlaskClient, program_db: Database, read_key: str
) -> None:
    money = {
        **LADDER,
        "measure": "money",
        "tiers": [
            {"code": "member", "name": "普通", "threshold": 0},
            {"code": "silver", "name": "银卡", "threshold": 100_000},
            {"code": "gold", "name": "金卡", "threshold": 500_000},
        ],
    }
    s.publish_tiers(program_db, program=PROGRAM, rules=money, created_by="mkt")
    enrol(program_db, "erin")
    earn(program_db, "erin", "o-1", 110_000)  # ¥1,100 spent: silver
    token = token_for(client, read_key, "erin")
    page = open_page(client, token)
    assert by_testid(page, "tier-next") == "Spend CN¥3,900.00 more to reach 金卡"
    assert by_testid(page, "tier-measured") == "CN¥1,100.00 of CN¥5,000.00 qualifying spend"
    assert by_testid(page, "tier-keep") == (
        "Spend CN¥1,000.00 more by November 20, 2027 to keep 银卡."
    )
    assert not _has_testid(page, "tier-multiplier")  # earning as usual
    assert "Qualifying spend reached CN¥1,100.00" in text_of(page)
    chinese = open_page(client, token, BROWSER_ZH)
    assert by_testid(chinese, "tier-next") == "再消费 ¥3,900.00 即可升级金卡"
    assert by_testid(chinese, "tier-measured") == "已累计消费 ¥1,100.00 / ¥5,000.00"


def test_a_refund_that_undoes_the_upgrade_reads_as_a_move_down(
    client: FlaskClient, program_db: Database, read_key: str, clock: FixedClock
) -> None:
    s.publish_tiers(
        program_db, program=PROGRAM, rules={**LADDER, "on_reversal": "at_once"}, created_by="mkt"
    )
    enrol(program_db, "finn")
    earn(program_db, "finn", "o-1", 120_000)  # silver
    clock.advance(dt.timedelta(hours=1))
    s.refund_order(
        program_db, program=PROGRAM, order_id="o-1", refund_id="re-1", amount_minor=120_000,
        currency="CNY",
    )  # fmt: skip
    s.complete_refund(program_db, program=PROGRAM, refund_id="re-1")
    token = token_for(client, read_key, "finn")
    page = open_page(client, token)
    assert by_testid(page, "tier-name") == "普通"
    assert not _has_testid(page, "tier-keep")  # the lowest tier is never lost
    words = text_of(page)
    down = "Moved down to 普通 Reviewed after a refund"
    assert words.index(down) < words.index("Moved up to 银卡")
    assert "降级为普通 退款后重新评定" in text_of(open_page(client, token, BROWSER_ZH))


def test_the_rewards_pages_price_and_refuse_by_tier(
    client: FlaskClient, silver: Database, read_key: str
) -> None:
    s.create_reward(
        silver, program=PROGRAM, code="mug", kind="item", actor="mkt", stock=5,
        terms={"name": "Mug", "points": 600, "tier_points": {"silver": 450}},
    )  # fmt: skip
    s.create_reward(
        silver, program=PROGRAM, code="tasting", kind="item", actor="mkt", stock=5,
        terms={"name": "Tasting", "points": 100, "tiers": ["gold"]},
    )  # fmt: skip
    token = token_for(client, read_key, "alice")  # silver, 1,100 points
    catalog = open_rewards(client, token)
    body = catalog.get_data(as_text=True)
    mug = body[body.index('data-testid="reward-mug"') : body.index('data-testid="reward-tasting"')]
    assert 'data-testid="price">450 points<' in mug
    tasting = body[body.index('data-testid="reward-tasting"') :]
    assert "For members of certain tiers only" in tasting and "<form" not in tasting
    chinese = open_rewards(client, token, BROWSER_ZH).get_data(as_text=True)
    assert "仅限特定会员等级" in chinese

    address = {"ship_name": "Ann", "ship_phone": "13800000000", "ship_address": "1 Road"}
    fields = form_of(catalog, "mug") | address | {"quantity": "2"}
    confirmed = post(client, "confirm", fields)
    assert by_testid(confirmed, "question") == "Spend 900 points on 2 × Mug?"
    done = follow(client, post(client, "redeem", fields))
    assert "900 points spent." in text_of(done)
    assert s.balance(silver, program=PROGRAM, member="alice").available == 1_100 - 900
