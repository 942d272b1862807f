"""What every console view needs: the database, the program it looks after, its settings."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app

from loyalty.db.database import Database
from loyalty.errors import ProgramNotFound
from loyalty.services import get_program
from loyalty.services.console_queries import first_program_code
from loyalty.services.results import ProgramInfo

EXTENSION = "jifen_console"


@dataclass
class Console:
    """The console's handle on Jifen: one database and one program.

    ``program_code`` None means the first program (by code) in the database, which is what a
    single-program deployment and the demo want.
    """

    db: Database
    program_code: str | None
    approval_threshold: int
    redis_url: str | None

    def program(self) -> ProgramInfo:
        """The program this console looks after; :class:`ProgramNotFound` if there is none."""
        code = self.program_code
        if code is None:
            code = first_program_code(self.db)
            if code is None:
                raise ProgramNotFound(
                    "there is no program in this database yet: create one with the SDK or "
                    "services (create_program), or start the demo with `jifen console --demo`"
                )
        return get_program(self.db, code)


def console() -> Console:
    """The console of the current app."""
    found: Console = current_app.extensions[EXTENSION]
    return found
