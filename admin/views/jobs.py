"""Jobs: the last runs of each sweep with their figures and errors, "run now", and the
forecast of what will expire or be cleared. Operations and admin run; everyone reads."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import flash, redirect, request, url_for
from flask.typing import ResponseReturnValue

from admin.auth import OPERATIONS, actor, has_role, require_role
from admin.charts import Series, bar_chart
from admin.views.base import ConsoleView, expose, flash_error, number_arg
from loyalty import jobs
from loyalty.errors import InvalidInput, LoyaltyError
from loyalty.jobs.specs import console_jobs
from loyalty.services import audit, forecast


class JobsView(ConsoleView):
    """Job runs from ``job_runs`` and the expiry forecast."""

    @expose("/")
    def index(self) -> ResponseReturnValue:
        program = self.program()
        db = self.console.db
        runs = jobs.last_runs(db, limit_per_job=5)
        by_job = {name: [r for r in runs if r.job == name] for name in jobs.JOB_NAMES}
        days = number_arg("days", minimum=0, maximum=999_999)
        days = 90 if days is None else min(max(days, 1), 366)
        ahead = forecast(db, program=program.code, days=days)
        start = db.clock.now().astimezone(dt.UTC).date()
        weeks: dict[str, list[int]] = {}
        for d in ahead.days:
            offset = (dt.date.fromisoformat(d.day) - start).days // 7
            label = (start + dt.timedelta(days=7 * max(offset, 0))).isoformat()[5:]
            week = weeks.setdefault(label, [0, 0])
            week[0] += d.expiring
            week[1] += d.clearing
        chart = bar_chart(
            f"Points that will expire or be cleared, by week, next {days} days",
            list(weeks),
            [
                Series("expire", [w[0] for w in weeks.values()], "#e5a52c"),
                Series("clear", [w[1] for w in weeks.values()], "#d9534f"),
            ],
            stacked=True,
        )
        return self.render(
            "jifen/jobs.html",
            program=program,
            specs=[jobs.JOBS[n] for n in jobs.JOB_NAMES],
            by_job=by_job,
            runnable=console_jobs(),
            can_run=has_role(*OPERATIONS),
            queued=self.console.redis_url is not None,
            forecast=ahead,
            forecast_days=days,
            forecast_chart=chart,
            top_items=sorted(ahead.items, key=lambda i: -i.points)[:20],
        )

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
