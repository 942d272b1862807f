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
    # the member's tier (a program with tiers): the card, and tier changes in the history
    "tier_title": Text("会员等级", "Member tier"),
    "tier_multiplier": Text("购物积分 {times} 倍", "{times}× points on purchases"),
    "tier_to_next_points": Text("还差 {amount} 积分升级{tier}", "{amount} points to {tier}"),
    "tier_to_next_money": Text(
        "再消费 {amount} 即可升级{tier}", "Spend {amount} more to reach {tier}"
    ),
    "tier_measured_points": Text(
        "已累计 {measure} / {threshold} 积分", "{measure} of {threshold} qualifying points"
    ),
    "tier_measured_money": Text(
        "已累计消费 {measure} / {threshold}", "{measure} of {threshold} qualifying spend"
    ),
    "tier_top": Text("您已是最高等级。", "You are at the top tier."),
    "tier_keep_points": Text(
        "{date}前再获得 {amount} 积分即可保住{tier}。",
        "Earn {amount} more points by {date} to keep {tier}.",
    ),
    "tier_keep_money": Text(
        "{date}前再消费 {amount} 即可保住{tier}。",
        "Spend {amount} more by {date} to keep {tier}.",
    ),
    "tier_kept": Text(
        "已满足保级条件，{date}后继续享有{tier}。",
        "You have done enough to keep {tier} after {date}.",
    ),
    "tier_lock": Text(
        "商家为您保留{tier}至 {date}。", "The shop keeps you at {tier} until {date}."
    ),
    "tier_benefits": Text("会员权益", "Your benefits"),
    "tier_up": Text("升级为{tier}", "Moved up to {tier}"),
    "tier_down": Text("降级为{tier}", "Moved down to {tier}"),
    "tier_kept_title": Text("保级成功：{tier}", "Kept {tier}"),
    "tier_guaranteed": Text("保留{tier}", "{tier} guaranteed"),
    "tier_set": Text("会员等级：{tier}", "Tier set to {tier}"),
    "tier_why_reached_points": Text(
        "累计积分达到 {measure}", "Qualifying points reached {measure}"
    ),
    "tier_why_reached_money": Text("累计消费达到 {measure}", "Qualifying spend reached {measure}"),
    "tier_why_review_points": Text(
        "定期评定：累计积分 {measure}", "Regular review: {measure} qualifying points"
    ),
    "tier_why_review_money": Text(
        "定期评定：累计消费 {measure}", "Regular review: {measure} qualifying spend"
    ),
    "tier_why_refund": Text("退款后重新评定", "Reviewed after a refund"),
    "tier_why_dispute": Text("支付争议后重新评定", "Reviewed after a payment dispute"),
    "tier_why_adjustment": Text(
        "商家调整积分后重新评定", "Reviewed after the shop adjusted your points"
    ),
    "tier_why_transfer": Text("收到转赠积分后重新评定", "Reviewed after points were sent to you"),
    "tier_why_manual": Text("由商家调整", "Changed by the shop"),
    "tier_why_lock": Text("商家保留至 {date}", "Kept by the shop until {date}"),
    # the rewards views: the catalog, redeeming, my rewards
    "tab_points": Text("我的积分", "My points"),
    "tab_rewards": Text("积分商城", "Rewards"),
    "tab_mine": Text("我的兑换", "My rewards"),
    "rewards_title": Text("积分商城", "Rewards"),
    "rewards_balance": Text("您有 {points} 积分可用", "You have {points} points to spend"),
    "rewards_empty": Text("商城里暂时没有礼品。", "There are no rewards to redeem yet."),
    "reward_price": Text("{points} 积分", "{points} points"),
    "reward_stock": Text("剩余 {count} 件", "{count} left"),
    "reward_voucher_value": Text(
        "价值 {money}，{days} 天内有效", "Worth {money}, valid for {days} days"
    ),
    "reward_draw_prizes": Text("奖品：{prizes}", "Prizes: {prizes}"),
    "kind_coupon": Text("优惠券", "Coupon"),
    "kind_voucher": Text("抵用券", "Voucher"),
    "kind_item": Text("实物礼品", "Gift"),
    "kind_draw": Text("积分抽奖", "Draw"),
    "quantity": Text("数量", "Quantity"),
    "ship_title": Text("收货地址", "Ship to"),
    "ship_name": Text("收货人", "Name"),
    "ship_phone": Text("手机号", "Phone"),
    "ship_address": Text("详细地址", "Address"),
    "ship_city": Text("城市（选填）", "City (optional)"),
    "ship_postcode": Text("邮编（选填）", "Postcode (optional)"),
    "redeem_button": Text("兑换", "Redeem"),
    "draw_button": Text("抽一次", "Draw"),
    "confirm_title": Text("确认兑换", "Confirm"),
    "confirm_question": Text(
        "用 {points} 积分兑换 {quantity} × {name}？",
        "Spend {points} points on {quantity} × {name}?",
    ),
    "confirm_balance": Text(
        "您现有 {available} 积分，兑换后剩余 {left} 积分。",
        "You have {available} points; {left} will be left.",
    ),
    "confirm_ship": Text("我们将寄送到：", "We will ship to:"),
    "confirm_button": Text("确认兑换", "Confirm and redeem"),
    "confirm_back": Text("返回积分商城", "Back to rewards"),
    "done_title": Text("兑换成功", "Redeemed"),
    "done_body": Text(
        "已使用 {points} 积分。兑换记录在“我的兑换”中随时可查。",
        "{points} points spent. You can find this under My rewards at any time.",
    ),
    "mine_title": Text("我的兑换", "My rewards"),
    "mine_empty": Text(
        "您还没有兑换过礼品。去积分商城看看吧。",
        "You have not redeemed any rewards yet. Have a look at the rewards.",
    ),
    "mine_older": Text("查看更早的兑换", "Older rewards"),
    "mine_latest": Text("返回最新兑换", "Back to the latest"),
    "mine_spent": Text("{quantity} 件 · {points} 积分", "Quantity {quantity} · {points} points"),
    "mine_redeemed_on": Text("兑换于 {when}", "Redeemed {when}"),
    "mine_codes": Text("券码", "Codes"),
    "mine_ship_to": Text("寄送至：{address}", "Ships to: {address}"),
    "voucher_line": Text("价值 {money}", "Worth {money}"),
    "voucher_active": Text("有效期至 {date}", "Use by {date}"),
    "voucher_used": Text("已在订单 {order} 中使用", "Used on order {order}"),
    "voucher_expired": Text("已于 {date} 过期", "Expired on {date}"),
    "voucher_cancelled": Text("已作废", "Cancelled"),
    "draw_won": Text("抽中了：{prize}", "You won: {prize}"),
    "draw_no_prize": Text("很遗憾，这次没有中奖。", "No prize this time."),
    "draw_ran_out": Text("抽中了 {prize}，但奖品已发完。", "You drew {prize}, but it had run out."),
    "state_issued": Text("已兑换", "Issued"),
    "state_issued_item": Text("待发货", "Order received"),
    "state_drawn": Text("已抽奖", "Drawn"),
    "state_packing": Text("打包中", "Being packed"),
    "state_shipped": Text("已发货", "Shipped"),
    "state_delivered": Text("已签收", "Delivered"),
    "state_cancelled": Text("已取消，积分已退回", "Cancelled, points returned"),
    "event_packing": Text("{when} 开始打包", "Packing started {when}"),
    "event_shipped": Text("{when} 已发货", "Shipped {when}"),
    "event_delivered": Text("{when} 已签收", "Delivered {when}"),
    "event_cancelled": Text("{when} 已取消", "Cancelled {when}"),
    "event_voucher_used": Text("{when} 在订单 {order} 中使用", "Used on order {order}, {when}"),
    "event_voucher_released": Text(
        "{when} 订单 {order} 退款，抵用券恢复可用",
        "Order {order} refunded {when}: the voucher can be used again",
    ),
    "reason_retired": Text("已下架", "No longer offered"),
    "reason_not_started": Text("{date} 开始兑换", "Opens on {date}"),
    "reason_ended": Text("兑换已结束", "No longer available"),
    "reason_hidden": Text("暂不开放兑换", "Not on offer"),
    "reason_tier": Text("仅限特定会员等级", "For members of certain tiers only"),
    "reason_out_of_stock": Text("已兑完", "Out of stock"),
    "reason_limit_day": Text("今日兑换次数已达上限，明天再来", "Daily limit reached: try tomorrow"),
    "reason_limit_month": Text(
        "本月兑换次数已达上限，下月再来", "Monthly limit reached: try next month"
    ),
    "reason_limit_lifetime": Text("您已达到兑换上限", "You have redeemed as many as allowed"),
    "reason_min_balance": Text(
        "积分余额需至少 {points} 才能兑换", "Needs a balance of at least {points} points"
    ),
    "reason_insufficient_points": Text("还差 {points} 积分", "You need {points} more points"),
    "problem_out_of_stock": Text(
        "抱歉，{name} 剩余数量不足，未扣除积分。请减少数量或选择其他礼品。",
        "Sorry, there are not enough of {name} left. No points were taken: try a smaller "
        "quantity or another reward.",
    ),
    "problem_limit": Text(
        "{name} 已达到兑换上限，未扣除积分。",
        "You reached the limit for {name}. No points were taken.",
    ),
    "problem_points": Text(
        "积分不足：{name} 需要 {needed} 积分，您有 {available} 积分。",
        "Not enough points: {name} needs {needed} points and you have {available}.",
    ),
    "problem_unavailable": Text(
        "{name} 现在无法兑换：{why}。", "{name} cannot be redeemed now: {why}."
    ),
    "problem_gone": Text(
        "这件礼品已不在商城中，请选择其他礼品。",
        "This reward is no longer in the catalog. Please choose another one.",
    ),
    "problem_quantity": Text(
        "请填写 1 到 {most} 之间的数量。", "Enter a quantity from 1 to {most}."
    ),
    "problem_shipping": Text(
        "请填写收货人、手机号和详细地址，我们才能寄送。",
        "Fill in the name, phone and address so we can ship it to you.",
    ),
    "problem_used_form": Text(
        "这张表单已经提交过了。请重新打开积分商城再兑换。",
        "This form was already sent. Open the rewards again to redeem once more.",
    ),
    "form_refused_title": Text("无法完成兑换", "This form cannot be used"),
    "form_refused_body": Text(
        "兑换表单已失效或并非来自本页面，未扣除积分。请重新打开积分商城。",
        "The form has expired or did not come from this page, so nothing was redeemed. "
        "Open the rewards again from the shop.",
    ),
    "not_found_title": Text("找不到这条兑换记录", "We can't find this reward"),
    "not_found_body": Text(
        "请从“我的兑换”中打开您的兑换记录。", "Open your rewards from My rewards."
    ),
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
    "reward_spend": Text("兑换礼品", "Points spent on a reward"),
    "reward_return": Text("兑换已取消：积分退回", "Reward cancelled: points returned"),
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
