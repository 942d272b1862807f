"""Jobs: the last runs of each sweep with their figures and errors, "run now", and the
forecast of what will expire or be cleared, by week (a bad ``days`` or ``page`` is refused
beside its field, the page still shown). Operations and admin run; everyone reads."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, request, url_for
from flask.typing import ResponseReturnValue
from markupsafe import Markup

from admin.auth import OPERATIONS, actor, has_role, require_role
from admin.charts import Series, bar_chart
from admin.views.base import ConsoleView, expose, flash_error, number_arg, page_number
from loyalty import jobs
from loyalty.db.database import Database
from loyalty.errors import InvalidInput, LoyaltyError
from loyalty.jobs.specs import console_jobs
from loyalty.services import audit
from loyalty.services.console_queries import ForecastWeek, ForecastWeeks, forecast_weeks
from loyalty.services.results import ProgramInfo

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
    return "on " + " & ".join(day[5:] for day in week.dates)


def forecast_chart(ahead: ForecastWeeks) -> Markup:
    """The forecast's weeks as stacked bars, every week of the horizon (empty ones too)."""
    weeks = ahead.weeks
    return bar_chart(
        f"Points that will expire or be cleared, by week, next {ahead.days:,} days",
        [week_label(w) for w in weeks],
        [
            Series("expire", [w.expiring for w in weeks], "#e5a52c"),
            Series("clear", [w.clearing for w in weeks], "#d9534f"),
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
            spec = jobs.job_spec(name)  # the error names the known jobs
            if not spec.console:
                raise InvalidInput(f"job {name!r} cannot be run from the console")
            params: dict[str, Any] = {}
            if "program" in spec.param_names:  # it runs for the console's program
                params["program"] = program.code
            if self.console.redis_url:
                from loyalty.jobs.rq import enqueue

                queued = enqueue(
                    name, params=params, redis_url=self.console.redis_url, trigger="console"
                )
                message = f"{name}: {queued.message} ({queued.job_id})"
            else:
                done = jobs.run_job(db, name, trigger="console", **params)
                message = f"{name} ran: {done.items:,} items, {done.points:,} points, {done.status}"
        except LoyaltyError as exc:
            flash_error(exc)
            return redirect(url_for(".index"))
        except Exception as exc:  # the run is recorded as failed with its traceback
            flash(f"{name} failed: {exc}. The run's error is below.", "error")
            return redirect(url_for(".index"))
        audit(
            db,
            actor=actor(),
            action="job.run",
            target=f"job {name}",
            program=program.code,
            after={"job": name, "result": message},
        )
        flash(message, "success")
        return redirect(url_for(".index"))
