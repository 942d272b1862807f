"""The demo data set: a program, members and weeks of orders, made through the services only.

:func:`fill_demo` is what ``jifen demo`` and ``jifen console --demo`` put in a fresh
database: the ``demo`` program (CNY, Asia/Shanghai, category ratios, actions, caps, pending
days and rolling expiry) with a ladder of four member tiers (普通, 银卡, 金卡, 钻石, with
earn multipliers and benefits) in force from the start, so members move up as they earn,
``member_count`` members and ``order_count`` orders spread evenly from the database clock's
time up to ``now``, some paid partly with points (held, then
captured or released), some with a daily sign-in. The sweeps run every 20 orders, as the
scheduled jobs would. Then the reward catalog (积分商城) opens: a coffee coupon with a
generated pool of codes, a ¥20 voucher, a tea mug with stock, a draw with two prizes (one of
them a hidden reward, only won), and the richest members redeem some of them, so the console's
catalog and fulfilment queue and the member page's rewards show something at once: mugs
shipped, packing, issued and cancelled. Risk control's typical rules are in force, and one
member who bought and returned a dozen orders in the last days has a case open and new points
held. The same seed gives the same data (except the coupon
codes and the vouchers' codes, drawn from the system's randomness as in production).
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

from loyalty import services as svc
from loyalty.db.database import Database
from loyalty.domain.clock import FixedClock
from loyalty.errors import InsufficientPoints, RewardLimit

DEMO_PROGRAM = "demo"
DEMO_CURRENCY = "CNY"
DEMO_RULES: dict[str, Any] = {
    "base_ratio": "1",
    "category_ratios": {"生鲜": "0.5", "数码": "2"},
    "sku_ratios": {"GIFT-CARD": "0"},
    "actions": {
        "sign_in": {"points": 5, "limit": 1, "period": "day"},
        "review": {"points": 20, "limit": 3, "period": "month"},
    },
    "caps": {"member_daily": 3000, "member_monthly": 20000, "program_daily": 200000},
    "pending_days": 7,
    "expiry": {"months": 3, "days": 0, "month_end": True},
}
DEMO_TIERS: dict[str, Any] = {
    "tiers": [
        {"code": "member", "name": "普通", "threshold": 0, "benefits": ["生日券"]},
        {
            "code": "silver",
            "name": "银卡",
            "threshold": 7_000,
            "multiplier": "1.2",
            "benefits": ["生日券", "包邮"],
        },
        {
            "code": "gold",
            "name": "金卡",
            "threshold": 12_000,
            "multiplier": "1.5",
            "benefits": ["包邮", "专属客服", "新品优先购"],
        },
        {
            "code": "diamond",
            "name": "钻石",
            "threshold": 18_000,
            "multiplier": "2",
            "benefits": ["包邮", "私人导购", "免费礼品包装"],
        },
    ],
    "measure": "points",
    "window": "rolling",
    "window_months": 12,
    "anchor": "upgrade",
    "period_months": 12,
    "grace_days": 30,
    "downgrade": "one",
    "on_reversal": "next_evaluation",
}
DEMO_CATEGORIES = ("生鲜", "数码", "服饰", "家居")


def demo_campaigns(now: dt.datetime) -> list[dict[str, Any]]:
    """The demo's campaigns, placed against ``now`` (local midnights in Shanghai): double
    points on 数码 and 服饰 for a week three weeks ago (双十二预热), and triple points on
    生鲜 every weekend of the last six weeks (周末生鲜), so analytics shows points by
    campaign with their bonus."""
    midnight = now.astimezone(ZoneInfo("Asia/Shanghai")).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    return [
        {
            "name": "双十二预热",
            "multiplier": "2",
            "categories": ["数码", "服饰"],
            "starts_at": (midnight - dt.timedelta(days=21)).isoformat(),
            "ends_at": (midnight - dt.timedelta(days=14)).isoformat(),
        },
        {
            "name": "周末生鲜",
            "multiplier": "3",
            "categories": ["生鲜"],
            "weekdays": [5, 6],
            "starts_at": (midnight - dt.timedelta(days=42)).isoformat(),
            "ends_at": midnight.isoformat(),
        },
    ]


# Members are known by Chinese names, as a shop in China keys them (a surname and a given
# name; a number is added past the combinations).
DEMO_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
DEMO_GIVEN_NAMES = (
    "芳",
    "伟",
    "娜",
    "敏",
    "静",
    "丽",
    "强",
    "磊",
    "洋",
    "艳",
    "勇",
    "军",
    "杰",
    "娟",
    "涛",
    "明",
    "超",
    "秀英",
    "霞",
    "平",
    "刚",
    "桂英",
    "小明",
    "婷",
    "浩然",
)
SWEEP_EVERY = 20  # orders between two runs of the sweeps

DemoProgress = Callable[[str, int, int], None]
"""Told ``(stage, done, total)`` as the demo fills: ``enrolling members``, ``recording orders``."""


def _no_progress(stage: str, done: int, total: int) -> None:
    """The default progress hook: nothing shown."""


def fill_demo(
    database: Database,
    clock: FixedClock,
    now: dt.datetime,
    member_count: int,
    order_count: int,
    rng: random.Random,
    on_progress: DemoProgress = _no_progress,
) -> None:
    """Create the demo program, its members and their orders up to ``now`` in ``database``.

    ``clock`` is the database's clock, set to where the orders start; it ends at ``now``.
    """
    svc.create_program(
        database,
        code=DEMO_PROGRAM,
        name="积分商城 Demo",
        currency=DEMO_CURRENCY,
        timezone="Asia/Shanghai",
        redeem_max_share_bp=3000,
        rules={**DEMO_RULES, "campaigns": demo_campaigns(now)},
    )
    svc.publish_tiers(database, program=DEMO_PROGRAM, rules=DEMO_TIERS, created_by=DEMO_STAFF)
    members = demo_member_names(member_count)
    _enrol(database, members, on_progress)
    step = (now - clock.now()) / (order_count + 1)
    for n in range(1, order_count + 1):
        clock.advance(step)
        _demo_order(database, rng, rng.choice(members), f"order-{n:06d}")
        if n % SWEEP_EVERY == 0:  # what the scheduled jobs do in production
            _sweep(database)
        on_progress("recording orders", n, order_count)
    clock.set(now)
    _sweep(database)
    fill_catalog(database, members)
    fill_risk(database, clock, now)
    run_scheduled_jobs(database)


def run_scheduled_jobs(database: Database) -> None:
    """Run every job on a fixed schedule once, as the worker would, so the console's health
    strip and jobs page start from runs recorded at the demo's ``now``."""
    from loyalty.jobs.runs import run_job
    from loyalty.jobs.schedule import fixed_crons

    for name, _cron in fixed_crons():
        run_job(database, name, trigger="demo")


# Risk control (风控) in the demo: the typical rule set, and one member who bought and
# returned a dozen orders in the last days, so the console shows a case with its evidence
# and a member whose new points are held.
DEMO_RISK_RULES: dict[str, Any] = {
    "rules": [
        {
            "id": "earn-burst",
            "kind": "velocity",
            "scope": "member",
            "measure": "earns",
            "limit": 20,
            "window": "hour",
            "action": "block",
        },
        {
            "id": "till-burst",
            "kind": "velocity",
            "scope": "location",
            "measure": "points",
            "limit": 200_000,
            "window": "day",
            "action": "flag",
        },
        {
            "id": "refund-farming",
            "kind": "farming",
            "refunded_percent": 50,
            "days": 30,
            "min_points": 500,
            "action": "hold",
        },
        {"id": "gift-ring", "kind": "transfer_ring", "senders": 5, "hours": 24, "action": "flag"},
        {
            "id": "new-member-inflow",
            "kind": "new_member_inflow",
            "points": 50_000,
            "days": 7,
            "action": "flag",
        },
        {
            "id": "issuance-spike",
            "kind": "issuance_spike",
            "window": "hour",
            "threshold": 6,
            "trailing_days": 28,
            "min_points": 10_000,
            "action": "flag",
        },
    ]
}
DEMO_FARMER = "member-farm"
DEMO_FARMING_ORDERS = 12


def fill_risk(database: Database, clock: FixedClock, now: dt.datetime) -> None:
    """Publish the demo's risk rules, let one member farm buy-and-refund orders over the
    last days, and run the risk scan: one case, the member's new points held."""
    svc.publish_risk_rules(
        database,
        program=DEMO_PROGRAM,
        rules=DEMO_RISK_RULES,
        actor=DEMO_STAFF,
        note="the typical rule set",
    )
    svc.enrol_member(database, program=DEMO_PROGRAM, external_id=DEMO_FARMER)
    clock.set(now - dt.timedelta(days=6))
    for n in range(1, DEMO_FARMING_ORDERS + 1):
        clock.advance(dt.timedelta(hours=11))
        order = f"farm-{n:03d}"
        svc.earn_purchase(
            database,
            program=DEMO_PROGRAM,
            member=DEMO_FARMER,
            order_id=order,
            currency=DEMO_CURRENCY,
            amount_minor=39_900,
            location="上海-静安店",
        )
        svc.refund_order(
            database,
            program=DEMO_PROGRAM,
            order_id=order,
            refund_id=f"re-{order}",
            amount_minor=39_900,
            currency=DEMO_CURRENCY,
            succeeded=True,
        )
    clock.set(now)
    svc.scan_risk(database, program=DEMO_PROGRAM)
    svc.earn_purchase(
        database,
        program=DEMO_PROGRAM,
        member=DEMO_FARMER,
        order_id="farm-held",
        currency=DEMO_CURRENCY,
        amount_minor=12_900,
        location="上海-静安店",
    )


def demo_member_names(count: int) -> list[str]:
    """``count`` distinct Chinese member names: 王芳, 李伟, …; after the 500 combinations,
    the same names with a number (王芳2, …)."""
    surnames, given = DEMO_SURNAMES, DEMO_GIVEN_NAMES
    # Surname i mod 20 with given name (i + i // 20) mod 25: 500 distinct, and neighbours differ.
    combos = [surnames[i % 20] + given[(i + i // 20) % 25] for i in range(20 * 25)]
    return [
        combos[i % len(combos)] + (str(i // len(combos) + 1) if i >= len(combos) else "")
        for i in range(count)
    ]


DEMO_STAFF = "demo"
DEMO_CATALOG: tuple[tuple[str, str, int | None, dict[str, Any]], ...] = (
    (
        "coffee",
        "coupon",
        None,
        {
            "name": "Free coffee 免费咖啡",
            "points": 300,
            "description": "Any size at any of our cafés. Show the code at the till.",
            "image_url": "/m/static/rewards/coffee.svg",
            "limits": {"day": 1},
        },
    ),
    (
        "voucher-20",
        "voucher",
        None,
        {
            "name": "¥20 off your next order",
            "points": 2000,
            "description": "Enter the voucher code at checkout; orders from ¥20.",
            "image_url": "/m/static/rewards/voucher.svg",
            "voucher_amount_minor": 2000,
            "voucher_valid_days": 30,
            "limits": {"month": 2},
        },
    ),
    (
        "tea-mug",
        "item",
        40,
        {
            "name": "Celadon tea mug 青瓷茶杯",
            "points": 1500,
            "description": "Hand-glazed, 350 ml. Shipped within 3 working days.",
            "image_url": "/m/static/rewards/mug.svg",
            "limits": {"lifetime": 2},
        },
    ),
    (
        "tea-sample",
        "item",
        25,
        {
            "name": "Tea tasting set 品鉴茶礼盒",
            "points": 1,
            "description": "Won in the lucky draw only.",
            "visible": False,
        },
    ),
    (
        "lucky-draw",
        "draw",
        None,
        {
            "name": "Lucky draw 积分抽奖",
            "points": 100,
            "description": "One in ten wins a tasting set, one in four a free coffee.",
            "image_url": "/m/static/rewards/draw.svg",
            "prizes": [
                {"reward": "tea-sample", "chance_ppm": 100_000, "label": "Tea tasting set"},
                {"reward": "coffee", "chance_ppm": 250_000, "label": "Free coffee"},
            ],
        },
    ),
)
DEMO_COUPON_CODES = 200
# What the richest members redeem, and where each item redemption ends up.
DEMO_REDEMPTIONS = (
    ("tea-mug", "shipped"),
    ("tea-mug", "cancelled"),
    ("tea-mug", "packing"),
    ("tea-mug", "issued"),
    ("coffee", "issued"),
    ("coffee", "issued"),
    ("voucher-20", "issued"),
)
DEMO_ADDRESS = {"name": "王小明", "phone": "138 0013 8000", "address": "上海市徐汇区漕溪北路 88 号"}


def fill_catalog(database: Database, members: list[str]) -> None:
    """The demo's reward catalog, and redemptions by the members with the most points."""
    for code, kind, stock, terms in DEMO_CATALOG:
        svc.create_reward(
            database,
            program=DEMO_PROGRAM,
            code=code,
            kind=kind,
            terms=terms,
            actor=DEMO_STAFF,
            stock=stock,
        )
    svc.generate_reward_codes(
        database,
        program=DEMO_PROGRAM,
        reward="coffee",
        count=DEMO_COUPON_CODES,
        prefix="CAFE-",
        length=8,
        actor=DEMO_STAFF,
    )
    richest = sorted(
        members,
        key=lambda m: -svc.balance(database, program=DEMO_PROGRAM, member=m).available,
    )
    for n, (reward, state) in enumerate(DEMO_REDEMPTIONS):
        turn = richest[n % len(richest) :] + richest[: n % len(richest)]
        _demo_redemption(database, turn, reward, state, n)


def _demo_redemption(
    database: Database, members: list[str], reward: str, state: str, n: int
) -> None:
    """The first of ``members`` who can afford ``reward`` redeems it (a small demo's members
    may have too few points: then nobody does), and it is moved to ``state``."""
    for k, member in enumerate(members):
        try:
            done = svc.redeem_reward(
                database,
                program=DEMO_PROGRAM,
                member=member,
                reward=reward,
                idempotency_key=f"demo-redemption-{n}-{k}",  # keys are ASCII; names are not
                shipping=DEMO_ADDRESS if reward == "tea-mug" else None,
            )
        except (InsufficientPoints, RewardLimit):
            continue
        _demo_fulfilment(database, done.id, state)
        return


def _demo_fulfilment(database: Database, redemption: int, state: str) -> None:
    if state == "cancelled":
        svc.cancel_redemption(
            database,
            program=DEMO_PROGRAM,
            redemption=redemption,
            reason="超出配送范围",
            actor=DEMO_STAFF,
        )
    elif state != "issued":
        svc.advance_fulfilment(
            database, program=DEMO_PROGRAM, redemption=redemption, status=state, actor=DEMO_STAFF
        )


# Mainland China mobile prefixes the demo's phone numbers start with.
DEMO_PHONE_PREFIXES = ("138", "139", "186", "150", "177")


def demo_phone(index: int) -> str:
    """The demo's ``index``-th member's phone: a mainland mobile number, the same every run
    (``+8613800138001`` for the first)."""
    prefix = DEMO_PHONE_PREFIXES[(index - 1) % len(DEMO_PHONE_PREFIXES)]
    return f"+86{prefix}0013{(8000 + index) % 10_000:04d}"


def _enrol(database: Database, members: list[str], on_progress: DemoProgress) -> None:
    for i, member in enumerate(members, 1):
        svc.enrol_member(
            database,
            program=DEMO_PROGRAM,
            external_id=member,
            email=f"{member}@example.com",
            phone=demo_phone(i),
        )
        on_progress("enrolling members", i, len(members))


def _sweep(database: Database) -> None:
    svc.mature_pending(database)
    svc.expire_holds(database)


def _demo_order(database: Database, rng: random.Random, member: str, order_id: str) -> None:
    lines: list[dict[str, Any]] = [
        {"amount_minor": rng.randrange(500, 60_000), "category": rng.choice(DEMO_CATEGORIES)}
        for _ in range(rng.randint(1, 3))
    ]
    total: int = sum(line["amount_minor"] for line in lines)
    paid_with_points = _maybe_pay_with_points(database, rng, member, order_id, total)
    svc.earn_purchase(
        database,
        program=DEMO_PROGRAM,
        member=member,
        order_id=order_id,
        currency=DEMO_CURRENCY,
        lines=lines,
        paid_with_points_minor=paid_with_points,
    )
    if rng.random() < 0.4:
        day = database.clock.now().date().isoformat()
        svc.earn_action(
            database, program=DEMO_PROGRAM, member=member, action="sign_in", reference=day
        )


def _maybe_pay_with_points(
    database: Database, rng: random.Random, member: str, order_id: str, total: int
) -> int:
    """Sometimes hold the most points the order allows, then capture (mostly) or release
    them; the discount paid with points (0 when none)."""
    quote = svc.quote_redemption(
        database,
        program=DEMO_PROGRAM,
        member=member,
        order_total_minor=total,
        currency=DEMO_CURRENCY,
    )
    if quote.max_points < 100 or rng.random() >= 0.3:
        return 0
    hold = svc.hold_points(
        database,
        program=DEMO_PROGRAM,
        member=member,
        order_id=order_id,
        points=quote.max_points,
        order_total_minor=total,
        currency=DEMO_CURRENCY,
    )
    if rng.random() < 0.9:
        svc.capture_hold(database, program=DEMO_PROGRAM, order_id=order_id)
        return hold.discount_minor
    svc.release_hold(database, program=DEMO_PROGRAM, order_id=order_id)
    return 0
