"""A member's history lines in the console's language.

The services say why each line of a member's history happened in English
(:func:`loyalty.services.queries.describe`, from the operation's stored result), which is what
the API and the SDK return. A Chinese page says the same in Chinese: the English line is
recognised by the very templates ``describe`` fills (its operation, step and entry words are
imported from it, so the two cannot drift apart; ``tests/unit/test_history_words.py`` feeds
every one of them through), and its parts (order ids, names, reasons) are kept as they are.
A line no template explains is shown in English.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from flask import Flask
from flask_babel import gettext, lazy_gettext

from admin.i18n import CHINESE, current_locale
from loyalty.services.queries import ENTRY_WORDS, OPERATION_WORDS, STEP_WORDS

_: Callable[..., str] = gettext
_l: Callable[..., Any] = lazy_gettext

# The Chinese of :data:`OPERATION_WORDS`, :data:`STEP_WORDS` and :data:`ENTRY_WORDS`, as
# gettext messages with the same placeholders.
OPERATION_MESSAGES = {
    "hold": _l("points held for order %(order)s"),
    "capture": _l("points spent on order %(order)s"),
    "release": _l("hold of order %(order)s released"),
    "hold_timeout": _l("hold of order %(order)s timed out"),
    "refund": _l("refund %(id)s of order %(order)s"),
    "refund_succeeded": _l("refund %(id)s of order %(order)s succeeded"),
    "refund_failed": _l("refund %(id)s of order %(order)s failed"),
    "dispute": _l("dispute %(id)s of order %(order)s"),
    "dispute_lost": _l("dispute %(id)s of order %(order)s lost"),
    "dispute_won": _l("dispute %(id)s of order %(order)s won"),
    "expire": _l("points expired"),
    "clear": _l("year-end clearing"),
    "mature": _l("pending points became available"),
}
STEP_MESSAGES = {
    "freeze": _l("points frozen"),
    "reverse": _l("frozen points taken back"),
    "release": _l("frozen points given back"),
    "deduct": _l("taken from other points"),
    "debt": _l("left as debt"),
    "return": _l("redeemed points given back"),
}
ENTRY_MESSAGES = {"debt_repay": _l("repaid debt"), "transfer_fee": _l("transfer fee")}


def _pattern(template: str) -> re.Pattern[str]:
    """A template of ``describe`` (``refund {id} of order {order}``) as a regular expression."""
    parts = re.split(r"\{(\w+)\}", template)
    body = "".join(f"(?P<{part}>.+?)" if i % 2 else re.escape(part) for i, part in enumerate(parts))
    return re.compile(body + r"\Z")


_HEADLINES: list[tuple[re.Pattern[str], Callable[[dict[str, str]], str]]] = [
    (
        re.compile(r"purchase, order (?P<order>.+)\Z"),
        lambda m: _("purchase, order %(order)s", **m),
    ),
    (re.compile(r"transfer from (?P<who>.+)\Z"), lambda m: _("transfer from %(who)s", **m)),
    (re.compile(r"transfer to (?P<who>.+)\Z"), lambda m: _("transfer to %(who)s", **m)),
    (
        re.compile(r"adjustment by (?P<actor>[^:]+): (?P<reason>.+)\Z"),
        lambda m: _("adjustment by %(actor)s: %(reason)s", **m),
    ),
    (
        re.compile(r"adjustment by (?P<actor>[^:]+)\Z"),
        lambda m: _("adjustment by %(actor)s", **m),
    ),
    (
        re.compile(r"adjustment: (?P<reason>.+)\Z"),
        lambda m: _("adjustment: %(reason)s", **m),
    ),
    (re.compile(r"adjustment\Z"), lambda m: _("adjustment")),
    (
        re.compile(
            r"reward (?P<name>.+?)(?P<quantity> ×\d+)?, redemption (?P<id>\S+) cancelled"
            r"(?:: (?P<reason>.+))?\Z"
        ),
        lambda m: _reward(m, cancelled=True),
    ),
    (
        re.compile(r"reward (?P<name>.+?)(?P<quantity> ×\d+)?, redemption (?P<id>\S+)\Z"),
        lambda m: _reward(m, cancelled=False),
    ),
    *(
        (_pattern(template), lambda m, kind=kind: str(OPERATION_MESSAGES[kind]) % m)
        # the longest first: ``refund {id} of order {order}`` would take ``… succeeded`` too
        for kind, template in sorted(OPERATION_WORDS.items(), key=lambda kv: -len(kv[1]))
    ),
    (
        re.compile(r"action \((?P<reference>.+)\)\Z"),
        lambda m: _("an action (%(reference)s)", **m),
    ),
    (
        re.compile(r"(?P<action>[^\s()]+) \((?P<reference>.+)\)\Z"),
        lambda m: _("action %(action)s (%(reference)s)", **m),
    ),
]


def _reward(m: dict[str, str], *, cancelled: bool) -> str:
    values = {"name": m["name"], "quantity": (m.get("quantity") or "").strip(), "id": m["id"]}
    what = _("reward %(name)s%(quantity)s, redemption %(id)s", **values)
    if not cancelled:
        return what
    if m.get("reason"):
        return _("%(what)s cancelled: %(reason)s", what=what, reason=m["reason"])
    return _("%(what)s cancelled", what=what)


def _suffixes() -> list[tuple[str, Any]]:
    steps = [(f": {words}", STEP_MESSAGES[step]) for step, words in STEP_WORDS.items()]
    entries = [(f": {words}", ENTRY_MESSAGES[kind]) for kind, words in ENTRY_WORDS.items()]
    return sorted(steps + entries, key=lambda pair: -len(pair[0]))


def history_words(description: str) -> str:
    """A history line's description in the request's language (unchanged in English)."""
    if current_locale() != CHINESE or not description:
        return description
    headline, step = description, None
    for suffix, message in _suffixes():
        if description.endswith(suffix):
            headline, step = description[: -len(suffix)], str(message)
            break
    said = _headline(headline)
    if said is None:
        return description
    return _("%(what)s: %(step)s", what=said, step=step) if step else said


def _headline(text: str) -> str | None:
    for pattern, say in _HEADLINES:
        found = pattern.match(text)
        if found is not None:
            return say({k: v for k, v in found.groupdict().items() if v is not None})
    return None


def init_history_words(app: Flask) -> None:
    """``history_words`` in every template."""
    app.jinja_env.globals.update(history_words=history_words)
