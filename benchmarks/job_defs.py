"""The code location as the benchmark runs it: the real assets, checks, jobs and executor with a
market-data resource whose provider is wrapped only to time its fetch calls; no schedules and no
sensors (the benchmark's generated book must not set off onboarding runs).

Workload 3 points a real ``dagster-daemon`` at this module (``write_workspace``) and submits the
backfill the way a user does (``sigmasight backfill --workspace``). The daemon's run workers load it
in their own processes; each appends its provider fetch times to ``$SIGMASIGHT_BENCH_FETCH_LOG``
(one JSON line per call), which the workload sums after the backfill.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from dagster import Definitions

from sigmasight_assets.definitions import defs as _defs
from sigmasight_assets.defs.resources import MarketDataResource, WarehouseResource

FETCH_LOG_ENV = "SIGMASIGHT_BENCH_FETCH_LOG"
LOCATION = "sigmasight_assets"


def _cpu() -> float:
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime


class TimedProvider:
    """Delegates to the real provider and logs the wall and CPU time of each fetch call."""

    def __init__(self, inner):
        self._inner = inner
        self.name = inner.name

    def _timed(self, kind: str, fn, *args):
        t0, c0 = time.perf_counter(), _cpu()
        try:
            return fn(*args)
        finally:
            record = {"kind": kind, "seconds": time.perf_counter() - t0, "cpu_seconds": _cpu() - c0}
            path = os.environ.get(FETCH_LOG_ENV)
            if path:
                with open(path, "a") as fh:  # one short line per call: appends do not interleave
                    fh.write(json.dumps(record) + "\n")

    def fetch_prices(self, symbols, start, end):
        return self._timed("prices", self._inner.fetch_prices, symbols, start, end)

    def fetch_valuations(self, symbols, start, end):
        return self._timed("valuations", self._inner.fetch_valuations, symbols, start, end)

    def __getattr__(self, item):
        return getattr(self._inner, item)


class TimedMarketDataResource(MarketDataResource):
    def get(self):
        return TimedProvider(super().get())


def fetch_totals(path) -> dict:
    """Summed fetch times of a log written by :class:`TimedProvider`."""
    out = {"fetch_prices_s": 0.0, "fetch_prices_calls": 0, "fetch_valuations_s": 0.0, "fetch_valuations_calls": 0,
           "fetch_cpu_s": 0.0}
    if path and os.path.exists(path):
        with open(path) as fh:
            for line in fh:
                r = json.loads(line)
                out[f"fetch_{r['kind']}_s"] += r["seconds"]
                out[f"fetch_{r['kind']}_calls"] += 1
                out["fetch_cpu_s"] += r["cpu_seconds"]
    return out


def resources(db_url: str | None = None, market_seed: int | None = None) -> dict:
    seed = int(os.environ.get("SIGMASIGHT_SYNTHETIC_SEED", 7)) if market_seed is None else int(market_seed)
    return {
        "warehouse": WarehouseResource(url=db_url or os.environ.get("SIGMASIGHT_DATABASE_URL", "")),
        "market_data": TimedMarketDataResource(spec="synthetic", seed=seed),
    }


# The daemon's code location: everything but the automation.
defs = Definitions(
    assets=_defs.assets,
    asset_checks=_defs.asset_checks,
    jobs=_defs.jobs,
    resources=resources(),
    executor=_defs.executor,
)


def write_workspace(path: Path, working_directory: Path) -> Path:
    """A workspace file that loads :data:`defs` under the code location's usual name."""
    path.write_text(
        "load_from:\n"
        "  - python_module:\n"
        "      module_name: benchmarks.job_defs\n"
        "      attribute: defs\n"
        f"      location_name: {LOCATION}\n"
        f"      working_directory: {working_directory}\n"
    )
    return path
