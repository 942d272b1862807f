"""The reward catalog in the console: marketing creates, publishes, restocks, retires and fills
code pools; operations works the fulfilment queue; each role sees only what it may change,
and every refusal is shown in words beside its field, with nothing written."""

from __future__ import annotations

import datetime as dt
import html
import io
import re
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from loyalty import services as s
from loyalty.db import Database
from loyalty.domain.clock import FixedClock
from tests.integration.helpers import PROGRAM, earn
from tests.integration.test_admin_support import build_app, login, post

SHIP = {"name": "Li Lei", "phone": "13800000000", "address": "1 Nanjing Rd", "city": "Shanghai"}


@pytest.fixture
def app(db: Database) -> Iterator[Flask]:
    yield build_app(db)


def _signed_in(app: Flask, role: str) -> tuple[FlaskClient, str]:
    client = app.test_client()
    return client, login(client, role)


def _text(client: FlaskClient, path: str) -> str:
    response = client.get(path)
    assert response.status_code == 200, (path, response.status_code)
    return response.get_data(as_text=True)


def _create(client: FlaskClient, token: str, **fields: object) -> Any:
    form: dict[str, object] = {"visible": "1", **fields}
    return post(client, "/admin/rewards/create", token, **form)


def _item(db: Database, code: str = "mug", stock: int = 5, points: int = 100) -> None:
    s.create_reward(
        db,
        program=PROGRAM,
        code=code,
        kind="item",
        terms={"name": f"Mug {code}", "points": points},
        stock=stock,
        actor="test",
    )


def _redeem_items(db: Database, count: int, member: str = "alice") -> list[int]:
    return [
        s.redeem_reward(
            db, program=PROGRAM, member=member, reward="mug", idempotency_key=f"r{n}", shipping=SHIP
        ).id
        for n in range(count)
    ]


# --- who may do what -------------------------------------------------------------------------


def test_every_role_reads_the_catalog_and_only_operations_and_admin_open_the_queue(
    app: Flask, db: Database
) -> None:
    _item(db)
    for role in ("viewer", "marketing", "operations", "admin"):
        client, _ = _signed_in(app, role)
        assert client.get("/admin/rewards/").status_code == 200
        assert client.get("/admin/rewards/reward?code=mug").status_code == 200
        queue = client.get("/admin/fulfilment/").status_code
        assert queue == (200 if role in ("operations", "admin") else 403), role
        nav = _text(client, "/admin/")
        assert ('href="/admin/fulfilment/"' in nav) == (role in ("operations", "admin"))
        assert 'href="/admin/rewards/"' in nav


def test_viewer_and_operations_cannot_change_the_catalog_and_marketing_cannot_work_the_queue(
    app: Flask, db: Database
) -> None:
    _item(db)
    earn(db, "alice", "o1", 100_000)
    [redemption] = _redeem_items(db, 1)
    catalog_posts = {
        "/admin/rewards/create": {"kind": "item", "code": "x", "name": "X", "points": "1"},
        "/admin/rewards/publish": {"code": "mug", "name": "Mug", "points": "1"},
        "/admin/rewards/restock": {"code": "mug", "quantity": "1"},
        "/admin/rewards/retire": {"code": "mug", "retired": "1"},
        "/admin/rewards/codes/generate": {"code": "mug", "count": "1", "length": "10"},
    }
    queue_posts = {
        "/admin/fulfilment/advance": {"ids": str(redemption), "status": "packing"},
        "/admin/fulfilment/advance-one": {"id": str(redemption), "status": "packing"},
        "/admin/fulfilment/cancel": {"id": str(redemption), "reason": "customer asked"},
    }
    for role in ("viewer", "operations"):
        client, token = _signed_in(app, role)
        for path, data in catalog_posts.items():
            assert post(client, path, token, **data).status_code == 403, (role, path)
    for role in ("viewer", "marketing"):
        client, token = _signed_in(app, role)
        for path, data in queue_posts.items():
            assert post(client, path, token, **data).status_code == 403, (role, path)
    info = s.get_reward(db, program=PROGRAM, reward="mug")
    assert (info.version, info.stock_left, info.retired_at) == (1, 4, None)
    assert s.get_redemption(db, program=PROGRAM, redemption=redemption).status == "issued"
    assert [r.code for r in s.list_catalog(db, program=PROGRAM)] == ["mug"]


def test_a_form_without_its_csrf_token_is_refused_and_writes_nothing(
    app: Flask, db: Database
) -> None:
    client, _ = _signed_in(app, "marketing")
    response = client.post(
        "/admin/rewards/create", data={"kind": "item", "code": "x", "name": "X", "points": "5"}
    )
    assert response.status_code == 400 and "CSRF" in response.get_data(as_text=True)
    assert s.list_catalog(db, program=PROGRAM) == ()


# --- the catalog -----------------------------------------------------------------------------


def test_marketing_creates_a_voucher_and_an_item_with_window_limits_and_image(
    app: Flask, db: Database
) -> None:
    client, token = _signed_in(app, "marketing")
    voucher = _create(
        client,
        token,
        kind="voucher",
        code="ten-off",
        name="CNY 20.50 off",
        points="1,500",
        voucher_amount="20.50",
        voucher_valid_days="30",
        limit_month="2",
        active_from="2026-12-01T00:00",
        active_until="2026-12-31T23:59",
    )
    assert voucher.status_code == 302
    terms = s.get_reward(db, program=PROGRAM, reward="ten-off").terms
    assert terms["voucher_amount_minor"] == 2050 and terms["points"] == 1500
    assert terms["limits"] == {"month": 2}
    # local midnight in Shanghai is 16:00 UTC the day before
    assert terms["active_from"] == "2026-11-30T16:00:00+00:00"
    item = _create(
        client,
        token,
        kind="item",
        code="mug",
        name="Jifen mug",
        points="800",
        stock="1200",
        image_url="https://cdn.example/mug.png",
        limit_lifetime="1",
        min_balance="100",
    )
    assert item.status_code == 302
    flash = _text(client, "/admin/rewards/reward?code=mug")
    assert "Created item mug at 800 points, 1,200 in stock." in flash
    page = _text(client, "/admin/rewards/")
    assert 'src="https://cdn.example/mug.png"' in page and "jifen-thumb" in page
    assert "1,200 / 1,200" in page  # stock left / added, with thousands separators
    assert "2026-12-01 00:00 to 2026-12-31 23:59" in page and "not started" in page
    assert "CNY 20.50" in page
    audits = [e.action for e in s.list_audit(db, action="reward.").items]
    assert audits.count("reward.create") == 2


def test_a_draw_takes_chances_in_percent_and_shows_the_no_prize_share(
    app: Flask, db: Database
) -> None:
    client, token = _signed_in(app, "marketing")
    assert (
        _create(
            client, token, kind="coupon", code="prize-a", name="Prize A", points="1"
        ).status_code
        == 302
    )
    _item(db, "prize-b")
    response = _create(
        client,
        token,
        kind="draw",
        code="lucky",
        name="Lucky draw",
        points="50",
        prize_reward=["prize-a", "prize-b", "", ""],
        prize_chance=["12.5", "0.0001", "", ""],
        prize_label=["big", "tiny", "", ""],
    )
    assert response.status_code == 302
    prizes = s.get_reward(db, program=PROGRAM, reward="lucky").terms["prizes"]
    assert [(p["reward"], p["chance_ppm"]) for p in prizes] == [
        ("prize-a", 125_000),
        ("prize-b", 1),
    ]
    page = _text(client, "/admin/rewards/reward?code=lucky")
    assert "prize-a</code>: 12.5%" in page
    assert "no prize: 87.4999%" in page
    assert re.search(r'name="prize_chance" value="12.5"', page)  # the next version starts here


def test_refusals_are_shown_beside_their_fields_and_nothing_is_created(
    app: Flask, db: Database
) -> None:
    client, token = _signed_in(app, "marketing")
    _item(db, "mug")
    cases = [
        ({"kind": "item", "code": "a", "name": "", "points": "5"}, "name", "non-empty"),
        ({"kind": "item", "code": "a", "name": "A", "points": "-5"}, "points", "whole number"),
        ({"kind": "item", "code": "a", "name": "A"}, "points", "price in points is required"),
        (
            {"kind": "voucher", "code": "a", "name": "A", "points": "5", "voucher_amount": "1.234"},
            "voucher_amount",
            "at most 2 decimals",
        ),
        ({"kind": "item", "code": "mug", "name": "A", "points": "5"}, "code", "already has"),
        (
            {"kind": "coupon", "code": "a", "name": "A", "points": "5", "stock": "9"},
            "stock",
            "pool",
        ),
        (
            {
                "kind": "item",
                "code": "a",
                "name": "A",
                "points": "5",
                "image_url": "javascript:alert(1)",
            },
            "image_url",
            "http(s) address",
        ),
        (
            {"kind": "item", "code": "a", "name": "A", "points": "5", "active_from": "soon"},
            "active_from",
            "not a date and time",
        ),
    ]
    for form, field, words in cases:
        response = _create(client, token, **form)
        body = response.get_data(as_text=True)
        assert response.status_code == 400, form
        found = re.search(rf'data-testid="error-{field}">([^<]*)<', html.unescape(body))
        assert found and words in found.group(1), (form, found and found.group(1))
    over = _create(
        client,
        token,
        kind="draw",
        code="d",
        name="D",
        points="5",
        prize_reward=["mug"],
        prize_chance=["101"],
    )
    assert 'data-testid="error-prizes"' in over.get_data(as_text=True)
    too_much = _create(
        client,
        token,
        kind="draw",
        code="d",
        name="D",
        points="5",
        prize_reward=["mug", "mug2"],
        prize_chance=["60", "50"],
    )
    assert too_much.status_code == 400
    assert [r.code for r in s.list_catalog(db, program=PROGRAM)] == ["mug"]


def test_publishing_now_and_at_a_local_time_lists_the_scheduled_version(
    app: Flask, db: Database, clock: FixedClock
) -> None:
    client, token = _signed_in(app, "marketing")
    _item(db, "mug", points=100)
    now = post(
        client, "/admin/rewards/publish", token, code="mug", name="Mug", points="120", visible="1"
    )
    assert now.status_code == 302
    later = post(
        client,
        "/admin/rewards/publish",
        token,
        code="mug",
        name="Mug",
        points="150",
        visible="1",
        effective_from="2026-12-01T00:00",
    )
    assert later.status_code == 302
    page = _text(client, "/admin/rewards/reward?code=mug")
    assert "Published version 3 of mug, in force from 2026-12-01 00:00 (Asia/Shanghai)." in page
    info = s.get_reward(db, program=PROGRAM, reward="mug")
    assert (info.version, info.terms["points"]) == (2, 120)
    assert [v for v, _ in info.scheduled] == [3]
    assert page.count('badge-info">scheduled') == 1 and "in force</span>" in page
    catalog = _text(client, "/admin/rewards/")
    assert "v3 from 2026-12-01 00:00" in catalog
    past = post(
        client,
        "/admin/rewards/publish",
        token,
        code="mug",
        name="Mug",
        points="99",
        visible="1",
        effective_from="2026-11-01T00:00",
    )
    assert past.status_code == 400
    assert re.search(r'data-testid="error-effective_from">[^<]*in the past', past.get_data(True))
    clock.advance(dt.timedelta(days=10))
    assert s.get_reward(db, program=PROGRAM, reward="mug").terms["points"] == 150


def test_restock_retire_and_reinstate(app: Flask, db: Database) -> None:
    client, token = _signed_in(app, "admin")
    _item(db, "mug", stock=5)
    assert (
        post(client, "/admin/rewards/restock", token, code="mug", quantity="1,000").status_code
        == 302
    )
    assert "Added 1,000 to mug: 1,005 left to issue." in _text(
        client, "/admin/rewards/reward?code=mug"
    )
    bad = post(client, "/admin/rewards/restock", token, code="mug", quantity="0")
    assert bad.status_code == 400
    assert 'data-testid="error-quantity">the quantity to add must be' in bad.get_data(True)
    assert post(client, "/admin/rewards/retire", token, code="mug", retired="1").status_code == 302
    page = _text(client, "/admin/rewards/reward?code=mug")
    assert "mug is retired" in page and 'data-testid="status">retired' in page
    assert s.list_rewards(db, program=PROGRAM) == ()
    post(client, "/admin/rewards/retire", token, code="mug", retired="0")
    assert "mug is back in the catalog." in _text(client, "/admin/rewards/reward?code=mug")
    assert s.get_reward(db, program=PROGRAM, reward="mug").stock_left == 1005
    assert client.get("/admin/rewards/reward?code=nope").status_code == 404


def test_coupon_pools_import_a_csv_file_and_generate_codes(app: Flask, db: Database) -> None:
    client, token = _signed_in(app, "marketing")
    _create(client, token, kind="coupon", code="coffee", name="Coffee", points="300")

    def upload(body: bytes, name: str = "codes.csv") -> Any:
        return client.post(
            "/admin/rewards/codes/import",
            data={"csrf_token": token, "code": "coffee", "codes_file": (io.BytesIO(body), name)},
            content_type="multipart/form-data",
        )

    assert upload(b"code,batch\nCOF-0001,a\nCOF-0002,a\nCOF-0003,b\n").status_code == 302
    page = _text(client, "/admin/rewards/reward?code=coffee")
    assert "Imported 3 codes into coffee: 3 free to issue." in page
    repeated = upload(b"COF-0004\nCOF-0004\n")
    assert repeated.status_code == 400
    assert re.search(
        r'data-testid="error-codes_file">line 2: code \'COF-0004\' repeats line 1',
        html.unescape(repeated.get_data(as_text=True)),
    )
    known = upload(b"COF-0001\n")
    assert "the pool already holds COF-0001" in known.get_data(as_text=True)
    assert "not UTF-8" in upload(b"\xff\xfe\x00").get_data(as_text=True)
    made = post(
        client,
        "/admin/rewards/codes/generate",
        token,
        code="coffee",
        count="2,000",
        length="8",
        prefix="CF-",
    )
    assert made.status_code == 302
    info = s.get_reward(db, program=PROGRAM, reward="coffee")
    assert (info.codes_free, info.stock_left) == (2003, 2003)
    short = post(
        client,
        "/admin/rewards/codes/generate",
        token,
        code="coffee",
        count="10",
        length="4",
        alphabet="AB",
    )
    assert short.status_code == 400 and "make the codes longer" in short.get_data(True)
    earn(db, "alice", "o1", 100_000)
    s.redeem_reward(db, program=PROGRAM, member="alice", reward="coffee", idempotency_key="c1")
    page = _text(client, "/admin/rewards/reward?code=coffee")
    assert re.search(r'data-testid="codes">2,002 / 1<', page)


def test_the_reward_page_charts_redemptions_per_local_day(
    app: Flask, db: Database, clock: FixedClock
) -> None:
    _item(db, "mug", stock=50)
    earn(db, "alice", "o1", 1_000_000)
    _redeem_items(db, 3)
    clock.advance(dt.timedelta(days=2))
    [cancelled] = [
        s.redeem_reward(
            db, program=PROGRAM, member="alice", reward="mug", idempotency_key="late", shipping=SHIP
        ).id
    ]
    s.cancel_redemption(db, program=PROGRAM, redemption=cancelled, reason="oops", actor="t")
    client, _ = _signed_in(app, "viewer")
    page = _text(client, "/admin/rewards/reward?code=mug")
    assert '<svg class="jifen-chart"' in page
    assert "11-21 · redeemed: 3" in page and "11-23 · cancelled: 1" in page
    assert "4 units redeemed in 30 days (Asia/Shanghai dates), 1 of them since cancelled." in page
    assert page.count("<tr><td>") >= 4  # the latest redemptions
    assert 'href="/admin/fulfilment/redemption' not in page  # a viewer does not open them


# --- the fulfilment queue ----------------------------------------------------------------------


def test_bulk_advance_shows_each_rows_outcome(app: Flask, db: Database) -> None:
    _item(db, "mug", stock=10)
    earn(db, "alice", "o1", 100_000)
    first, second, third = _redeem_items(db, 3)
    for step in ("shipped", "delivered"):
        s.advance_fulfilment(db, program=PROGRAM, redemption=third, status=step, actor="t")
    client, token = _signed_in(app, "operations")
    queue = _text(client, "/admin/fulfilment/?status=issued")
    assert f'data-testid="row-{first}"' in queue and f'data-testid="row-{third}"' not in queue
    response = post(
        client,
        "/admin/fulfilment/advance?status=issued",
        token,
        ids=[str(first), str(second), str(third)],
        status="shipped",
    )
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "2 of 3 selected redemption(s) are now shipped; the others say why below." in body
    assert re.search(rf'outcome-{first}".*?now shipped', body, re.S)
    assert re.search(rf'outcome-{third}".*?not moved: [^<]*delivered', body, re.S)
    statuses = [s.get_redemption(db, program=PROGRAM, redemption=i).status for i in (first, second)]
    assert statuses == ["shipped", "shipped"]
    nothing = post(client, "/admin/fulfilment/advance", token, status="shipped")
    assert nothing.status_code == 400 and "select at least one" in nothing.get_data(True)


def test_the_queue_filters_by_reward_and_pages_newest_first(app: Flask, db: Database) -> None:
    _item(db, "mug", stock=100)
    _item(db, "pen", stock=100, points=1)
    earn(db, "alice", "o1", 1_000_000)
    ids = _redeem_items(db, 30)
    s.redeem_reward(
        db, program=PROGRAM, member="alice", reward="pen", idempotency_key="p", shipping=SHIP
    )
    client, _ = _signed_in(app, "admin")
    first = _text(client, "/admin/fulfilment/?reward=mug")
    rows = [int(x) for x in re.findall(r'data-testid="row-(\d+)"', first)]
    assert rows == sorted(ids, reverse=True)[:25]
    older = re.search(r'href="([^"]*cursor=\d+[^"]*)">Older', first)
    assert older
    rest = _text(client, older.group(1).replace("&amp;", "&"))
    assert [int(x) for x in re.findall(r'data-testid="row-(\d+)"', rest)] == sorted(ids)[:5][::-1]
    assert "Pen" not in first
    assert client.get("/admin/fulfilment/?status=lost").status_code == 400


def test_cancel_needs_a_reason_and_returns_points_and_stock(app: Flask, db: Database) -> None:
    _item(db, "mug", stock=5, points=300)
    earn(db, "alice", "o1", 100_000)
    [redemption] = _redeem_items(db, 1)
    client, token = _signed_in(app, "operations")
    post(
        client,
        "/admin/fulfilment/advance-one",
        token,
        id=str(redemption),
        status="packing",
        reason="box 7",
    )
    refused = post(client, "/admin/fulfilment/cancel", token, id=str(redemption), reason=" ")
    assert refused.status_code == 302
    page = _text(client, f"/admin/fulfilment/redemption?id={redemption}")
    assert "say why the redemption is cancelled" in page
    assert s.balance(db, program=PROGRAM, member="alice").available == 700
    post(client, "/admin/fulfilment/cancel", token, id=str(redemption), reason="out of glaze")
    page = _text(client, f"/admin/fulfilment/redemption?id={redemption}")
    assert f"Redemption {redemption} is cancelled: 300 points went back to alice" in page
    assert s.balance(db, program=PROGRAM, member="alice").available == 1000
    assert s.get_reward(db, program=PROGRAM, reward="mug").stock_left == 5
    events = re.search(r'data-testid="events">(.*?)</table>', page, re.S)
    assert events
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", events.group(1)))
    assert "2026-11-21 18:00 issued → packing operations box 7" in text  # 10:00 UTC in Shanghai
    assert "packing → cancelled operations out of glaze" in text
    assert "No. 1 Nanjing" not in page and "1 Nanjing Rd" in page and "Li Lei" in page
    again = post(client, "/admin/fulfilment/cancel", token, id=str(redemption), reason="twice")
    assert again.status_code == 302
    assert s.balance(db, program=PROGRAM, member="alice").available == 1000


def test_a_redemptions_page_shows_codes_vouchers_and_the_draw(app: Flask, db: Database) -> None:
    s.create_reward(
        db,
        program=PROGRAM,
        code="prize",
        kind="voucher",
        actor="t",
        terms={
            "name": "Voucher prize",
            "points": 1,
            "visible": False,
            "voucher_amount_minor": 500,
            "voucher_valid_days": 7,
        },
    )
    s.create_reward(
        db,
        program=PROGRAM,
        code="lucky",
        kind="draw",
        actor="t",
        terms={
            "name": "Lucky",
            "points": 10,
            "prizes": [{"reward": "prize", "chance_ppm": 1_000_000, "label": "five off"}],
        },
    )
    earn(db, "alice", "o1", 100_000)
    draw = s.redeem_reward(db, program=PROGRAM, member="alice", reward="lucky", idempotency_key="d")
    assert draw.draw and draw.prize
    client, _ = _signed_in(app, "operations")
    page = _text(client, f"/admin/fulfilment/redemption?id={draw.id}")
    assert draw.draw.seed in page and f"{draw.draw.value:,}" in page and "five off" in page
    assert "A draw cannot be cancelled" in page
    prize = _text(client, f"/admin/fulfilment/redemption?id={draw.prize.id}")
    assert draw.prize.vouchers[0].code in prize and "CNY 5.00" in prize
    assert f"redemption {draw.id}</a>" in prize
    member = _text(client, "/admin/members/member?id=alice")
    rewards = re.search(r'data-testid="member-rewards">(.*?)</table>', member, re.S)
    assert rewards and "Lucky" in rewards.group(1) and "won prize" in rewards.group(1)
    assert draw.prize.vouchers[0].code in rewards.group(1)
    viewer, _ = _signed_in(app, "viewer")
    seen = _text(viewer, "/admin/members/member?id=alice")
    assert "Voucher prize" in seen and "/admin/fulfilment/redemption" not in seen


def test_the_console_shows_the_member_pages_reward_pictures(app: Flask) -> None:
    client = app.test_client()
    picture = client.get("/m/static/rewards/mug.svg")
    assert picture.status_code == 200 and picture.mimetype == "image/svg+xml"
    assert b"<svg" in picture.data
    assert client.get("/m/static/rewards/none.svg").status_code == 404
    assert client.get("/m/static/rewards/../member.css").status_code == 404
