"""The audit log of this console's program: its rule changes, adjustments, exports and
replays, and the console-wide account changes and sign-ins, newest first; never another
program's entries. Rule changes (``rules.*``) read in words with local times, their raw
values one click away."""

from __future__ import annotations

from flask.typing import ResponseReturnValue

from admin.rules_words import audit_words
from admin.views.base import ConsoleView, expose, page_number, search_arg
from loyalty.services import list_audit

PAGE = 50


class AuditView(ConsoleView):
    """Read-only list of audit entries with filters (every role)."""

    @expose("/")
    def index(self) -> ResponseReturnValue:
        action = search_arg("action") or None
        actor = search_arg("actor") or None
        target = search_arg("target") or None
        page = page_number()
        program = self.program()
        found = list_audit(
            self.console.db,
            program=program.code,
            limit=PAGE,
            offset=(page - 1) * PAGE,
            action=action,
            actor=actor,
            target=target,
        )
        return self.render(
            "jifen/audit.html",
            entries=found.items,
            words={
                e.id: audit_words(
                    e.action, e.before, e.after, currency=program.currency, tz=program.timezone
                )
                for e in found.items
            },
            total=found.total,
            page=page,
            pages=max(1, -(-found.total // PAGE)),
            filters={"action": action or "", "actor": actor or "", "target": target or ""},
        )
