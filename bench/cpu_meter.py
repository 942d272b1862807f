"""CPU time spent by each part of a benchmark run: Python, PostgreSQL, the load client.

On a shared, noisy machine requests per second move with whatever else runs; the CPU time a
request costs moves much less. :class:`CpuMeter` reads (Linux ``/proc``) the CPU time of

* ``python``: this process and the server's worker processes (children of ``server_pid``);
* ``postgres``: the client backends connected to the benchmark's database (from
  ``pg_stat_activity``; not autovacuum, the checkpointer or the WAL writer, whose work
  lands on no request in particular; nothing when PostgreSQL runs on another machine);
* ``client``: the child processes this one waited for (``wrk``), from ``getrusage``;

so a side's figure can say how many milliseconds of CPU one request took in each part.
"""

from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

TICKS = os.sysconf("SC_CLK_TCK")
BACKENDS = (  # client backends only: autovacuum's work would land on whichever side ran
    "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
    " AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
)


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (0 if it is gone or not readable)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


def children(pid: int) -> list[int]:
    """The child processes of ``pid``."""
    try:
        found = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    return [int(p) for p in found]


@dataclass(frozen=True)
class Reading:
    """CPU seconds so far: this process and the server's workers, each backend, the client."""

    python: dict[int, float]
    postgres: dict[int, float]
    client: float


class CpuMeter:
    """Reads the CPU time of the parts of a run; :meth:`since` gives what a slice used."""

    def __init__(self, conninfo: str, server_pid: int | None = None) -> None:
        self.server_pid = server_pid
        self.conn: psycopg.Connection[Any] = psycopg.connect(conninfo, autocommit=True)

    def read(self) -> Reading:
        python_pids = [os.getpid(), *(children(self.server_pid) if self.server_pid else [])]
        backends = [row[0] for row in self.conn.execute(BACKENDS).fetchall()]
        used = resource.getrusage(resource.RUSAGE_CHILDREN)
        return Reading(
            python={pid: self._python_cpu(pid) for pid in python_pids},
            postgres={pid: process_cpu(pid) for pid in backends},
            client=used.ru_utime + used.ru_stime,
        )

    @staticmethod
    def _python_cpu(pid: int) -> float:
        return time.process_time() if pid == os.getpid() else process_cpu(pid)

    def since(self, start: Reading) -> dict[str, float]:
        """CPU seconds each part used since ``start`` (processes that started meanwhile
        count from zero)."""
        now = self.read()

        def used(then: dict[int, float], later: dict[int, float]) -> float:
            return sum(cpu - then.get(pid, 0.0) for pid, cpu in later.items())

        return {
            "python": used(start.python, now.python),
            "postgres": used(start.postgres, now.postgres),
            "client": now.client - start.client,
        }

    def close(self) -> None:
        self.conn.close()
