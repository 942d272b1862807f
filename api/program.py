"""`/v1` reads (balance, history, forecast, the program, rules) and admin operations
(publish rules, run a sweep now)."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from api import schemas
from api.auth import member_reader, server_key
from api.context import context, database, end_request_unit, in_unit
from api.problems import JifenBlueprint
from loyalty import services as core
from loyalty.errors import InvalidInput
from loyalty.jobs.rq import submit
from loyalty.jobs.specs import job_spec
from loyalty.services.audit import publish_rules_audited
from loyalty.services.forecast import forecast
from loyalty.services.results import Balance, Forecast, HistoryPage, ProgramInfo, RuleVersionInfo

blp = JifenBlueprint("program", __name__, url_prefix="/v1", description="Reads and operations")
MEMBER_OR_KEY = [{"serverKey": ["read"]}, {"memberToken": []}]


@blp.route("/members/<path:member>/balance")
class MemberBalance(MethodView):
    @blp.arguments(schemas.BalanceArgs(), location="query")
    @blp.response(200, schemas.Balance)
    @blp.doc(security=MEMBER_OR_KEY)
    def get(self, args: dict[str, Any], member: str) -> Balance:
        """The member's balances now and the points expiring within the window (scope
        `read`, or the member's own token)."""
        program = member_reader(member)
        return core.balance(
            database(),
            program=program,
            member=member,
            expiring_within_days=args["expiring_within_days"],
        )


@blp.route("/members/<path:member>/history")
class MemberHistory(MethodView):
    @blp.arguments(schemas.HistoryArgs(), location="query")
    @blp.response(200, schemas.HistoryPage)
    @blp.doc(security=MEMBER_OR_KEY)
    def get(self, args: dict[str, Any], member: str) -> HistoryPage:
        """A page of the member's history, newest first; pass `next_cursor` as `cursor`
        (scope `read`, or the member's own token)."""
        program = member_reader(member)
        return core.history(
            database(), program=program, member=member, limit=args["limit"], cursor=args["cursor"]
        )


@blp.route("/members/<path:member>/forecast")
class MemberForecast(MethodView):
    @blp.arguments(schemas.ForecastArgs(), location="query")
    @blp.response(200, schemas.Forecast)
    @blp.doc(security=MEMBER_OR_KEY)
    def get(self, args: dict[str, Any], member: str) -> Forecast:
        """What of the member's points will expire or be cleared in the next `days` days
        (scope `read`, or the member's own token)."""
        program = member_reader(member)
        return forecast(database(), program=program, days=args["days"], member=member)


@blp.route("/forecast")
class ProgramForecast(MethodView):
    @blp.arguments(schemas.ForecastArgs(), location="query")
    @blp.response(200, schemas.Forecast)
    @blp.doc(security=[{"serverKey": ["read"]}])
    def get(self, args: dict[str, Any]) -> Forecast:
        """What will expire or be cleared in the next `days` days, all members (`read`)."""
        program = server_key("read").program
        return forecast(database(), program=program, days=args["days"])


@blp.route("/program")
class Program(MethodView):
    @blp.response(200, schemas.Program)
    @blp.doc(security=[{"serverKey": ["read"]}])
    def get(self) -> ProgramInfo:
        """The key's program and its settings (scope `read`)."""
        return core.get_program(database(), server_key("read").program)


@blp.route("/rules")
class Rules(MethodView):
    @blp.response(200, schemas.RuleVersion(many=True))
    @blp.doc(security=[{"serverKey": ["read"]}])
    def get(self) -> list[RuleVersionInfo]:
        """Every published rule version, oldest first (scope `read`)."""
        return core.list_rule_versions(database(), program=server_key("read").program)

    @blp.arguments(schemas.PublishRulesIn())
    @blp.response(201, schemas.RuleVersion)
    @blp.doc(security=[{"serverKey": ["admin"]}])
    def post(self, body: dict[str, Any]) -> RuleVersionInfo:
        """Publish a new rule version, in force from `effective_from` (default now; never
        in the past), audited (scope `admin`)."""
        key = server_key("admin")
        return in_unit(
            lambda uow: publish_rules_audited(
                uow,
                program=key.program,
                rules=body["rules"],
                actor=f"api key {key.prefix}",
                effective_from=body.get("effective_from"),
            )
        )


@blp.route("/jobs/<string:job>")
class RunJob(MethodView):
    @blp.response(202, schemas.JobStarted)
    @blp.doc(security=[{"serverKey": ["admin"]}])
    def post(self, job: str) -> dict[str, Any]:
        """Run a sweep now (scope `admin`): `expire`, `mature`, `hold_timeouts`,
        `remind`, `clear`, `tiers` (the tier evaluations that are due) or `events`
        (dispatch and deliver webhooks, send reminder e-mails). Queued when Redis
        is configured, else run before the answer."""
        key = server_key("admin")
        spec = job_spec(job)
        if not spec.console:
            raise InvalidInput(f"the job {job!r} cannot be started over the API", field="job")
        params = {"program": key.program} if any(p.name == "program" for p in spec.params) else {}
        end_request_unit(commit=True)  # the job runs in transactions of its own
        started = submit(
            job, params=params, db=database(), redis_url=context().redis_url, trigger="api"
        )
        status = getattr(started, "status", "queued")
        return {"job": job, "status": status, "job_id": getattr(started, "job_id", None)}
