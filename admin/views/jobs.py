"""Jobs: the last runs of each sweep with their figures and errors, "run now", and the
forecast of what will expire or be cleared, by week (a bad ``days`` or ``page`` is refused
beside its field, the page still shown). Operations and admin run; everyone reads.

The page speaks the request's language: each job by its word and what it does
(:mod:`admin.job_words`), who started a run, the chart and the flashes. A run's result is
audited in English, as the CLI and the logs word it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import flash, redirect, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext
from markupsafe import Markup

from admin.auth import OPERATIONS, actor, has_role, require_role
from admin.charts import Series, bar_chart
from admin.formatting import points
from admin.job_words import job_summary, job_word, trigger_word
from admin.views.base import ConsoleView, expose, flash_error, number_arg, page_number
from admin.words import status_word
from loyalty import jobs
from loyalty.db.database import Database
from loyalty.errors import InvalidInput, LoyaltyError
from loyalty.jobs.specs import console_jobs
from loyalty.services import audit
from loyalty.services.console_queries import ForecastWeek, ForecastWeeks, forecast_weeks
from loyalty.services.results import ProgramInfo

# flask-babel is untyped: its gettext, typed.
_: Callable[..., str] = gettext

FORECAST_DAYS = 90
MAX_FORECAST_DAYS = 366


def week_label(week: ForecastWeek) -> str:
    """A week's bar label: its first and last local dates on two lines (``01-27``/``02-02``)."""
    if week.first == week.last:
        return week.first.strftime("%m-%d")
    return f"{week.first:%m-%d}\n{week.last:%m-%d}"


def week_note(week: ForecastWeek) -> str:
    """What is written above a week's bar: the last usable days its points fall on, as the
    forecast's rows show them ("on 01-31"), when there are one or two; blank otherwise."""
    if not week.dates or len(week.dates) > 2:
        return ""
    return _("on %(days)s", days=_(" & ").join(day[5:] for day in week.dates))


def forecast_chart(ahead: ForecastWeeks) -> Markup:
    """The forecast's weeks as stacked bars, every week of the horizon (empty ones too)."""
    weeks = ahead.weeks
    return bar_chart(
        _(
            "Points that will expire or be cleared, by week, next %(days)s days",
            days=points(ahead.days),
        ),
        [week_label(w) for w in weeks],
        [
            Series(job_word("expire"), [w.expiring for w in weeks], "#e5a52c"),
            Series(job_word("clear"), [w.clearing for w in weeks], "#d9534f"),
        ],
        stacked=True,
        max_labels=20,
        notes=[week_note(w) for w in weeks],
    )


def _forecast(db: Database, program: ProgramInfo) -> tuple[ForecastWeeks, InvalidInput | None]:
    """The forecast ``?days=`` and ``?page=`` ask for; when one is refused, the first page
    of the default horizon (or of the days asked, if those were fine) and the refusal, which
    the page shows beside the field instead of leaving the console."""
    try:
        days = number_arg("days", minimum=1, maximum=MAX_FORECAST_DAYS) or FORECAST_DAYS
    except InvalidInput as exc:
        return forecast_weeks(db, program, days=FORECAST_DAYS), exc
    try:
        return forecast_weeks(db, program, days=days, page=page_number()), None
    except InvalidInput as exc:
        return forecast_weeks(db, program, days=days), exc


class JobsView(ConsoleView):
    """Job runs from ``job_runs`` and the expiry forecast."""

    @expose("/")
    def index(self) -> ResponseReturnValue:
        program = self.program()
        db = self.console.db
        runs = jobs.last_runs(db, limit_per_job=5)
        by_job = {name: [r for r in runs if r.job == name] for name in jobs.JOB_NAMES}
        ahead, refused = _forecast(db, program)
        days_refused = refused is not None and refused.details.get("field") == "days"
        html = self.render(
            "jifen/jobs.html",
            program=program,
            specs=[jobs.JOBS[n] for n in jobs.JOB_NAMES],
            job_word=job_word,
            job_summary=job_summary,
            trigger_word=trigger_word,
            by_job=by_job,
            runnable=console_jobs(),
            can_run=has_role(*OPERATIONS),
            queued=self.console.redis_url is not None,
            forecast=ahead,
            forecast_chart=forecast_chart(ahead),
            forecast_refused=refused.message if refused else "",
            days_refused=days_refused,
            days_text=request.args.get("days", "") if days_refused else str(ahead.days),
        )
        return html, 400 if refused else 200

    @expose("/run", methods=("POST",))
    def run(self) -> ResponseReturnValue:
        require_role(*OPERATIONS)
        name = request.form.get("job", "")
        program = self.program()
        db = self.console.db
        try:
            result, shown = self._run(name, program)
        except LoyaltyError as exc:
            flash_error(exc)
            return redirect(url_for(".index"))
        except Exception as exc:  # the run is recorded as failed with its traceback
            flash(
                _(
                    "%(job)s failed: %(error)s. The run's error is below.",
                    job=job_word(name),
                    error=exc,
                ),
                "error",
            )
            return redirect(url_for(".index"))
        audit(
            db,
            actor=actor(),
            action="job.run",
            target=f"job {name}",
            program=program.code,
            after={"job": name, "result": result},
        )
        flash(shown, "success")
        return redirect(url_for(".index"))

    def _run(self, name: str, program: ProgramInfo) -> tuple[str, str]:
        """Enqueue job ``name`` (with Redis) or run it here: what happened, in English for
        the audit log and in the request's language for the flash."""
        spec = jobs.job_spec(name)  # the error names the known jobs
        if not spec.console:
            raise InvalidInput(
                _("job %(name)s cannot be run from the console", name=repr(name)), field="job"
            )
        params: dict[str, Any] = {}
        if "program" in spec.param_names:  # it runs for the console's program
            params["program"] = program.code
        word = job_word(name)
        if self.console.redis_url:
            from loyalty.jobs.rq import enqueue

            queued = enqueue(
                name, params=params, redis_url=self.console.redis_url, trigger="console"
            )
            result = f"{name}: {queued.message} ({queued.job_id})"
            if queued.created:
                return result, _("%(job)s: queued (%(id)s)", job=word, id=queued.job_id)
            shown = _(
                "%(job)s: %(message)s (%(id)s)", job=word, message=queued.message, id=queued.job_id
            )
            return result, shown
        done = jobs.run_job(self.console.db, name, trigger="console", **params)
        result = f"{name} ran: {done.items:,} items, {done.points:,} points, {done.status}"
        shown = _(
            "%(job)s ran: %(items)s items, %(points)s points, %(status)s",
            job=word,
            items=points(done.items),
            points=points(done.points),
            status=status_word(done.status),
        )
        return result, shown
