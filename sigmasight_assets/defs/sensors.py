"""The onboarding sensors: a new symbol, a new, changed or removed portfolio.

* ``new_symbol_sensor`` — a symbol the current ledger puts in the universe of the latest stored
  partition D (held on D, or entering within the 253-session look-ahead) but that D's stored
  ``symbol_universe`` lacks is onboarded by ONE scoped run of the symbol-level assets (run config
  ``ops.<asset>.config.symbols``) over the partition range that fills its history (at least a year:
  from 253 sessions before its first entry, or before D), then the portfolios are refreshed on D.
  A scoped run of a few symbols stays small whatever its range (the steps work in bounded chunks of
  days), and one run keeps its look-back windows in order.
* ``portfolio_ledger_sensor`` — a new portfolio or a changed ledger (per-portfolio fingerprint of its
  positions and capital flows rows) gets its history recomputed by runs of ``portfolio_analytics``
  scoped to the changed books (run config ``portfolio_ids``) from their first ledger date to D, in
  runs of at most ``PARTITIONS_PER_RUN`` partitions (portfolio days read no earlier portfolio day, so
  they may run in any order), after a scoped run of the symbol-level assets for any of their
  symbols whose universe history is missing. A portfolio removed from the ledger gets a run of
  ``remove_portfolio_rows``: its rows are deleted from every portfolio table, all days.

The sensors coordinate through the runs themselves: every symbol-onboarding run carries the tag
``sigmasight/onboarding=symbols`` and its symbols in the run config. A sensor never requests a symbol
that an unfinished onboarding run already covers, and a portfolio refresh waits until the onboarding
runs it depends on have finished, so portfolios are never recomputed on half-loaded prices. Ranges
never start before the first ``symbol_universe`` partition in the warehouse (there is no market data
before it; extending history is a backfill, see the README).
"""

from __future__ import annotations

import hashlib
import json
from datetime import date

import pandas as pd
from dagster import (
    AssetKey,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from .. import calendar
from ..pipelines.market import (
    first_session_on_or_after,
    history_start,
    missing_universe_rows,
    universe_bounds,
)
from ..pipelines.portfolio import ledger_fingerprints, portfolio_first_dates, portfolios_with_rows
from ..pipelines.portfolio import TABLES as PORTFOLIO_TABLES
from ..pipelines.risk import TABLES as RISK_TABLES
from ..warehouse.ledger import read_ledger
from .common import (
    ONBOARDING_TAG,
    PARTITIONS_PER_RUN,
    REQUEST_TAG,
    TRIGGER_TAG,
    kill_after_tags,
    range_tags,
)
from .jobs import daily_graph_job, remove_portfolios_job
from .partitions import trading_days
from .resources import WarehouseResource

# Symbol-level assets that take ``ScopeConfig`` (factor_covariance is market-wide, never scoped).
SYMBOL_ASSET_NAMES = ("symbol_universe", "prices", "symbol_returns", "daily_valuations", "symbol_betas", "ridge_factors",
                      "spread_factors", "factor_model", "symbol_metrics")
SYMBOL_ASSETS = [AssetKey(n) for n in SYMBOL_ASSET_NAMES]
PORTFOLIO_ASSETS = [AssetKey(n) for n in (*PORTFOLIO_TABLES, *RISK_TABLES)]
PORTFOLIO_OPS = ("portfolio_analytics", "risk_analytics")
REMOVE_OP = "delete_portfolio_analytics"
UNFINISHED = [s for s in DagsterRunStatus
              if s not in (DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED)]


def stored_partition_bounds(wh):
    """(first, latest) stored ``symbol_universe`` day, the first no earlier than the first partition: the
    warehouse may hold history before it (the demo's warm-up), which no run may target."""
    first, latest = universe_bounds(wh)
    if first is not None:
        first = max(first, date.fromisoformat(trading_days.get_first_partition_key()))
    return first, latest


def in_flight_runs(instance, tags: dict) -> list:
    return list(instance.get_runs(filters=RunsFilter(statuses=UNFINISHED, tags=tags)))


def claimed_symbols(instance) -> set[str]:
    """Symbols of every unfinished symbol-onboarding run (queued, starting or running)."""
    out: set[str] = set()
    for run in in_flight_runs(instance, {ONBOARDING_TAG: "symbols"}):
        ops = (run.run_config or {}).get("ops", {})
        for name in SYMBOL_ASSET_NAMES:
            out.update(((ops.get(name) or {}).get("config") or {}).get("symbols") or [])
    return out


def _digest(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:10]


def symbol_run_request(symbols: list[str], start: date, end: date, trigger: str, request_id: str) -> RunRequest:
    """One scoped run of the symbol-level assets over [start, end] (a range run)."""
    config = {"ops": {name: {"config": {"symbols": list(symbols)}} for name in SYMBOL_ASSET_NAMES}}
    return RunRequest(
        run_key=request_id,
        job_name=daily_graph_job.name,
        asset_selection=SYMBOL_ASSETS,
        run_config=config,
        tags={**range_tags(start.isoformat(), end.isoformat()), TRIGGER_TAG: trigger, REQUEST_TAG: request_id,
              ONBOARDING_TAG: "symbols", **kill_after_tags()},
    )


def portfolio_run_requests(start: date, end: date, trigger: str, request_id: str,
                           portfolio_ids: list[str] | None = None) -> list[RunRequest]:
    """``portfolio_analytics`` and ``risk_analytics`` (every portfolio-level asset) over [start, end] in
    runs of at most ``PARTITIONS_PER_RUN`` partitions, scoped to ``portfolio_ids`` when given."""
    days = calendar.sessions(start, end)
    chunks = calendar.chunks(days, PARTITIONS_PER_RUN)
    config = ({"ops": {op: {"config": {"portfolio_ids": list(portfolio_ids)}} for op in PORTFOLIO_OPS}}
              if portfolio_ids else {})
    out = []
    for i, chunk in enumerate(chunks):
        a, b = chunk[0].date().isoformat(), chunk[-1].date().isoformat()
        key = request_id if len(chunks) == 1 else f"{request_id}-{i + 1}of{len(chunks)}"
        tags = {TRIGGER_TAG: trigger, REQUEST_TAG: request_id, **kill_after_tags()}
        if a == b:
            out.append(RunRequest(run_key=key, job_name=daily_graph_job.name, asset_selection=PORTFOLIO_ASSETS,
                                  partition_key=a, run_config=config, tags=tags))
        else:
            out.append(RunRequest(run_key=key, job_name=daily_graph_job.name, asset_selection=PORTFOLIO_ASSETS,
                                  run_config=config, tags={**range_tags(a, b), **tags}))
    return out


def remove_request(portfolio_ids: list[str], trigger: str, key: str) -> RunRequest:
    """A run of ``remove_portfolio_rows`` for portfolios no longer in the ledger (``key``: what makes
    this removal distinct from an earlier one of the same ids)."""
    request_id = f"remove-portfolios-{key}-{_digest(portfolio_ids)}"
    return RunRequest(run_key=request_id, job_name=remove_portfolios_job.name,
                      run_config={"ops": {REMOVE_OP: {"config": {"portfolio_ids": list(portfolio_ids)}}}},
                      tags={TRIGGER_TAG: trigger, REQUEST_TAG: request_id})


def _result(requests: list[RunRequest], cursor: dict, skip: str) -> SensorResult:
    text = json.dumps(cursor, sort_keys=True, default=str)
    if requests:
        return SensorResult(run_requests=requests, cursor=text)
    return SensorResult(skip_reason=SkipReason(skip), cursor=text)


# -- new symbols -----------------------------------------------------------------------------------
@sensor(
    name="new_symbol_sensor",
    job=daily_graph_job,
    minimum_interval_seconds=15,
    default_status=DefaultSensorStatus.RUNNING,
    description=(
        "Onboards symbols the ledger needs on the latest stored partition but symbol_universe lacks: one "
        "scoped single-run range of the symbol-level assets (history from 253 sessions before entry), "
        "then portfolio_analytics on the latest partition once that run has finished. Cursor: the latest "
        "partition, the symbols already requested for it and the refreshes still pending."
    ),
)
def new_symbol_sensor(context: SensorEvaluationContext, warehouse: WarehouseResource):
    wh = warehouse.get()
    first, latest = stored_partition_bounds(wh)
    state = json.loads(context.cursor) if context.cursor else {}
    if latest is None:
        return _result([], state, "symbol_universe has no partition in the warehouse yet: backfill the history first")
    if state.get("date") != latest.isoformat():
        # A new latest partition: its universe already reflects the ledger it was computed with;
        # keep only refreshes still owed (they are for earlier partitions and now redundant).
        state = {"date": latest.isoformat(), "requested": [], "pending": []}
    _, positions, _ = read_ledger(wh)
    missing = missing_universe_rows(wh, positions, latest, latest)
    new = sorted(set(missing["symbol"]))
    claimed = claimed_symbols(context.instance)
    todo = [s for s in new if s not in claimed and s not in set(state["requested"])]
    requests: list[RunRequest] = []
    if todo:
        start = history_start(positions, todo, latest, first)
        request_id = f"new-symbols-{latest}-{_digest(todo)}"
        context.log.info(f"new_symbol_sensor: {len(todo)} new symbol(s) {todo[:10]} on {latest}: "
                         f"scoped run over {start}..{latest}")
        requests.append(symbol_run_request(todo, start, latest, "new_symbol_sensor", request_id))
        state["requested"] = sorted(set(state["requested"]) | set(todo))
        state["pending"] = [*state["pending"], request_id]
        return _result(requests, state, "")
    if state["pending"]:
        busy = in_flight_runs(context.instance, {REQUEST_TAG: state["pending"]})
        if busy:
            return _result([], state, f"waiting for {len(busy)} onboarding run(s) before refreshing portfolios on {latest}")
        request_id = f"refresh-{latest}-{_digest(state['pending'])}"
        requests.extend(portfolio_run_requests(latest, latest, "new_symbol_sensor", request_id))
        state["pending"] = []
        return _result(requests, state, "")
    waiting = sorted(set(new) & claimed)
    if waiting:
        return _result([], state, f"{len(waiting)} new symbol(s) already being onboarded by another run: {waiting[:10]}")
    return _result([], state, f"every symbol the ledger needs on {latest} is in its symbol_universe")


# -- new, changed or removed portfolios --------------------------------------------------------------
@sensor(
    name="portfolio_ledger_sensor",
    jobs=[daily_graph_job, remove_portfolios_job],
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
    description=(
        "Recomputes the history of new portfolios or of those whose ledger changed (fingerprint of their "
        "positions, capital flows and private marks), and only theirs: a scoped symbol-level run for any of their symbols "
        "missing from the stored symbol_universe first, then portfolio_analytics runs scoped to those books "
        f"(run config portfolio_ids) from their first ledger date to the latest partition, at most "
        f"{PARTITIONS_PER_RUN} partitions per run. A portfolio removed from the ledger gets its rows deleted "
        "from every portfolio table (job remove_portfolio_rows). Cursor: the fingerprint each portfolio was "
        "last refreshed at."
    ),
)
def portfolio_ledger_sensor(context: SensorEvaluationContext, warehouse: WarehouseResource):
    wh = warehouse.get()
    books, positions, flows = read_ledger(wh)
    marks = wh.read("private_marks", key_column="portfolio_id")
    fps = ledger_fingerprints(books, positions, flows, marks)
    first_tick = not context.cursor
    state = json.loads(context.cursor) if context.cursor else {"fingerprints": {}, "waiting": None}
    first, latest = stored_partition_bounds(wh)
    if latest is None:
        # Nothing computed yet: the first history backfill covers every portfolio.
        state["fingerprints"] = fps
        return _result([], state, "symbol_universe has no partition yet: the first backfill will cover every portfolio")
    done = state["fingerprints"]
    removed = set(done) - set(fps)
    if first_tick:
        # First evaluation: portfolios that already have analytics are the baseline; the rest are new,
        # and analytics of a portfolio the ledger no longer has are removed.
        have = portfolios_with_rows(wh)
        done.update({pid: fp for pid, fp in fps.items() if pid in have})
        removed |= have - set(fps)
    requests: list[RunRequest] = []
    if removed:
        context.log.info(f"portfolio_ledger_sensor: {sorted(removed)} left the ledger: deleting their rows")
        key = f"{latest}-{_digest([done.get(pid) for pid in sorted(removed)])}"
        requests.append(remove_request(sorted(removed), "portfolio_ledger_sensor", key))
        for pid in removed:
            done.pop(pid, None)
    changed = sorted(pid for pid, fp in fps.items() if done.get(pid) != fp)
    if not changed:
        state["waiting"] = None
        return _result(requests, state, f"no new or changed portfolio ({len(fps)} fingerprinted)")
    waiting = state.get("waiting")
    if waiting and in_flight_runs(context.instance, {REQUEST_TAG: waiting["request"]}):
        return _result(requests, state, f"waiting for onboarding run {waiting['request']} before refreshing {changed}")
    attempted = set(waiting["symbols"]) if waiting else set()

    live = positions[~positions["deleted"].astype(bool)] if len(positions) else positions
    their_symbols = sorted(set(live.loc[live["portfolio_id"].isin(changed), "symbol"])) if len(live) else []
    lo = history_start(positions, their_symbols, latest, first) if their_symbols else latest
    missing = missing_universe_rows(wh, positions, lo, latest, symbols=their_symbols) if their_symbols else None
    new = sorted(set(missing["symbol"])) if missing is not None else []
    claimed = claimed_symbols(context.instance)
    if set(new) & claimed:
        return _result(requests, state, f"symbols {sorted(set(new) & claimed)[:10]} are being onboarded by another "
                                        f"run; refreshing {changed} after it")
    todo = [s for s in new if s not in attempted]
    if todo:
        start = max(missing.loc[missing["symbol"].isin(todo), "date"].min().date(), first)
        request_id = f"ledger-symbols-{latest}-{_digest(todo, [fps[p] for p in changed])}"
        context.log.info(f"portfolio_ledger_sensor: {changed} changed; onboarding {len(todo)} symbol(s) "
                         f"{todo[:10]} over {start}..{latest} first")
        state["waiting"] = {"request": request_id, "symbols": sorted(attempted | set(todo))}
        requests.append(symbol_run_request(todo, start, latest, "portfolio_ledger_sensor", request_id))
        return _result(requests, state, "")
    still = sorted(set(new) & attempted)
    if still:
        context.log.warning(f"portfolio_ledger_sensor: {still[:10]} still lack universe rows after their onboarding "
                            "run (see run_failures); refreshing the portfolios anyway")
    firsts = portfolio_first_dates(positions, flows, changed)
    starts = [max(first_session_on_or_after(d, latest), first) for d in firsts.values() if d.date() <= latest]
    for pid in changed:
        done[pid] = fps[pid]
    state["waiting"] = None
    if not starts:
        return _result(requests, state, f"{changed} start after {latest}: the nightly runs will compute them")
    start = min(starts)
    request_id = f"ledger-portfolios-{latest}-{_digest([fps[p] for p in changed])}"
    # Every book of the ledger changed (a first load): replace whole partitions instead of listing them all.
    scope = None if set(changed) == set(fps) else changed
    context.log.info(f"portfolio_ledger_sensor: refreshing portfolio_analytics over {start}..{latest} for "
                     f"{'every portfolio' if scope is None else changed}")
    requests.extend(portfolio_run_requests(start, latest, "portfolio_ledger_sensor", request_id, scope))
    return _result(requests, state, "")


SENSORS = [new_symbol_sensor, portfolio_ledger_sensor]
