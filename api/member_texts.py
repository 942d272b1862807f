"""The member page's words in its two languages, Simplified Chinese (``zh``) and English (``en``),
and the choice between them.

A small table keyed by message id, both languages side by side, instead of gettext catalogues:
two languages do not need a compile step at install time, and a test checks that every message
(and every history kind the ledger can write) has both. ``{name}`` fields are filled with
:meth:`str.format`; the templates escape the result.

The language comes from ``?lang=zh|en``, else from ``Accept-Language`` read tag by tag in order
of preference with :meth:`babel.Locale.parse` (any Chinese tag, ``zh-CN``, ``zh-Hans``,
``zh-TW``…, is Chinese), else English. Werkzeug's ``best_match`` would answer ``en`` to a
typical Chinese browser's ``zh-CN,zh;q=0.9,en;q=0.5``, because ``zh-CN`` matches neither
``zh`` nor ``en`` exactly.
"""

from __future__ import annotations

from typing import NamedTuple

from babel import Locale, UnknownLocaleError
from werkzeug.datastructures import LanguageAccept

LANGUAGES = ("zh", "en")
DEFAULT_LANGUAGE = "en"

# What each language is called in <html lang> and by babel's number and date formats.
HTML_LANG = {"zh": "zh-CN", "en": "en"}
BABEL_LOCALE = {"zh": "zh_Hans_CN", "en": "en"}


class Text(NamedTuple):
    """One message in both languages."""

    zh: str
    en: str


PAGE = {
    "title": Text("我的积分", "My points"),
    "member": Text("会员 {member}", "Member {member}"),
    "available": Text("可用积分", "Available points"),
    "worth": Text("结账时最多可抵 {money}", "Worth up to {money} at checkout"),
    "pending": Text("待到账", "Pending"),
    "frozen": Text("已冻结", "Frozen"),
    "held": Text("订单占用", "Reserved for orders"),
    "pending_hint": Text("退货期结束后到账", "Available after the return period"),
    "frozen_hint": Text("退款处理期间暂时冻结", "Set aside while a refund is processed"),
    "held_hint": Text("下单时暂时占用", "Set aside for an order in progress"),
    "debt": Text(
        "您有 {points} 积分欠款（退款扣回了已使用的积分），新获得的积分将优先抵扣。",
        "You owe {points} points (a refund took back points you had already used). "
        "New points pay this off first.",
    ),
    "expiring_title": Text("即将过期", "Expiring soon"),
    "expiring_points": Text("{points} 积分", "{points} points"),
    "expiring_until": Text("有效期至 {date}", "Use by {date}"),
    "expiring_none": Text(
        "未来 {days} 天内没有积分过期。", "No points expire in the next {days} days."
    ),
    "history_title": Text("积分明细", "Activity"),
    "history_empty": Text("暂无记录。", "No activity yet."),
    "history_older": Text("查看更早的记录", "Older activity"),
    "history_latest": Text("返回最新记录", "Back to the latest"),
    "times_in": Text("时间均为{zone}。", "Times are in {zone}."),
    "switch_language": Text("English", "中文"),
    "points_word": Text("积分", "points"),
    "detail_order": Text("订单号：{order}", "Order {order}"),
    "detail_from": Text("来自：{who}", "From {who}"),
    "detail_to": Text("转给：{who}", "To {who}"),
    "detail_reason": Text("原因：{reason}", "Reason: {reason}"),
    "detail_action": Text("奖励项目：{action}", "For: {action}"),
    "expired_title": Text("链接已失效", "This link has expired"),
    "expired_body": Text(
        "为了保护您的账户，积分链接只在短时间内有效。请向商家索取新的链接，"
        "或从商家网站的会员页面重新打开。",
        "To keep your account safe, points links only work for a short time. Ask the shop "
        "for a new one, or open your points again from your account on the shop's site.",
    ),
    "error_title": Text("暂时无法显示您的积分", "We can't show your points right now"),
    "error_body": Text("请稍后再试，或联系商家。", "Please try again later, or contact the shop."),
}

# One phrase per history item kind (the ledger's entry kinds, see
# ``loyalty.domain.moves.ENTRY_KINDS``); an earn's phrase depends on whether a purchase or an
# action earned it (``*_action``).
KINDS = {
    "earn": Text("购物获得积分", "Points for a purchase"),
    "earn_action": Text("奖励积分", "Bonus points"),
    "earn_pending": Text("购物积分（待到账）", "Points for a purchase (pending)"),
    "earn_pending_action": Text("奖励积分（待到账）", "Bonus points (pending)"),
    "transfer_in": Text("收到转赠的积分", "Points received"),
    "adjust_grant": Text("商家补发积分", "Points added by the shop"),
    "debt_repay": Text("抵扣积分欠款", "Paid off points owed"),
    "mature": Text("积分已到账", "Points became available"),
    "hold": Text("下单占用积分", "Points set aside for an order"),
    "capture": Text("订单使用积分", "Points used for an order"),
    "release": Text("订单占用的积分已退回", "Set-aside points returned"),
    "expire": Text("积分已过期", "Points expired"),
    "clear": Text("年末积分清零", "Year-end points clearing"),
    "expire_returned": Text("退回的积分已过期", "Returned points had already expired"),
    "transfer_out": Text("转赠积分", "Points sent"),
    "transfer_fee": Text("转赠手续费", "Transfer fee"),
    "adjust_deduct": Text("商家扣减积分", "Points deducted by the shop"),
    "refund_freeze": Text("申请退款：积分已冻结", "Refund requested: points frozen"),
    "refund_reverse": Text("退款完成：积分已扣回", "Refund completed: points taken back"),
    "refund_release": Text("退款未完成：积分已解冻", "Refund did not go through: points unfrozen"),
    "refund_deduct": Text("退款：从其他积分中扣回", "Refund: taken from your other points"),
    "refund_debt": Text("退款：计入积分欠款", "Refund: points owed"),
    "refund_return": Text("退款：已使用的积分退回", "Refund: points you used came back"),
    "dispute_freeze": Text("支付争议：积分已冻结", "Payment disputed: points frozen"),
    "dispute_reverse": Text(
        "支付争议结案：积分已扣回", "Payment dispute settled: points taken back"
    ),
    "dispute_release": Text("支付争议结案：积分已解冻", "Payment dispute settled: points unfrozen"),
    "dispute_deduct": Text(
        "支付争议：从其他积分中扣回", "Payment dispute: taken from your other points"
    ),
    "dispute_debt": Text("支付争议：计入积分欠款", "Payment dispute: points owed"),
}
UNKNOWN_KIND = Text("积分变动", "Points changed")


def page_text(language: str, message: str, **fields: object) -> str:
    """The page's ``message`` in ``language``, its ``{fields}`` filled in."""
    text: str = getattr(PAGE[message], language)
    return text.format(**fields) if fields else text


def kind_text(language: str, kind: str) -> str:
    """What a history item of ``kind`` was, in ``language`` (a kind added to the ledger later
    than this table reads as a plain "points changed" rather than its code)."""
    text: str = getattr(KINDS.get(kind, UNKNOWN_KIND), language)
    return text


def choose_language(override: str | None, accept: LanguageAccept) -> str:
    """``zh`` or ``en``: ``override`` (``?lang=``) if it names one, else the first language of
    ``Accept-Language`` (best first) that is Chinese or English, else English."""
    if override in LANGUAGES:
        return override
    for tag, quality in sorted(accept, key=lambda pair: -pair[1]):
        if quality <= 0 or tag == "*":
            continue
        language = _language_of(tag)
        if language in LANGUAGES:
            return language
    return DEFAULT_LANGUAGE


def _language_of(tag: str) -> str | None:
    """The language of a BCP 47 tag; an unknown region or variant (``en-XX``) still names
    its language."""
    tag = tag.replace("_", "-")
    for candidate in (tag, tag.split("-", 1)[0]):
        try:
            return Locale.parse(candidate, sep="-").language
        except (UnknownLocaleError, ValueError, TypeError):
            continue
    return None
