"""CSV exports of members, lots and ledger entries (operations and admin).

Each export is streamed: rows are read with a server-side cursor (``stream_results``,
``yield_per``) and written out a chunk at a time by a generator, so a million rows never sit
in memory. Every export is recorded in the audit log, with the filter of a members export.

Every time in every file is in the program's time zone with its offset
(``2026-12-03T14:05:00+08:00``), as the console shows times. The members export takes the
members list's filter (:func:`admin.views.members.member_filter`, from the same query
arguments), so "Export these members" is the list, every page of it, in its order.

The files are UTF-8 with a byte order mark, so Excel opens Chinese text right. Text cells
that a spreadsheet would read as a formula (starting with ``=``, ``+``, ``-``, ``@``, a tab,
a carriage return or a line feed, or their full-width forms) are written with a single quote
in front, as OWASP recommends against CSV injection; numbers stay numbers (``-30`` is written
as it is).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from flask import Response, stream_with_context
from flask.typing import ResponseReturnValue
from flask_babel import LazyString
from flask_babel import lazy_gettext as _l

from admin.auth import OPERATIONS, actor
from admin.views.base import ConsoleView, expose
from admin.views.members import request_member_filter
from loyalty.services import audit
from loyalty.services.console_queries import (
    EXPORT_HEADERS,
    ExportName,
    ExportRows,
    MemberFilter,
    export_rows,
)

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


def stream_csv(header: Sequence[str], chunks: Iterator[ExportRows]) -> Iterator[str]:
    """CSV text of ``header`` and the rows of ``chunks``, a chunk at a time, behind a UTF-8 BOM."""
    yield BOM
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    for chunk in chunks:
        writer.writerows([csv_cell(v) for v in row] for row in chunk)
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue()


@dataclass(frozen=True)
class ExportWords:
    """What the export page says about one file: its title and what it holds."""

    title: LazyString
    what: LazyString


EXPORTS: dict[ExportName, ExportWords] = {
    "members": ExportWords(_l("Members"), _l("every member with their balances")),
    "lots": ExportWords(_l("Point lots"), _l("every lot with its buckets and expiry")),
    "ledger": ExportWords(_l("Ledger entries"), _l("every ledger entry with its operation key")),
}


class ExportView(ConsoleView):
    """Download links and the streamed CSV files."""

    read_roles = OPERATIONS

    @expose("/")
    def index(self) -> ResponseReturnValue:
        return self.render("jifen/export.html", exports=EXPORTS)

    def _send(self, name: ExportName, criteria: MemberFilter | None = None) -> Response:
        program = self.program()
        db = self.console.db
        after: dict[str, Any] = {"export": name}
        if criteria is not None:
            after["filter"] = criteria.to_record()
        audit(
            db,
            actor=actor(),
            action="export.csv",
            target=f"{name}.csv",
            program=program.code,
            after=after,
        )
        stamp = db.clock.now().strftime("%Y%m%d-%H%M")
        filename = f"jifen-{program.code}-{name}-{stamp}.csv"
        chunks = export_rows(db, program=program.code, name=name, chunk=CHUNK, criteria=criteria)
        return Response(
            stream_with_context(stream_csv(EXPORT_HEADERS[name], chunks)),
            mimetype="text/csv",
            headers={
                "Content-Disposition": f'attachment; filename="{filename}"',
                "Cache-Control": "no-store",
            },
        )

    @expose("/members.csv")
    def members_csv(self) -> ResponseReturnValue:
        """The members the list's filter keeps (every member without one); a filter value
        the list would refuse is refused here too (400), before anything is written."""
        program = self.program()
        return self._send("members", request_member_filter(program, self.console.db))

    @expose("/lots.csv")
    def lots_csv(self) -> ResponseReturnValue:
        return self._send("lots")

    @expose("/ledger.csv")
    def ledger_csv(self) -> ResponseReturnValue:
        return self._send("ledger")
