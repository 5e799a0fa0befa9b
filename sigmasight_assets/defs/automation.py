"""Automation: the nightly schedule and the two onboarding sensors.

* ``nightly_risk_schedule`` — 21:00 America/New_York, Monday–Friday: the whole graph
  (``daily_risk_graph``) for *that same day's* partition; a non-trading day is skipped with a reason.
  With ``end_offset=1`` the "last partition" on a holiday is the *next* session, so the schedule asks
  ``trading_days.has_partition_key(day)`` instead of using ``build_schedule_from_partitioned_job``.
* ``new_symbol_sensor`` — a symbol the current ledger puts in the universe of the latest stored
  partition D (held on D, or entering within the 253-session look-ahead) but that D's stored
  ``symbol_universe`` lacks is onboarded by ONE scoped run of the symbol-level assets (run config
  ``ops.<asset>.config.symbols``) over the partition range that fills its history (at least a year:
  from 253 sessions before its first entry, or before D), then the portfolios are refreshed on D.
* ``portfolio_ledger_sensor`` — a new portfolio or a changed ledger (per-portfolio fingerprint of its
  positions and capital flows rows) gets its history recomputed: ``portfolio_analytics`` from its
  first entry date to D in one run, after a scoped run of the symbol-level assets for any of its
  symbols whose universe history is missing.

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
import os
from datetime import date
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from dagster import (
    MAX_RUNTIME_SECONDS_TAG,
    AssetKey,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    ScheduleEvaluationContext,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    schedule,
    sensor,
)
from dagster._core.storage.dagster_run import NOT_FINISHED_STATUSES
from sqlalchemy import func, select

from .. import calendar
from ..calc.universe import build_universe
from ..config import FACTOR_ETFS
from ..warehouse.ledger import read_ledger
from .jobs import daily_graph_job, range_tags
from .market_assets import LOOKAHEAD_SESSIONS, _horizon
from .partitions import TIMEZONE, trading_days
from .resources import WarehouseResource

NY = ZoneInfo(TIMEZONE)

# Symbol-level assets that take ``ScopeConfig`` (factor_covariance is market-wide, never scoped).
SYMBOL_ASSET_NAMES = ("symbol_universe", "prices", "daily_valuations", "symbol_betas", "ridge_factors",
                      "spread_factors", "symbol_metrics")
SYMBOL_ASSETS = [AssetKey(n) for n in SYMBOL_ASSET_NAMES]
PORTFOLIO_ASSETS = [AssetKey(n) for n in ("portfolio_snapshots", "correlations", "aggregated_exposures",
                                          "stress_results")]

TRIGGER_TAG = "sigmasight/trigger"  # who asked for the run: nightly | new_symbol_sensor | portfolio_ledger_sensor
REQUEST_TAG = "sigmasight/request"  # the sensor's request id (also the run key)
ONBOARDING_TAG = "sigmasight/onboarding"  # "symbols" on scoped symbol runs
KILL_AFTER_ENV = "SIGMASIGHT_KILL_AFTER_MINUTES"


def kill_after_tags() -> dict[str, str]:
    """Opt-in hard limit: ``dagster/max_runtime`` (seconds) on automated runs when
    ``SIGMASIGHT_KILL_AFTER_MINUTES`` is set. The run-monitoring daemon then *terminates* a run that
    exceeds it; the default is only a warning (``SIGMASIGHT_MAX_RUNTIME_MINUTES``, see failures.py)."""
    raw = os.environ.get(KILL_AFTER_ENV, "").strip()
    if not raw:
        return {}
    try:
        minutes = float(raw)
    except ValueError as exc:
        raise ValueError(f"{KILL_AFTER_ENV}={raw!r} is not a number of minutes") from exc
    return {MAX_RUNTIME_SECONDS_TAG: str(int(minutes * 60))} if minutes > 0 else {}


# -- nightly schedule ------------------------------------------------------------------------------
def closed_reason(day: date) -> str | None:
    """Why NYSE has no session on ``day`` (None on a trading day)."""
    key = day.isoformat()
    if trading_days.has_partition_key(key):
        return None
    if day.weekday() >= 5:
        return f"{key} is a {day:%A}: NYSE is closed on weekends, no partition to materialise"
    return f"{key} ({day:%A}) is an NYSE holiday ({_holiday_name(day)}): the market is closed, no partition"


def _holiday_name(day: date) -> str:
    try:
        import exchange_calendars as xcals

        cal = xcals.get_calendar("XNYS", start=f"{day.year}-01-01", end=f"{day.year}-12-31")
        names = cal.regular_holidays.holidays(pd.Timestamp(day.year, 1, 1), pd.Timestamp(day.year, 12, 31),
                                              return_name=True)
        ts = pd.Timestamp(day)
        if ts in names.index:
            return str(names[ts])
        if ts in set(pd.DatetimeIndex(cal.adhoc_holidays)):
            return "ad hoc closure"
    except Exception:  # pragma: no cover - the name is a courtesy, the calendar decides
        pass
    return "market holiday"


@schedule(
    name="nightly_risk_schedule",
    cron_schedule="0 21 * * 1-5",
    execution_timezone=TIMEZONE,
    job=daily_graph_job,
    default_status=DefaultScheduleStatus.RUNNING,
    description=(
        "21:00 America/New_York, Monday–Friday: materialise every partitioned asset for that same day's "
        "trading_days partition (the day's data is final after the close). Holidays such as MLK Day or "
        "the 2025-01-09 national day of mourning are skipped with the reason. Missed nights are filled "
        "by partition backfills (README, Operations / Backfills)."
    ),
)
def nightly_risk_schedule(context: ScheduleEvaluationContext):
    day = context.scheduled_execution_time.astimezone(NY).date()
    reason = closed_reason(day)
    if reason:
        return SkipReason(reason)
    key = day.isoformat()
    return RunRequest(run_key=f"nightly-{key}", partition_key=key,
                      tags={TRIGGER_TAG: "nightly", **kill_after_tags()})


# -- what the warehouse has and what the ledger needs ----------------------------------------------
def universe_bounds(wh) -> tuple[date | None, date | None]:
    """(first, latest) date of the stored ``symbol_universe``; (None, None) when empty."""
    t = wh.table("symbol_universe")
    with wh.engine.connect() as conn:
        lo, hi = conn.execute(select(func.min(t.c.date), func.max(t.c.date))).one()
    to_date = lambda v: None if v is None else pd.Timestamp(v).date()  # noqa: E731
    return to_date(lo), to_date(hi)


def stored_universe_days(wh, start, end) -> pd.DatetimeIndex:
    """Days in [start, end] whose ``symbol_universe`` partition has been written."""
    t = wh.table("symbol_universe")
    stmt = select(t.c.date).distinct().where(t.c.date >= pd.Timestamp(start).date(), t.c.date <= pd.Timestamp(end).date())
    with wh.engine.connect() as conn:
        values = [r[0] for r in conn.execute(stmt)]
    return pd.DatetimeIndex(sorted(pd.Timestamp(v) for v in values))


def missing_universe_rows(wh, positions: pd.DataFrame, start, end, symbols=None) -> pd.DataFrame:
    """(date, symbol) pairs the current ledger puts in the fetchable universe but the warehouse lacks.

    Only days whose universe partition exists are compared (a day never written is a gap for the
    backfill, not an onboarding). ``symbols`` restricts the comparison (the universe of a symbol
    depends only on the positions holding it, so the restriction is exact).
    """
    days = stored_universe_days(wh, start, end)
    empty = pd.DataFrame(columns=["date", "symbol"])
    if len(days) == 0 or positions is None or positions.empty:
        return empty
    pos = positions if symbols is None else positions[positions["symbol"].isin(set(symbols))]
    if pos.empty:
        return empty
    expected = build_universe(pos, days, _horizon(days, LOOKAHEAD_SESSIONS), FACTOR_ETFS)
    expected = expected[expected["fetch"].astype(bool) & ~expected["symbol"].isin(FACTOR_ETFS)][["date", "symbol"]]
    wanted = sorted(expected["symbol"].unique())
    if not wanted:
        return empty
    stored = wh.read("symbol_universe", days[0], days[-1], keys=wanted, columns=["date", "symbol"])
    merged = expected.merge(stored.assign(_stored=True), on=["date", "symbol"], how="left")
    return merged[merged["_stored"].isna()][["date", "symbol"]].reset_index(drop=True)


def history_start(positions: pd.DataFrame, symbols, latest: date, first_stored: date) -> date:
    """First partition a symbol-onboarding run must cover: the look-ahead (253 sessions, a year of
    returns) before the earliest entry of a live position holding one of ``symbols`` (or before
    ``latest`` when that is earlier), never before the warehouse's first universe partition."""
    pos = positions[positions["symbol"].isin(set(symbols)) & ~positions["deleted"].astype(bool)]
    first_entry = pd.Timestamp(pos["entry_date"].min()) if len(pos) else pd.Timestamp(latest)
    anchor = min(first_entry, pd.Timestamp(latest))
    start = calendar.sessions_back(anchor, LOOKAHEAD_SESSIONS)[0].date()
    return max(start, first_stored)


def first_session_on_or_after(day, latest: date) -> date:
    sess = calendar.sessions(day, latest)
    return sess[0].date() if len(sess) else latest


def in_flight_runs(instance, tags: dict) -> list:
    return list(instance.get_runs(filters=RunsFilter(statuses=list(NOT_FINISHED_STATUSES), tags=tags)))


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


# Onboarding runs are small (a few symbols, or one day of portfolios): one process runs every step,
# which saves the multiprocess executor's per-step interpreter start (seconds each) on the way to the
# 60-second new-symbol target. The nightly and backfill runs keep the default executor.
IN_PROCESS = {"execution": {"config": {"in_process": {}}}}


def symbol_run_request(symbols: list[str], start: date, end: date, trigger: str, request_id: str) -> RunRequest:
    """One scoped run of the symbol-level assets over [start, end] (a single-run range)."""
    config = {**IN_PROCESS, "ops": {name: {"config": {"symbols": list(symbols)}} for name in SYMBOL_ASSET_NAMES}}
    return RunRequest(
        run_key=request_id,
        asset_selection=SYMBOL_ASSETS,
        run_config=config,
        tags={**range_tags(start.isoformat(), end.isoformat()), TRIGGER_TAG: trigger, REQUEST_TAG: request_id,
              ONBOARDING_TAG: "symbols", **kill_after_tags()},
    )


def portfolio_run_request(start: date, end: date, trigger: str, request_id: str) -> RunRequest:
    """``portfolio_analytics`` (all four assets) on one partition or over [start, end] in one run."""
    tags = {TRIGGER_TAG: trigger, REQUEST_TAG: request_id, **kill_after_tags()}
    if start == end:
        return RunRequest(run_key=request_id, asset_selection=PORTFOLIO_ASSETS, partition_key=end.isoformat(),
                          run_config=IN_PROCESS, tags=tags)
    return RunRequest(run_key=request_id, asset_selection=PORTFOLIO_ASSETS, run_config=IN_PROCESS,
                      tags={**range_tags(start.isoformat(), end.isoformat()), **tags})


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
    first, latest = universe_bounds(wh)
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
        requests.append(portfolio_run_request(latest, latest, "new_symbol_sensor", request_id))
        state["pending"] = []
        return _result(requests, state, "")
    waiting = sorted(set(new) & claimed)
    if waiting:
        return _result([], state, f"{len(waiting)} new symbol(s) already being onboarded by another run: {waiting[:10]}")
    return _result([], state, f"every symbol the ledger needs on {latest} is in its symbol_universe")


# -- new or changed portfolios ---------------------------------------------------------------------
def _canonical(frame: pd.DataFrame, sort_by: list[str]) -> pd.DataFrame:
    frame = frame.sort_values(sort_by, kind="mergesort").reset_index(drop=True)
    frame = frame.reindex(columns=sorted(frame.columns))
    return frame.astype(object).where(frame.notna(), "").astype(str)


def ledger_fingerprints(books: pd.DataFrame, positions: pd.DataFrame, flows: pd.DataFrame) -> dict[str, str]:
    """Per portfolio: a hash of its positions and capital-flow rows (canonical text, order-free).

    Values are compared as text so a dtype change caused by another portfolio's rows (e.g. a column
    gaining a NULL) never changes this portfolio's fingerprint.
    """
    digests: dict[str, hashlib._Hash] = {pid: hashlib.sha256() for pid in books["portfolio_id"]}
    for frame, key in ((positions, "position_id"), (flows, "flow_id")):
        if frame.empty:
            for d in digests.values():
                d.update(b"|")
            continue
        canon = _canonical(frame, ["portfolio_id", key])
        row_hash = pd.util.hash_pandas_object(canon, index=False).to_numpy()
        pids = canon["portfolio_id"].to_numpy()
        order = np.argsort(pids, kind="stable")
        pids, row_hash = pids[order], row_hash[order]
        bounds = np.flatnonzero(np.r_[True, pids[1:] != pids[:-1], True])
        for a, b in zip(bounds[:-1], bounds[1:]):
            digests.setdefault(pids[a], hashlib.sha256()).update(np.sort(row_hash[a:b]).tobytes())
        for d in digests.values():
            d.update(b"|")
    return {pid: d.hexdigest()[:16] for pid, d in digests.items()}


def portfolios_with_history(wh) -> set[str]:
    t = wh.table("portfolio_snapshots")
    with wh.engine.connect() as conn:
        return {r[0] for r in conn.execute(select(t.c.portfolio_id).distinct())}


def portfolio_first_dates(positions: pd.DataFrame, flows: pd.DataFrame, pids) -> dict[str, pd.Timestamp]:
    """First ledger date (entry or capital flow) of each portfolio."""
    out: dict[str, pd.Timestamp] = {}
    live = positions[~positions["deleted"].astype(bool)] if len(positions) else positions
    for frame, col in ((live, "entry_date"), (flows, "date")):
        if len(frame):
            firsts = frame[frame["portfolio_id"].isin(set(pids))].groupby("portfolio_id")[col].min()
            for pid, d in firsts.items():
                out[pid] = min(out.get(pid, pd.Timestamp(d)), pd.Timestamp(d))
    return out


@sensor(
    name="portfolio_ledger_sensor",
    job=daily_graph_job,
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
    description=(
        "Recomputes the history of a new portfolio or of one whose ledger changed (fingerprint of its "
        "positions and capital flows): a scoped symbol-level run for any of its symbols missing from the "
        "stored symbol_universe first, then portfolio_analytics from its first entry date to the latest "
        "partition as one single-run range. Cursor: the fingerprint each portfolio was last refreshed at."
    ),
)
def portfolio_ledger_sensor(context: SensorEvaluationContext, warehouse: WarehouseResource):
    wh = warehouse.get()
    books, positions, flows = read_ledger(wh)
    fps = ledger_fingerprints(books, positions, flows)
    first_tick = not context.cursor
    state = json.loads(context.cursor) if context.cursor else {"fingerprints": {}, "waiting": None}
    first, latest = universe_bounds(wh)
    if latest is None:
        # Nothing computed yet: the first history backfill covers every portfolio.
        state["fingerprints"] = fps
        return _result([], state, "symbol_universe has no partition yet: the first backfill will cover every portfolio")
    if first_tick:
        # First evaluation: portfolios that already have analytics are the baseline; the rest are new.
        have = portfolios_with_history(wh)
        state["fingerprints"] = {pid: fp for pid, fp in fps.items() if pid in have}
    done = state["fingerprints"]
    for gone in set(done) - set(fps):
        done.pop(gone)  # no longer in the ledger; its computed history stays as it was
    changed = sorted(pid for pid, fp in fps.items() if done.get(pid) != fp)
    if not changed:
        state["waiting"] = None
        return _result([], state, f"no new or changed portfolio ({len(fps)} fingerprinted)")
    waiting = state.get("waiting")
    if waiting and in_flight_runs(context.instance, {REQUEST_TAG: waiting["request"]}):
        return _result([], state, f"waiting for onboarding run {waiting['request']} before refreshing {changed}")
    attempted = set(waiting["symbols"]) if waiting else set()

    live = positions[~positions["deleted"].astype(bool)] if len(positions) else positions
    their_symbols = sorted(set(live.loc[live["portfolio_id"].isin(changed), "symbol"])) if len(live) else []
    lo = history_start(positions, their_symbols, latest, first) if their_symbols else latest
    missing = missing_universe_rows(wh, positions, lo, latest, symbols=their_symbols) if their_symbols else None
    new = sorted(set(missing["symbol"])) if missing is not None else []
    claimed = claimed_symbols(context.instance)
    if set(new) & claimed:
        return _result([], state, f"symbols {sorted(set(new) & claimed)[:10]} are being onboarded by another run; "
                                  f"refreshing {changed} after it")
    todo = [s for s in new if s not in attempted]
    if todo:
        start = max(missing.loc[missing["symbol"].isin(todo), "date"].min().date(), first)
        request_id = f"ledger-symbols-{latest}-{_digest(todo, [fps[p] for p in changed])}"
        context.log.info(f"portfolio_ledger_sensor: {changed} changed; onboarding {len(todo)} symbol(s) "
                         f"{todo[:10]} over {start}..{latest} first")
        state["waiting"] = {"request": request_id, "symbols": sorted(attempted | set(todo))}
        return _result([symbol_run_request(todo, start, latest, "portfolio_ledger_sensor", request_id)], state, "")
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
        return _result([], state, f"{changed} start after {latest}: the nightly runs will compute them")
    start = min(starts)
    request_id = f"ledger-portfolios-{latest}-{_digest([fps[p] for p in changed])}"
    context.log.info(f"portfolio_ledger_sensor: refreshing portfolio_analytics over {start}..{latest} for {changed}")
    return _result([portfolio_run_request(start, latest, "portfolio_ledger_sensor", request_id)], state, "")


SCHEDULES = [nightly_risk_schedule]
SENSORS = [new_symbol_sensor, portfolio_ledger_sensor]
