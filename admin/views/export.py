"""CSV exports of members, lots and ledger entries (operations and admin).

Each export is streamed: rows are read with a server-side cursor (``stream_results``,
``yield_per``) and written out a chunk at a time by a generator, so a million rows never sit
in memory. Every export is recorded in the audit log.

The files are UTF-8 with a byte order mark, so Excel opens Chinese text right. Text cells
that a spreadsheet would read as a formula (starting with ``=``, ``+``, ``-``, ``@``, a tab,
a carriage return or a line feed, or their full-width forms) are written with a single quote
in front, as OWASP recommends against CSV injection; numbers stay numbers (``-30`` is written
as it is).
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import io
from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal
from typing import Any

from flask import Response, stream_with_context
from flask.typing import ResponseReturnValue
from sqlalchemy import Row, Select, select

from admin.auth import OPERATIONS, actor
from admin.views.base import ConsoleView, expose
from loyalty.db.database import Database
from loyalty.db.tables import entries, lots, members, operations
from loyalty.domain.calendar import last_usable_day
from loyalty.services import audit
from loyalty.services.ledger import program_row

CHUNK = 1000
BOM = "\ufeff"
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def csv_cell(value: Any) -> Any:
    """``value`` as a CSV cell: numbers as they are, times in ISO 8601, text that could start
    a formula behind a single quote."""
    if value is None:
        return ""
    if isinstance(value, int | float | Decimal):
        return value
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


Derived = tuple[str, Callable[[Row[Any]], Any]]


def stream_csv(
    db: Database, header: list[str], query: Select[Any], derived: Sequence[Derived] = ()
) -> Iterator[str]:
    """CSV text for ``query``'s rows, a chunk of rows at a time, behind a UTF-8 BOM.

    ``derived`` adds columns computed from each row: a name and a function of the row.
    """
    yield BOM
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header + [name for name, _ in derived])
    with db.read(streaming=True) as conn:
        result = conn.execution_options(stream_results=True, yield_per=CHUNK).execute(query)
        for chunk in result.partitions(CHUNK):
            for row in chunk:
                cells = [*row, *(derive(row) for _, derive in derived)]
                writer.writerow([csv_cell(v) for v in cells])
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def _last_day(row: Row[Any], *, tz: str) -> dt.date | None:
    """The last local day a lot's points can be used, as people read an expiry."""
    return None if row.expires_at is None else last_usable_day(row.expires_at, tz)


EXPORTS: dict[str, str] = {
    "members": "every member with their balances",
    "lots": "every lot with its buckets and expiry",
    "ledger": "every ledger entry with its operation key",
}


class ExportView(ConsoleView):
    """Download links and the streamed CSV files."""

    read_roles = OPERATIONS

    @expose("/")
    def index(self) -> ResponseReturnValue:
        return self.render("jifen/export.html", exports=EXPORTS)

    def _send(self, name: str, columns: list[Any], derived: Sequence[Derived] = ()) -> Response:
        program = self.program()
        db = self.console.db
        with db.read() as conn:
            program_id = program_row(conn, program.code).id
        query = self._query(name, columns, program_id)
        audit(
            db,
            actor=actor(),
            action="export.csv",
            target=f"{name}.csv",
            program=program.code,
            after={"export": name},
        )
        stamp = db.clock.now().strftime("%Y%m%d-%H%M")
        filename = f"jifen-{program.code}-{name}-{stamp}.csv"
        return Response(
            stream_with_context(stream_csv(db, [c.name for c in columns], query, derived)),
            mimetype="text/csv",
            headers={
                "Content-Disposition": f'attachment; filename="{filename}"',
                "Cache-Control": "no-store",
            },
        )

    @staticmethod
    def _query(name: str, columns: list[Any], program_id: int) -> Select[Any]:
        if name == "members":
            return select(*columns).where(members.c.program_id == program_id).order_by(members.c.id)
        if name == "lots":
            return (
                select(*columns)
                .join(members, members.c.id == lots.c.member_id)
                .where(lots.c.program_id == program_id)
                .order_by(lots.c.id)
            )
        return (
            select(*columns)
            .join(members, members.c.id == entries.c.member_id)
            .join(operations, operations.c.id == entries.c.operation_id)
            .where(entries.c.program_id == program_id)
            .order_by(entries.c.id)
        )

    @expose("/members.csv")
    def members_csv(self) -> ResponseReturnValue:
        c = members.c
        return self._send(
            "members",
            [
                c.external_id,
                c.email,
                c.stripe_customer_id,
                c.status,
                c.available,
                c.pending,
                c.held,
                c.frozen,
                c.debt,
                c.lifetime_earned,
                c.created_at,
            ],
        )

    @expose("/lots.csv")
    def lots_csv(self) -> ResponseReturnValue:
        c = lots.c
        return self._send(
            "lots",
            [
                c.id,
                members.c.external_id.label("member"),
                c.points,
                c.available,
                c.pending,
                c.held,
                c.frozen,
                c.earned_at,
                c.matures_at,
                c.expires_at,
                c.expired_at,
            ],
            [("last_day", functools.partial(_last_day, tz=self.program().timezone))],
        )

    @expose("/ledger.csv")
    def ledger_csv(self) -> ResponseReturnValue:
        c = entries.c
        return self._send(
            "ledger",
            [
                c.id,
                c.created_at,
                members.c.external_id.label("member"),
                c.kind,
                c.lot_id,
                operations.c.key.label("operation"),
                c.available_delta,
                c.pending_delta,
                c.held_delta,
                c.frozen_delta,
                c.debt_delta,
            ],
        )
