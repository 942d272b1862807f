"""The audit log of this console's program: its rule changes, adjustments, exports and
replays, and the console-wide account changes and sign-ins, newest first; never another
program's entries."""

from __future__ import annotations

from flask import request
from flask.typing import ResponseReturnValue

from admin.views.base import ConsoleView, expose, page_number
from loyalty.services import list_audit

PAGE = 50


class AuditView(ConsoleView):
    """Read-only list of audit entries with filters (every role)."""

    @expose("/")
    def index(self) -> ResponseReturnValue:
        action = request.args.get("action", "").strip() or None
        actor = request.args.get("actor", "").strip() or None
        target = request.args.get("target", "").strip() or None
        page = page_number()
        found = list_audit(
            self.console.db,
            program=self.program().code,
            limit=PAGE,
            offset=(page - 1) * PAGE,
            action=action,
            actor=actor,
            target=target,
        )
        return self.render(
            "jifen/audit.html",
            entries=found.items,
            total=found.total,
            page=page,
            pages=max(1, -(-found.total // PAGE)),
            filters={"action": action or "", "actor": actor or "", "target": target or ""},
        )
