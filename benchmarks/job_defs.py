"""The code location's ``daily_risk_graph`` job with the benchmark's timed provider, for runs on the
job's own executor.

A backfill launched from the UI or by the daemon runs the job with its default executor: the
multiprocess executor, one process per step and as many steps at once as there are cores. Workload 3
runs that way (``execute_job`` on this reconstructable job), so its figures are those of the
production path. Each step process appends its provider fetch times to ``$SIGMASIGHT_BENCH_FETCH_LOG``
(one JSON line per call), which the workload sums after the run.
"""

from __future__ import annotations

import json
import os
import time

from dagster import Definitions

from sigmasight_assets.definitions import defs as _defs
from sigmasight_assets.defs.jobs import daily_graph_job
from sigmasight_assets.defs.resources import MarketDataResource, WarehouseResource

FETCH_LOG_ENV = "SIGMASIGHT_BENCH_FETCH_LOG"


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
        "warehouse": WarehouseResource(url=db_url or os.environ["SIGMASIGHT_DATABASE_URL"]),
        "market_data": TimedMarketDataResource(spec="synthetic", seed=seed),
    }


def graph_job():
    """``daily_risk_graph`` bound to the timed resources (rebuilt in each step process)."""
    defs = Definitions(assets=_defs.assets, asset_checks=_defs.asset_checks, jobs=[daily_graph_job],
                       resources=resources())
    return defs.resolve_job_def(daily_graph_job.name)
