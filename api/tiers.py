# mypy: disallow-untyped-decorators=False
"""`/v1` member tiers: a member's tier, progress and tier history, manual changes and locks,
and the program's tier versions (publish, cancel) with the forecast of the next evaluations,
the preview of draft tiers and the distribution of members across tiers. Each calls the same
service as the SDK and the console; a member's own token may read that member's tier and
history, never change them."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from api import schemas
from api.auth import member_reader, server_key
from api.context import database, in_unit, request_target
from api.problems import JifenBlueprint
from api.responses import idempotency_key, moment_in, written
from loyalty import services as core
from loyalty.errors import Conflict, NotFound
from loyalty.services.api_keys import ApiKeyInfo
from loyalty.services.tier_results import (
    TierChangeInfo,
    TierCount,
    TierForecast,
    TierProgress,
    TierVersionInfo,
)

blp = JifenBlueprint("tiers", __name__, url_prefix="/v1", description="Member tiers")
MEMBER_OR_KEY_READ = [{"serverKey": ["read"]}, {"memberToken": []}]
ACTOR_LENGTH = 120
MAX_VERSION = 2**31 - 1  # the largest number a tier version column holds


def _doc(scope: str) -> Any:
    return blp.doc(security=[{"serverKey": [scope]}])


def _actor(key: ApiKeyInfo, body: dict[str, Any]) -> Any:
    """Who a change is recorded as: the one the body names, else ``api:<key label>``."""
    return body.get("actor") or f"api:{key.label}"[:ACTOR_LENGTH]


def _require_tiers(program: str) -> None:
    """A program without tiers has no forecast nor distribution: 409, as for a manual
    change, with what to do."""
    if core.tiers_in_force(database(), program=program) is None:
        raise Conflict(f"program {program} has no tiers; publish tiers first", program=program)


@blp.route("/program/tiers")
class ProgramTiers(MethodView):
    @blp.response(200, schemas.TierVersion(many=True))
    @_doc("read")
    def get(self) -> list[TierVersionInfo]:
        """Every tier version, oldest first, without those cancelled (scope `read`)."""
        return core.list_tier_versions(database(), program=server_key("read").program)

    @blp.arguments(schemas.PublishTiersIn(), example={"rules": schemas.TIERS_EXAMPLE})
    @blp.response(201, schemas.TierVersion)
    @_doc("admin")
    def post(self, body: dict[str, Any]) -> TierVersionInfo:
        """Publish a tier version in force from `effective_from` (default now; never in the
        past) (scope `admin`). It must keep every tier members hold or are locked at (409
        names them): rename a tier instead of removing it."""
        key = server_key("admin")
        effective_from = moment_in(body, "effective_from")
        return in_unit(
            lambda uow: core.publish_tiers(
                uow,
                program=key.program,
                rules=body["rules"],
                effective_from=effective_from,
                created_by=_actor(key, {}),
            )
        )


@blp.route("/program/tiers/<int:version>/cancel")
class CancelTiers(MethodView):
    @blp.response(200, schemas.TierVersion)
    @_doc("admin")
    def post(self, version: int) -> TierVersionInfo:
        """Cancel a tier version before it takes effect (scope `admin`); one in force, or
        followed by a later version, is 409. Its number is never given again."""
        key = server_key("admin")
        if version > MAX_VERSION:  # no version has such a number
            raise NotFound(
                f"tier version {version:.0f} of program {key.program} does not exist",
                program=key.program,
            )
        return in_unit(
            lambda uow: core.cancel_tiers(
                uow, program=key.program, version=version, cancelled_by=_actor(key, {})
            )
        )


@blp.route("/program/tiers/forecast")
class TiersForecast(MethodView):
    @blp.arguments(schemas.TierForecastArgs(), location="query")
    @blp.response(200, schemas.TierForecast)
    @_doc("read")
    def get(self, args: dict[str, Any]) -> TierForecast:
        """What the evaluations due in the next `days` days would do if nobody earned more:
        members per tier, and how many would move up, down or keep their tier (scope
        `read`)."""
        program = server_key("read").program
        _require_tiers(program)
        return core.tier_forecast(database(), program=program, days=args["days"])


@blp.route("/program/tiers/preview")
class TiersPreview(MethodView):
    @blp.arguments(schemas.PreviewTiersIn(), example={"rules": schemas.TIERS_EXAMPLE})
    @blp.response(200, schemas.TierCount(many=True))
    @_doc("read")
    def post(self, body: dict[str, Any]) -> list[TierCount]:
        """How many members each tier of draft rules would hold by their measure now (scope
        `read`); writes nothing."""
        program = server_key("read").program
        return core.preview_tiers(request_target(), program=program, rules=body["rules"])


@blp.route("/program/tiers/distribution")
class TiersDistribution(MethodView):
    @blp.response(200, schemas.TierCount(many=True))
    @_doc("read")
    def get(self) -> list[TierCount]:
        """How many members hold each tier now (scope `read`)."""
        program = server_key("read").program
        _require_tiers(program)
        return core.tier_distribution(database(), program=program)


@blp.route("/members/<path:member>/tier")
class MemberTier(MethodView):
    @blp.response(200, schemas.TierProgress)
    @blp.doc(security=MEMBER_OR_KEY_READ)
    def get(self, member: str) -> TierProgress:
        """Where the member stands: the tier, the qualifying measure, what the next tier
        needs, what keeping the tier needs by its evaluation, and when that is (scope
        `read`, or the member's own token). Without tiers `tiers_enabled` is false."""
        program = member_reader(member)
        return core.tier_progress(database(), program=program, member=member)

    @blp.arguments(schemas.SetTierIn(), example=schemas.SET_TIER_EXAMPLE)
    @blp.response(201, schemas.TierChange)
    @_doc("admin")
    def post(self, body: dict[str, Any], member: str) -> Any:
        """Put the member at a tier by hand, with a reason (scope `admin`); with
        `locked_until`, also hold them at that tier or above until then. A retry with the
        same `change_id` (or `Idempotency-Key`) answers the first change; the same key for
        another change is `idempotency_conflict`."""
        key = server_key("admin")
        locked_until = moment_in(body, "locked_until")
        result = in_unit(
            lambda uow: core.set_member_tier(
                uow,
                program=key.program,
                member=member,
                tier=body["tier"],
                reason=body["reason"],
                change_id=body["change_id"],
                actor=_actor(key, body),
                locked_until=locked_until,
                idempotency_key=idempotency_key(),
            )
        )
        return written(result, 201)


@blp.route("/members/<path:member>/tier/history")
class MemberTierHistory(MethodView):
    @blp.arguments(schemas.TierHistoryArgs(), location="query")
    @blp.response(200, schemas.TierChange(many=True))
    @blp.doc(security=MEMBER_OR_KEY_READ)
    def get(self, args: dict[str, Any], member: str) -> list[TierChangeInfo]:
        """The member's tier changes, newest first, evaluations that kept the tier included
        (scope `read`, or the member's own token)."""
        program = member_reader(member)
        return core.tier_history(database(), program=program, member=member, limit=args["limit"])
