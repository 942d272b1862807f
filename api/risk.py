# mypy: disallow-untyped-decorators=False
"""`/v1` risk control (风控), scope ``risk``: the program's risk rules (read with their
sentences in English and Chinese, publish a new version, list the versions), the cases the
risk job opens (list, read with their evidence, assign, resolve), a member's account freeze
(账户冻结) and risk hold, and a scan run now. Each calls the same service as the SDK, the
console and the CLI (:mod:`loyalty.services.risk_rules`, :mod:`loyalty.services.risk_cases`,
:mod:`loyalty.services.risk_scan`); changes are audited as ``api:<the key's label>``. Member
tokens reach none of it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from flask.views import MethodView

from api import schemas
from api.auth import server_key
from api.context import database, end_request_unit, in_unit
from api.problems import JifenBlueprint
from loyalty import services as core
from loyalty.domain.checks import require_member_id
from loyalty.errors import NotFound
from loyalty.services.api_keys import ApiKeyInfo
from loyalty.services.results import MemberInfo
from loyalty.services.risk_cases import RiskCaseInfo, RiskCasePage
from loyalty.services.risk_rules import RiskRulesInfo
from loyalty.services.risk_scan import RiskScanResult

blp = JifenBlueprint("risk", __name__, url_prefix="/v1", description="Risk control (风控)")
RISK = "risk"
ACTOR_LENGTH = 120
ALL_STATUSES = "all"


def _doc() -> Any:
    return blp.doc(security=[{"serverKey": [RISK]}])


def _key() -> ApiKeyInfo:
    return server_key(RISK)


def _actor(key: ApiKeyInfo) -> str:
    return f"api:{key.label}"[:ACTOR_LENGTH]


def _rule_set(rules: Any) -> Any:
    """The service's ``{"rules": [...]}`` from the body's list; the object form as GET
    answers it is passed on as sent (the service checks either)."""
    return rules if isinstance(rules, Mapping) else {"rules": rules}


def _member(member: str) -> str:
    """The member id of the path, checked before it reaches a query."""
    return require_member_id(member)


# --- rules ----------------------------------------------------------------------------------


@blp.route("/risk/rules")
class RiskRules(MethodView):
    @blp.arguments(schemas.RiskRulesArgs(), location="query")
    @blp.response(200, schemas.RiskRules)
    @_doc()
    def get(self, args: dict[str, Any]) -> RiskRulesInfo:
        """The risk rules in force (or version `version`), each explained in one sentence
        in English (`sentences`) and Chinese (`sentences_zh`) (scope `risk`). A program that
        never published risk rules is 404 `not_found`."""
        program = _key().program
        found = core.risk_rules(database(), program=program, version=args["version"])
        if found is None:
            raise NotFound(
                f"program {program} has no risk rules; publish them with PUT /v1/risk/rules",
                program=program,
            )
        return found

    @blp.arguments(schemas.PublishRiskRulesIn())
    @blp.response(200, schemas.RiskRules)
    @_doc()
    def put(self, body: dict[str, Any]) -> RiskRulesInfo:
        """Publish a new version of the risk rules, in force at once, audited (scope
        `risk`). A bad rule is 400 `invalid_rule` naming it, and nothing is published."""
        key = _key()
        return in_unit(
            lambda uow: core.publish_risk_rules(
                uow,
                program=key.program,
                rules=_rule_set(body["rules"]),
                note=body.get("note"),
                actor=_actor(key),
            )
        )


@blp.route("/risk/rules/versions")
class RiskRuleVersions(MethodView):
    @blp.response(200, schemas.RiskRules(many=True))
    @_doc()
    def get(self) -> list[RiskRulesInfo]:
        """Every published version of the risk rules, newest first (scope `risk`)."""
        return core.risk_rule_versions_of(database(), program=_key().program)


# --- cases ----------------------------------------------------------------------------------


@blp.route("/risk/cases")
class RiskCases(MethodView):
    @blp.arguments(schemas.RiskCasesArgs(), location="query")
    @blp.response(200, schemas.RiskCases)
    @_doc()
    def get(self, args: dict[str, Any]) -> RiskCasePage:
        """The program's cases, the most recently tripped first (scope `risk`): `open`
        ones unless `status` says otherwise (`all`: every status), of one `rule` and
        `member` when given. `total` counts them all; pass `offset` for the next page."""
        status = None if args["status"] == ALL_STATUSES else args["status"]
        return core.list_risk_cases(
            database(),
            program=_key().program,
            status=status,
            rule_id=args["rule"],
            member=args["member"],
            limit=args["limit"],
            offset=args["offset"],
        )


@blp.route("/risk/cases/<int:case_id>")
class RiskCase(MethodView):
    @blp.response(200, schemas.RiskCase)
    @_doc()
    def get(self, case_id: int) -> RiskCaseInfo:
        """One case with its evidence: the operations that tripped the rule (newest first,
        at most 50), the rule's figures and the points the member holds (scope `risk`)."""
        return core.risk_case(database(), program=_key().program, case_id=case_id)


@blp.route("/risk/cases/<int:case_id>/assign")
class AssignRiskCase(MethodView):
    @blp.arguments(schemas.AssignRiskCaseIn())
    @blp.response(200, schemas.RiskCase)
    @_doc()
    def post(self, body: dict[str, Any], case_id: int) -> RiskCaseInfo:
        """Give the case to a person (`null`: to nobody), audited (scope `risk`)."""
        key = _key()
        return in_unit(
            lambda uow: core.assign_risk_case(
                uow,
                program=key.program,
                case_id=case_id,
                assignee=body["assignee"],
                actor=_actor(key),
            )
        )


@blp.route("/risk/cases/<int:case_id>/resolve")
class ResolveRiskCase(MethodView):
    @blp.arguments(schemas.ResolveRiskCaseIn())
    @blp.response(200, schemas.RiskCase)
    @_doc()
    def post(self, body: dict[str, Any], case_id: int) -> RiskCaseInfo:
        """Close an open case with a note, in one audited unit of work (scope `risk`):
        `release` makes the member's held points available and lifts the hold (unless
        another hold case is open), `reverse` does that and deducts `points` (by default
        the points held), `dismiss` closes it as a false alarm, releasing like `release`.
        A case already closed is 409 `risk_case_closed`."""
        key = _key()
        return in_unit(
            lambda uow: core.resolve_risk_case(
                uow,
                program=key.program,
                case_id=case_id,
                outcome=body["outcome"],
                note=body["note"],
                points=body.get("points"),
                actor=_actor(key),
            )
        )


# --- members --------------------------------------------------------------------------------


def _freezing(change: Callable[..., MemberInfo], member: str, reason: Any) -> MemberInfo:
    """Freeze or unfreeze ``member`` (``change``) with ``reason``, as the key's actor."""
    key = _key()
    member = _member(member)
    return in_unit(
        lambda uow: change(
            uow, program=key.program, member=member, reason=reason, actor=_actor(key)
        )
    )


@blp.route("/members/<path:member>/freeze")
class FreezeMember(MethodView):
    @blp.arguments(schemas.FreezeIn())
    @blp.response(200, schemas.Member)
    @_doc()
    def post(self, body: dict[str, Any], member: str) -> MemberInfo:
        """Freeze the member's account (账户冻结), with the reason, audited (scope `risk`):
        status `suspended`, no earning, spending or transfers (`member_frozen`); balances
        are kept, refunds and disputes of past orders still apply."""
        return _freezing(core.freeze_member, member, body["reason"])


@blp.route("/members/<path:member>/unfreeze")
class UnfreezeMember(MethodView):
    @blp.arguments(schemas.FreezeIn())
    @blp.response(200, schemas.Member)
    @_doc()
    def post(self, body: dict[str, Any], member: str) -> MemberInfo:
        """Lift the account freeze, with the reason, audited (scope `risk`)."""
        return _freezing(core.unfreeze_member, member, body["reason"])


@blp.route("/members/<path:member>/release-hold")
class ReleaseMemberHold(MethodView):
    @blp.arguments(schemas.ReleaseHoldIn())
    @blp.response(200, schemas.Released)
    @_doc()
    def post(self, body: dict[str, Any], member: str) -> dict[str, int]:
        """Lift the member's risk hold outside a case: the points held become available
        (answered as `released`); the hold cases stay as they are. Audited (scope `risk`)."""
        key = _key()
        released = in_unit(
            lambda uow: core.release_member_hold(
                uow,
                program=key.program,
                member=_member(member),
                note=body["note"],
                actor=_actor(key),
            )
        )
        return {"released": released}


# --- the scan -------------------------------------------------------------------------------


@blp.route("/risk/scan")
class ScanRisk(MethodView):
    @blp.response(200, schemas.RiskScan)
    @_doc()
    def post(self) -> RiskScanResult:
        """Evaluate the program's `flag` and `hold` rules now, as the risk job does every
        minute (scope `risk`): rules evaluated, subjects over a limit, cases opened, added
        to, reopened, and members put on hold. Safe to run twice."""
        program = _key().program
        end_request_unit(commit=True)  # the scan commits in transactions of its own
        return core.scan_risk(database(), program=program)
