"""The reward catalog (积分商城) in the console: every reward with its price, stock and what
it issued; creating one (coupon, voucher, item or draw), publishing a new version of its terms
now or at a local time, restocking, retiring and reinstating; filling a coupon's code pool
from a CSV file or with generated codes; and a reward's page with its redemptions per day over
30 days, its versions and its latest redemptions.

Every role reads; marketing and admin change. Every change is a call to
:mod:`loyalty.services.rewards`, which audits it. The page's words, flashes and the console's
own refusals are in the request's language; a service's refusal is shown as it comes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import abort, flash, redirect, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext
from werkzeug.datastructures import MultiDict

from admin import reward_form
from admin.auth import MARKETING, OPERATIONS, actor, has_role, require_role
from admin.charts import Series, bar_chart
from admin.error_words import error_text
from admin.formatting import points
from admin.reward_form import FormProblems
from admin.reward_words import TEMPLATE_WORDS, kind_word
from admin.rules_form import from_local, to_local
from admin.views.base import ConsoleView, expose, search_arg
from loyalty.domain.rewards import DEFAULT_ALPHABET, KINDS, parse_code_csv
from loyalty.errors import AlreadyExists, InvalidInput, LoyaltyError
from loyalty.services import (
    add_codes,
    create_reward,
    generate_reward_codes,
    get_reward,
    list_catalog,
    list_redemptions,
    publish_reward_terms,
    restock_reward,
    set_reward_retired,
)
from loyalty.services.console_queries import reward_daily_redemptions, reward_versions_of
from loyalty.services.reward_results import RewardInfo

# flask-babel is untyped: its gettext, typed.
_: Callable[..., str] = gettext

CHART_DAYS = 30
RECENT = 20
MAX_CSV_BYTES = 4 * 1024 * 1024
MAX_GENERATE = 100_000


def reward_status(info: RewardInfo) -> str:
    """``retired``, ``hidden`` or ``visible``."""
    if info.retired_at is not None:
        return "retired"
    return "visible" if info.terms.get("visible", True) else "hidden"


class RewardsView(ConsoleView):
    """The catalog, the create form and each reward's page."""

    # --- pages -------------------------------------------------------------------------------

    def _catalog(
        self, *, values: dict[str, Any] | None = None, problems: FormProblems | None = None
    ) -> str:
        program = self.program()
        db = self.console.db
        values = values or reward_form.blank_values()
        return str(
            self.render(
                "jifen/rewards.html",
                program=program,
                rewards=list_catalog(db, program=program.code),
                now=db.clock.now(),
                kinds=KINDS,
                values=values,
                no_prize=reward_form.no_prize_percent(values),
                problems=problems or FormProblems(),
                can_edit=has_role(*MARKETING),
                status_of=reward_status,
                window=lambda terms: reward_form.local_window(terms, program.timezone),
                window_state=reward_form.window_state,
                **TEMPLATE_WORDS,
            )
        )

    def _reward_page(
        self,
        code: str,
        *,
        values: dict[str, Any] | None = None,
        problems: FormProblems | None = None,
        form: str = "",
    ) -> str:
        program = self.program()
        db = self.console.db
        info = get_reward(db, program=program.code, reward=code)
        days = reward_daily_redemptions(db, program, reward=code, days=CHART_DAYS)
        chart = bar_chart(
            _(
                "Units of %(name)s redeemed per day, last %(days)s days",
                name=info.terms.get("name", code),
                days=CHART_DAYS,
            ),
            [d.day[5:] for d in days],
            [
                Series(_("redeemed"), [d.redeemed - d.cancelled for d in days], "#2c7be5"),
                Series(_("cancelled"), [d.cancelled for d in days], "#d9534f"),
            ],
            stacked=True,
        )
        if values is None:
            values = reward_form.form_values(
                info.terms, kind=info.kind, tz=program.timezone, currency=program.currency
            )
        return str(
            self.render(
                "jifen/reward.html",
                program=program,
                reward=info,
                status=reward_status(info),
                window=reward_form.local_window(info.terms, program.timezone),
                window_state=reward_form.window_state(info.terms, db.clock.now()),
                chart=chart,
                days=days,
                versions=reward_versions_of(db, program=program.code, reward=code),
                recent=list_redemptions(db, program=program.code, reward=code, limit=RECENT),
                now=db.clock.now(),
                values=values,
                no_prize=reward_form.no_prize_percent(values),
                problems=problems or FormProblems(),
                open_form=form,
                percent=reward_form.percent,
                alphabet=DEFAULT_ALPHABET,
                can_edit=has_role(*MARKETING),
                can_operate=has_role(*OPERATIONS),
                local_input=lambda value: to_local(value, program.timezone),
                limit_words=reward_form.limit_words,
                **TEMPLATE_WORDS,
            )
        )

    @expose("/")
    def index(self) -> ResponseReturnValue:
        return self._catalog()

    @expose("/reward")
    def reward(self) -> ResponseReturnValue:
        code = search_arg("code", max_length=64)
        if not code:
            abort(404)
        return self._reward_page(code)

    # --- changes -----------------------------------------------------------------------------

    @expose("/create", methods=("POST",))
    def create(self) -> ResponseReturnValue:
        require_role(*MARKETING)
        program = self.program()
        form = request.form
        problems = FormProblems()
        kind = form.get("kind", "")
        if kind not in KINDS:
            kinds = ", ".join(kind_word(k) for k in KINDS)
            problems.fields["kind"] = _("choose a kind: %(kinds)s", kinds=kinds)
        terms = reward_form.terms_from_form(
            form, kind=kind, tz=program.timezone, currency=program.currency, problems=problems
        )
        stock = _stock(form, kind, problems)
        if not problems:
            try:
                created = create_reward(
                    self.console.db,
                    program=program.code,
                    code=form.get("code", ""),
                    kind=kind,
                    terms=terms,
                    stock=stock,
                    actor=actor(),
                )
            except AlreadyExists as exc:
                problem = error_text(exc).rstrip("。")
                problems.fields["code"] = _("%(problem)s; choose another code", problem=problem)
            except LoyaltyError as exc:
                problems.add(exc)
            else:
                flash(_created_message(created), "success")
                return redirect(url_for(".reward", code=created.code))
        return self._catalog(values=reward_form.raw_values(form), problems=problems), 400

    @expose("/publish", methods=("POST",))
    def publish(self) -> ResponseReturnValue:
        require_role(*MARKETING)
        program = self.program()
        db = self.console.db
        form = request.form
        code = form.get("code", "")
        info = get_reward(db, program=program.code, reward=code)
        problems = FormProblems()
        terms = reward_form.terms_from_form(
            form, kind=info.kind, tz=program.timezone, currency=program.currency, problems=problems
        )
        start = None
        try:
            start = from_local(form.get("effective_from", ""), program.timezone, "effective from")
        except LoyaltyError:
            problems.fields["effective_from"] = reward_form.not_a_moment(
                _("effective from"), form.get("effective_from", "")
            )
        if not problems:
            try:
                done = publish_reward_terms(
                    db,
                    program=program.code,
                    reward=info.code,
                    terms=terms,
                    effective_from=start,
                    actor=actor(),
                )
            except LoyaltyError as exc:
                problems.add(exc)
            else:
                flash(_published_message(done, start, program.timezone), "success")
                return redirect(url_for(".reward", code=done.code))
        values = reward_form.raw_values(form)
        return self._reward_page(info.code, values=values, problems=problems, form="publish"), 400

    @expose("/restock", methods=("POST",))
    def restock(self) -> ResponseReturnValue:
        return self._change("restock", self._restock)

    @expose("/retire", methods=("POST",))
    def retire(self) -> ResponseReturnValue:
        return self._change("retire", self._retire)

    @expose("/codes/import", methods=("POST",))
    def import_codes(self) -> ResponseReturnValue:
        return self._change("import", self._import_codes)

    @expose("/codes/generate", methods=("POST",))
    def generate_codes(self) -> ResponseReturnValue:
        return self._change("generate", self._generate_codes)

    def _change(self, form_name: str, change: Any) -> ResponseReturnValue:
        """Run one of the small forms of a reward's page: on success back to the page with
        what was done; on a refusal the page again with the problem beside its field."""
        require_role(*MARKETING)
        program = self.program()
        code = request.form.get("code", "")
        info = get_reward(self.console.db, program=program.code, reward=code)
        problems = FormProblems()
        try:
            message = change(program.code, info)
        except LoyaltyError as exc:
            problems.add(exc)
            return self._reward_page(info.code, problems=problems, form=form_name), 400
        flash(message, "success")
        return redirect(url_for(".reward", code=info.code))

    def _restock(self, program: str, info: RewardInfo) -> str:
        quantity = _whole(request.form, "quantity", _("the quantity to add"))
        done = restock_reward(
            self.console.db, program=program, reward=info.code, quantity=quantity, actor=actor()
        )
        return _(
            "Added %(quantity)s to %(code)s: %(left)s left to issue.",
            quantity=points(quantity),
            code=done.code,
            left=points(done.stock_left or 0),
        )

    def _retire(self, program: str, info: RewardInfo) -> str:
        retired = request.form.get("retired") == "1"
        done = set_reward_retired(
            self.console.db, program=program, reward=info.code, retired=retired, actor=actor()
        )
        if retired:
            return _(
                "%(code)s is retired: members no longer see or redeem it; its redemptions stay "
                "as they are.",
                code=done.code,
            )
        return _("%(code)s is back in the catalog.", code=done.code)

    def _import_codes(self, program: str, info: RewardInfo) -> str:
        upload = request.files.get("codes_file")
        if upload is None or not upload.filename:
            raise InvalidInput(_("choose a CSV file of codes to import"), field="codes_file")
        data = upload.stream.read(MAX_CSV_BYTES + 1)
        if len(data) > MAX_CSV_BYTES:
            raise InvalidInput(
                _("the file is larger than %(size)s bytes; split it", size=points(MAX_CSV_BYTES)),
                field="codes_file",
            )
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidInput(
                _("the file is not UTF-8 text; export the CSV as UTF-8"), field="codes_file"
            ) from exc
        try:
            codes = parse_code_csv(text)
            done = add_codes(
                self.console.db, program=program, reward=info.code, codes=codes, actor=actor()
            )
        except LoyaltyError as exc:
            raise InvalidInput(exc.message, field="codes_file") from exc
        return _(
            "Imported %(count)s codes into %(code)s: %(free)s free to issue.",
            count=points(len(codes)),
            code=done.code,
            free=points(done.codes_free),
        )

    def _generate_codes(self, program: str, info: RewardInfo) -> str:
        form = request.form
        count = _whole(form, "count", _("how many codes"))
        if count > MAX_GENERATE:
            raise InvalidInput(
                _("generate at most %(count)s codes at once", count=points(MAX_GENERATE)),
                field="count",
            )
        length = _whole(form, "length", _("the length"))
        done = generate_reward_codes(
            self.console.db,
            program=program,
            reward=info.code,
            count=count,
            length=length,
            alphabet=form.get("alphabet", "").strip() or DEFAULT_ALPHABET,
            prefix=form.get("prefix", "").strip(),
            actor=actor(),
        )
        return _(
            "Generated %(count)s codes into %(code)s: %(free)s free to issue.",
            count=points(count),
            code=done.code,
            free=points(done.codes_free),
        )


def _whole(form: MultiDict[str, str], name: str, label: str) -> int:
    raw = form.get(name, "").strip().replace(",", "")
    if not raw.isdigit() or len(raw) > 18 or int(raw) < 1:
        raise InvalidInput(
            _("%(what)s must be a whole number of 1 or more", what=label), field=name
        )
    return int(raw)


def _stock(form: MultiDict[str, str], kind: str, problems: FormProblems) -> int | None:
    """The create form's stock: blank is no limit (a coupon's stock is its code pool)."""
    raw = form.get("stock", "").strip().replace(",", "")
    if not raw or kind == "coupon":
        if raw and kind == "coupon":
            problems.fields["stock"] = _(
                "a coupon's stock is its pool of codes: leave this blank, then import or "
                "generate codes on the reward's page"
            )
        return None
    if not raw.isdigit() or len(raw) > 18:
        problems.fields["stock"] = _("stock must be a whole number of 0 or more (blank: no limit)")
        return None
    return int(raw)


def _created_message(info: RewardInfo) -> str:
    if info.kind == "coupon":
        return _(
            "Created coupon %(code)s. Its pool is empty: import or generate codes below before "
            "members can redeem it.",
            code=info.code,
        )
    stock = (
        _("no stock limit")
        if info.stock_left is None
        else _("%(count)s in stock", count=points(info.stock_left))
    )
    return _(
        "Created %(kind)s %(code)s at %(points)s points, %(stock)s.",
        kind=kind_word(info.kind),
        code=info.code,
        points=points(info.terms["points"]),
        stock=stock,
    )


def _published_message(info: RewardInfo, start: Any, tz: str) -> str:
    if start is None:
        return _(
            "Published version %(version)s of %(code)s, in force now.",
            version=info.version,
            code=info.code,
        )
    version = max([info.version, *(v for v, _start in info.scheduled)])
    when = to_local(start, tz).replace("T", " ")
    return _(
        "Published version %(version)s of %(code)s, in force from %(start)s (%(zone)s).",
        version=version,
        code=info.code,
        start=when,
        zone=tz,
    )
