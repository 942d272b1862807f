"""The member page at ``/m/`` over HTTP, on both databases: the token decides the member, a
bad token is a friendly 401 page, every response carries the security headers, the language
follows the browser, and every history kind reads as words in both languages."""

from __future__ import annotations

import datetime as dt
import html
import re
import urllib.parse

import pytest
from flask.testing import FlaskClient
from werkzeug.datastructures import LanguageAccept
from werkzeug.http import parse_accept_header
from werkzeug.test import TestResponse

from api.member_page import HISTORY_PAGE_SIZE
from api.member_texts import KINDS, PAGE, choose_language
from loyalty import services as s
from loyalty.db import Database
from loyalty.domain.clock import FixedClock
from loyalty.domain.moves import ENTRY_KINDS
from loyalty.services.api_keys import add_origin, create_key, revoke_key
from loyalty.services.results import HistoryItem
from tests.http_api.conftest import SECRET, bearer, new_key
from tests.integration.helpers import PROGRAM, earn, enrol, hold

CHINESE = re.compile(r"[\u4e00-\u9fff]")
BROWSER_ZH = "zh-CN,zh;q=0.9,en;q=0.5"


def token_for(client: FlaskClient, key: str, member: str, ttl_seconds: int = 900) -> str:
    """A member token, asked for as a shop's server does."""
    answer = client.post(
        f"/v1/members/{urllib.parse.quote(member, safe='')}/tokens",
        json={"ttl_seconds": ttl_seconds},
        headers=bearer(key),
    )
    assert answer.status_code == 201, answer.get_json()
    token: str = answer.get_json()["token"]
    return token


def open_page(client: FlaskClient, token: str, language: str = "en", **args: str) -> TestResponse:
    return client.get(
        "/m/", query_string={"token": token, **args}, headers={"Accept-Language": language}
    )


def text_of(response: TestResponse) -> str:
    """The page's visible text, tags dropped and entities decoded, spaces collapsed."""
    body = response.get_data(as_text=True)
    body = re.sub(r"<(head|style)\b.*?</\1>", " ", body, flags=re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", body)).split())


def by_testid(response: TestResponse, name: str) -> str:
    found = re.search(
        rf'data-testid="{name}"[^>]*>([^<]*)<', response.get_data(as_text=True), flags=re.S
    )
    assert found, f"no {name} on the page"
    return html.unescape(found.group(1)).strip()


@pytest.fixture
def read_key(program_db: Database) -> str:
    return new_key(program_db, "read")


@pytest.fixture
def alice(program_db: Database) -> Database:
    """alice: 1,000 points from o-1, 300 spent on o-2, a refund of o-1 open (200 frozen)."""
    enrol(program_db, "alice", "bob")
    earn(program_db, "alice", "o-1", 100_000)
    hold(program_db, "alice", "o-2", 300)
    s.capture_hold(program_db, program=PROGRAM, order_id="o-2")
    s.refund_order(
        program_db,
        program=PROGRAM,
        order_id="o-1",
        refund_id="re_1",
        amount_minor=20_000,
        currency="CNY",
    )
    earn(program_db, "bob", "o-9", 4_200)
    return program_db


def test_a_valid_token_shows_the_members_numbers(
    client: FlaskClient, alice: Database, read_key: str
) -> None:
    page = open_page(client, token_for(client, read_key, "alice"))
    assert page.status_code == 200
    assert page.mimetype == "text/html"
    assert by_testid(page, "available") == "500"  # 1,000 - 300 spent - 200 frozen
    assert by_testid(page, "frozen") == "200"
    assert by_testid(page, "pending") == "0"
    assert by_testid(page, "member") == "Member alice"
    words = text_of(page)
    assert "Points used for an order Order o-2" in words
    assert "Refund requested: points frozen Order o-1" in words
    assert "Nov 21, 2026 18:00" in words  # 10:00 UTC shown in Asia/Shanghai
    # the default rules expire points after 3 months: not within 90 days of 21 November
    assert "No points expire in the next 90 days." in words


def test_points_expiring_show_their_last_local_day_and_a_debt_shows(
    client: FlaskClient, program_db: Database, read_key: str, clock: FixedClock
) -> None:
    s.publish_rules(program_db, program=PROGRAM, rules={"expiry": {"days": 30}})
    enrol(program_db, "carol", "dan")
    earn(program_db, "dan", "o-5", 12_345)  # 123 points, expiring in 30 days
    clock.advance(dt.timedelta(days=3))
    earn(program_db, "dan", "o-6", 1_000)  # 10 points, 3 days later
    earn(program_db, "carol", "o-1", 10_000)  # 100 points, all spent on o-2, then refunded
    hold(program_db, "carol", "o-2", 100)
    s.capture_hold(program_db, program=PROGRAM, order_id="o-2")
    s.refund_order(
        program_db,
        program=PROGRAM,
        order_id="o-1",
        refund_id="re_1",
        amount_minor=10_000,
        currency="CNY",
    )
    s.complete_refund(program_db, program=PROGRAM, refund_id="re_1")
    carol = open_page(client, token_for(client, read_key, "carol"), BROWSER_ZH)
    assert by_testid(carol, "debt").startswith("您有 100 积分欠款")
    assert "退款：计入积分欠款" in text_of(carol)
    assert "No points" not in text_of(carol) and "未来 90 天内没有积分过期。" in text_of(carol)
    points = s.balance(program_db, program=PROGRAM, member="dan", expiring_within_days=90)
    assert [e.points for e in points.expiring] == [123, 10]
    dan = text_of(open_page(client, token_for(client, read_key, "dan"), BROWSER_ZH))
    # earned on 21 and 24 November at 18:00 local: usable until the end of 21 and 24 December
    assert "123 积分 有效期至 2026年12月21日" in dan
    assert "10 积分 有效期至 2026年12月24日" in dan
    english = text_of(open_page(client, token_for(client, read_key, "dan")))
    assert "123 points Use by December 21, 2026" in english
    assert "debt" not in english and "owe" not in english


def test_the_token_decides_the_member(client: FlaskClient, alice: Database, read_key: str) -> None:
    bobs = token_for(client, read_key, "bob")
    for args in ({}, {"member": "alice"}, {"m": "alice"}):
        page = open_page(client, bobs, **args)
        assert page.status_code == 200
        assert by_testid(page, "member") == "Member bob"
        assert by_testid(page, "available") == "42"
        assert "o-1" not in page.get_data(as_text=True)


@pytest.mark.parametrize("language", ["en", BROWSER_ZH])
def test_an_expired_token_gets_a_friendly_401_page(
    client: FlaskClient, alice: Database, read_key: str, clock: FixedClock, language: str
) -> None:
    token = token_for(client, read_key, "alice", ttl_seconds=600)
    assert open_page(client, token).status_code == 200
    clock.advance(dt.timedelta(seconds=601))
    page = open_page(client, token, language)
    assert page.status_code == 401
    assert page.mimetype == "text/html"
    words = text_of(page)
    if language == "en":
        assert "This link has expired" in words and "Ask the shop for a new one" in words
    else:
        assert "链接已失效" in words and "请向商家索取新的链接" in words
    assert "Traceback" not in words and "not_authenticated" not in words
    assert "alice" not in page.get_data(as_text=True)


def test_a_token_of_a_revoked_key_gets_the_401_page(
    client: FlaskClient, alice: Database, program_db: Database
) -> None:
    created = create_key(program_db, program=PROGRAM, scopes=("read",), label="shop")
    token = token_for(client, created.secret, "alice")
    assert open_page(client, token).status_code == 200
    revoke_key(program_db, program=PROGRAM, key=created.key.id)
    page = open_page(client, token)
    assert page.status_code == 401
    assert "This link has expired" in text_of(page)


def _tampered(token: str) -> str:
    last = token[-1]
    return token[:-1] + ("A" if last != "A" else "B")


@pytest.mark.parametrize(
    "make",
    [
        lambda good: "",
        lambda good: "garbage",
        lambda good: "jfn_mt_",
        lambda good: "jfn_mt_eyJwIjoic2hvcCJ9.bm90IGEgc2lnbmF0dXJl",
        lambda good: "jfn_sk_" + good[7:],
        _tampered,
        lambda good: good + "%00",
    ],
    ids=["empty", "garbage", "prefix", "unsigned", "server-key-prefix", "tampered", "nul"],
)
def test_garbage_tokens_get_the_401_page(
    client: FlaskClient, alice: Database, read_key: str, make: object
) -> None:
    good = token_for(client, read_key, "alice")
    bad = make(good)  # type: ignore[operator]
    page = open_page(client, bad)
    assert page.status_code == 401
    assert page.mimetype == "text/html"
    assert "This link has expired" in text_of(page)


def test_no_token_at_all_gets_the_401_page(client: FlaskClient) -> None:
    page = client.get("/m/")
    assert page.status_code == 401
    assert "This link has expired" in text_of(page)


def _assert_security_headers(response: TestResponse, ancestors: str = "'none'") -> None:
    csp = response.headers["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["default-src"] == "'self'"
    assert directives["frame-ancestors"] == ancestors
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "http" not in csp.replace(ancestors, "")  # no third-party source
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_every_response_carries_the_security_headers(
    client: FlaskClient, alice: Database, read_key: str
) -> None:
    token = token_for(client, read_key, "alice")
    page = open_page(client, token)
    _assert_security_headers(page)
    assert page.headers["X-Frame-Options"] == "DENY"
    _assert_security_headers(open_page(client, "garbage"))
    _assert_security_headers(client.get("/m/static/member.css"))
    body = page.get_data(as_text=True)
    assert "<script" not in body and "style=" not in body and "<style" not in body
    assert not re.search(r'(src|href)="(https?:)?//', body)  # nothing from elsewhere


def test_the_programs_allowed_origins_may_frame_the_page(
    client: FlaskClient, alice: Database, read_key: str
) -> None:
    add_origin(alice, program=PROGRAM, origin="https://shop.example")
    add_origin(alice, program=PROGRAM, origin="http://localhost:3000")
    page = open_page(client, token_for(client, read_key, "alice"))
    _assert_security_headers(page, "http://localhost:3000 https://shop.example")
    assert "X-Frame-Options" not in page.headers


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (BROWSER_ZH, "zh"),
        ("zh-TW,zh;q=0.8", "zh"),
        ("zh-Hans-CN", "zh"),
        ("en-US,en;q=0.9,zh-CN;q=0.8", "en"),
        ("fr-FR,fr;q=0.9,zh-CN;q=0.5", "zh"),
        ("de-DE", "en"),
        ("en-XX,zh;q=0.1", "en"),
        ("*", "en"),
        ("", "en"),
        ("zh;q=0, en;q=0.1", "en"),
    ],
)
def test_the_language_is_negotiated_from_accept_language(accept: str, expected: str) -> None:
    assert choose_language(None, parse_accept_header(accept, LanguageAccept)) == expected


def test_a_chinese_browser_gets_the_page_in_chinese_and_lang_overrides(
    client: FlaskClient, alice: Database, read_key: str
) -> None:
    token = token_for(client, read_key, "alice")
    page = open_page(client, token, BROWSER_ZH)
    body = page.get_data(as_text=True)
    assert '<html lang="zh-CN">' in body
    assert by_testid(page, "member") == "会员 alice"
    words = text_of(page)
    assert "可用积分" in words and "积分明细" in words and "订单使用积分" in words
    assert "2026年11月21日 18:00" in words
    assert page.headers["Vary"] and "Accept-Language" in page.headers["Vary"]
    english = open_page(client, token, BROWSER_ZH, lang="en")
    assert '<html lang="en">' in english.get_data(as_text=True)
    assert "Available points" in text_of(english)
    # the switch keeps the token and names the other language
    switch = by_testid(english, "language")
    assert switch == "中文"
    assert "lang=zh" in english.get_data(as_text=True)
    chinese = open_page(client, token, "en-US", lang="zh")
    assert by_testid(chinese, "available") == "500"
    assert "可用积分" in text_of(chinese)


def test_numbers_are_formatted_for_the_language_and_held_points_show(
    client: FlaskClient, program_db: Database, read_key: str
) -> None:
    enrol(program_db, "dora")
    earn(program_db, "dora", "big", 123_456_700)  # 1,234,567 points
    hold(program_db, "dora", "o-2", 1_000, total=100_000_000)
    for language, held in (("en", "Reserved for orders"), (BROWSER_ZH, "订单占用")):
        page = open_page(client, token_for(client, read_key, "dora"), language)
        assert by_testid(page, "available") == "1,233,567"
        assert by_testid(page, "held") == "1,000"
        assert held in text_of(page)
    page = open_page(client, token_for(client, read_key, "dora"))
    assert by_testid(page, "worth") == "Worth up to CN¥12,335.67 at checkout"


def test_every_kind_of_history_has_a_phrase_in_both_languages() -> None:
    kinds = {*ENTRY_KINDS, "earn_action", "earn_pending_action"}
    assert kinds == set(KINDS), "a history kind without its phrase, or a phrase of no kind"
    for kind, text in KINDS.items():
        assert text.en.strip() and text.zh.strip(), kind
        assert CHINESE.search(text.zh), f"{kind}: {text.zh!r} is not Chinese"
        assert not CHINESE.search(text.en), f"{kind}: {text.en!r} is not English"
        assert "_" not in text.en, f"{kind}: a code, not words"
    assert len({t.zh for t in KINDS.values()}) == len(KINDS)
    assert len({t.en for t in KINDS.values()}) == len(KINDS)
    for message, text in PAGE.items():
        assert text.en.strip() and text.zh.strip(), message
        fields = set(re.findall(r"\{(\w+)\}", text.en))
        assert fields == set(re.findall(r"\{(\w+)\}", text.zh)), message


def test_a_long_history_reads_as_words_in_both_languages(
    client: FlaskClient, program_db: Database, read_key: str, clock: FixedClock
) -> None:
    """Most kinds the ledger writes, each shown as its phrase with its order or counterpart,
    never the operation's key."""
    s.update_program(program_db, program=PROGRAM, transfers_enabled=True, transfer_fee_points=2)
    s.publish_rules(
        program_db,
        program=PROGRAM,
        rules={"pending_days": 7, "expiry": {"days": 60}, "actions": {"review": {"points": 5}}},
    )
    enrol(program_db, "erin", "finn")
    earn(program_db, "erin", "o-1", 100_000)  # 1,000 pending
    s.earn_action(program_db, program=PROGRAM, member="erin", action="review", reference="r-1")
    clock.advance(dt.timedelta(days=8))
    s.mature_pending(program_db)
    hold(program_db, "erin", "o-2", 100)
    s.release_hold(program_db, program=PROGRAM, order_id="o-2")
    hold(program_db, "erin", "o-3", 400)
    s.capture_hold(program_db, program=PROGRAM, order_id="o-3")
    s.adjust_points(
        program_db,
        program=PROGRAM,
        member="erin",
        points=30,
        reason="late parcel",
        adjustment_id="a-1",
    )
    s.transfer_points(
        program_db, program=PROGRAM, sender="erin", recipient="finn", points=20, transfer_id="t-1"
    )
    s.adjust_points(
        program_db,
        program=PROGRAM,
        member="erin",
        points=-10,
        reason="double grant",
        adjustment_id="a-2",
    )
    refund = {"program": PROGRAM, "order_id": "o-1", "currency": "CNY"}
    s.refund_order(program_db, refund_id="re_1", amount_minor=50_000, **refund)
    s.fail_refund(program_db, program=PROGRAM, refund_id="re_1")
    s.open_dispute(program_db, dispute_id="dp_1", amount_minor=100_000, **refund)
    s.close_dispute(program_db, program=PROGRAM, dispute_id="dp_1", won=False)  # into debt
    earn(program_db, "erin", "o-4", 100_000)  # pays the debt off, pending
    s.transfer_points(
        program_db, program=PROGRAM, sender="finn", recipient="erin", points=5, transfer_id="t-2"
    )
    clock.advance(dt.timedelta(days=61))
    s.expire_due(program_db)
    items = s.history(program_db, program=PROGRAM, member="erin", limit=100).items
    kinds = {i.kind for i in items}
    assert {"earn_pending", "mature", "hold", "release", "capture", "refund_freeze"} <= kinds
    assert {"refund_release", "dispute_freeze", "dispute_reverse", "dispute_debt"} <= kinds
    assert {"adjust_grant", "adjust_deduct", "transfer_out", "transfer_fee"} <= kinds
    assert {"transfer_in", "debt_repay", "expire", "earn"} <= kinds
    token = token_for(client, read_key, "erin", ttl_seconds=3600)
    for language, lang in (("en", "en"), (BROWSER_ZH, "zh")):
        shown = []
        cursor: str | None = None
        while True:
            args = {"cursor": cursor} if cursor else {}
            page = open_page(client, token, language, **args)
            assert page.status_code == 200
            body = page.get_data(as_text=True)
            shown += [html.unescape(t) for t in re.findall(r'class="title">([^<]*)<', body)]
            assert "sweep:" not in body and "earn:" not in body and "hold:" not in body
            older = re.search(r'href="[^"]*cursor=(\d+)[^"]*" rel="next"', body)
            if not older:
                break
            cursor = older.group(1)
        assert shown == [getattr(KINDS[_phrase(i)], lang) for i in items]
    words = text_of(open_page(client, token))
    for expected in (
        "Order o-1",
        "Order o-2",
        "Order o-3",
        "To finn",
        "Reason: late parcel",
        "Reason: double grant",
        "For: review",
    ):
        assert expected in words


def _phrase(item: HistoryItem) -> str:
    """The phrase an item should show: its kind, or an earn's by what earned it."""
    if item.kind in ("earn", "earn_pending") and not item.description.startswith("purchase"):
        return f"{item.kind}_action"
    return item.kind


def test_older_history_is_a_link_away_and_carries_the_token(
    client: FlaskClient, program_db: Database, read_key: str
) -> None:
    enrol(program_db, "gus")
    for n in range(HISTORY_PAGE_SIZE + 3):
        earn(program_db, "gus", f"order-{n}", 1_000)
    token = token_for(client, read_key, "gus")
    first = open_page(client, token, BROWSER_ZH)
    assert first.get_data(as_text=True).count('class="line"') == HISTORY_PAGE_SIZE
    older = re.search(r'href="([^"]*)" rel="next"', first.get_data(as_text=True))
    assert older, "a link to older activity"
    link = html.unescape(older.group(1))
    assert token in link
    second = client.get(link, headers={"Accept-Language": BROWSER_ZH})
    body = second.get_data(as_text=True)
    assert body.count('class="line"') == 3
    assert "订单号：order-0" in text_of(second)
    assert 'rel="next"' not in body
    assert by_testid(second, "latest") == "返回最新记录"
    assert by_testid(second, "available") == "230"
    for odd in ("-1", "0", "x", "99999999999999999999999"):
        assert open_page(client, token, cursor=odd).get_data(as_text=True).count(
            'class="line"'
        ) == (HISTORY_PAGE_SIZE)


def test_odd_ids_and_reasons_are_escaped(
    client: FlaskClient, program_db: Database, read_key: str
) -> None:
    member = '<img src=x onerror="alert(1)">李雷&amp;'
    enrol(program_db, member)
    s.adjust_points(
        program_db,
        program=PROGRAM,
        member=member,
        points=5,
        reason="<script>alert('x')</script> 「礼物」🎁",
        adjustment_id="adj-1",
    )
    page = open_page(client, token_for(client, read_key, member))
    body = page.get_data(as_text=True)
    assert "<img src=x" not in body and "<script>" not in body
    assert by_testid(page, "member") == f"Member {member}"
    assert "Reason: <script>alert('x')</script> 「礼物」🎁" in text_of(page)


def test_the_whole_server_serves_the_page_and_its_stylesheet(
    alice: Database, read_key: str, client: FlaskClient
) -> None:
    from werkzeug.test import Client

    from api.server import create_server

    server = Client(
        create_server(
            {
                "JIFEN_DATABASE": alice,
                "SECRET_KEY": SECRET,
                "RATELIMIT_ENABLED": False,
                "JIFEN_REDIS_URL": None,
            }
        )
    )
    token = token_for(client, read_key, "alice")
    moved = server.get("/m", query_string={"token": token})
    assert moved.status_code == 308 and token in moved.headers["Location"]
    page = server.get("/m/", query_string={"token": token})
    assert page.status_code == 200 and "Available points" in page.get_data(as_text=True)
    sheet = server.get("/m/static/member.css")
    assert sheet.status_code == 200 and sheet.mimetype == "text/css"
    assert server.get("/m/static/icon.svg").mimetype == "image/svg+xml"
