"""What operators watch: Prometheus metrics, health checks and structured logs.

=========================  =================================================================
module                     owns
=========================  =================================================================
:mod:`.metrics`            the in-process metrics (ledger writes, points issued and
                           redeemed), multi-process mode, and one scrape's exposition
:mod:`.operations`         what each ledger write reports (metrics and its log line), called
                           by :func:`loyalty.services.writes.run_write`
:mod:`.snapshot`           what the database says about the system's health: job lag,
                           backlogs, parked and open items (:func:`take_snapshot`)
:mod:`.collector`          the snapshot as Prometheus gauges, read at scrape time
:mod:`.health`             liveness and readiness (database, schema at head, Redis)
:mod:`.logs`               text or JSON log lines, the request id, secrets kept out
=========================  =================================================================

The HTTP door that serves ``/metrics``, ``/healthz`` and ``/readyz`` is :mod:`admin.ops`;
the console's dashboard shows the same snapshot as a health strip.

This package imports nothing from the services on import (the ledger's write path imports
:mod:`.operations`), so each module is imported where it is used.
"""
