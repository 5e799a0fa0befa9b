"""Small helpers shared by the asset modules: run config of scoped runs, the backfill policy,
partition ranges and metadata rendering."""

from __future__ import annotations

import os
from typing import Callable, Optional

import numpy as np
import pandas as pd
from dagster import (
    MAX_RUNTIME_SECONDS_TAG,
    AssetCheckEvaluation,
    AssetDep,
    AssetKey,
    BackfillPolicy,
    Config,
    MetadataValue,
    TableColumn,
    TableSchema,
    TimeWindowPartitionMapping,
)

from .. import config as settings
from .partitions import partition_days

OWNER = "team:risk-platform"

# Partitions per run of a backfill (``SIGMASIGHT_PARTITIONS_PER_RUN``, read when the definitions load).
# Every partitioned asset has the same policy, so a backfill's runs group assets and a range of days;
# see the README ("Backfills") for the measurement behind the default.
DEFAULT_PARTITIONS_PER_RUN = 126
PARTITIONS_PER_RUN = settings.partitions_per_run(DEFAULT_PARTITIONS_PER_RUN)
BACKFILL_POLICY = BackfillPolicy.multi_run(PARTITIONS_PER_RUN)
# Per-day check verdicts in runs of many days (``SIGMASIGHT_CHECKS_BY_DAY``, read when the definitions load).
CHECKS_BY_DAY = settings.checks_by_day()
CHECKS_BY_DAY_TAG = "sigmasight/checks_by_day"  # "0" on a run: no per-day verdicts in that run


class ScopeConfig(Config):
    """Run config of symbol-level assets.

    ``symbols``: recompute and replace only these symbols' rows (merge); empty = the whole partition.
    """

    symbols: Optional[list[str]] = None


class PortfolioScopeConfig(Config):
    """Run config of the portfolio-level assets.

    ``portfolio_ids``: recompute and replace only these portfolios' rows (a portfolio no longer in
    the ledger has its rows of the range deleted); empty = the whole partition.
    """

    portfolio_ids: Optional[list[str]] = None


def lookback(asset, n_returns: int) -> AssetDep:
    """Lineage of a look-back window: day D reads ``asset`` of D-n..D (n returns need n+1 prices)."""
    return AssetDep(asset, partition_mapping=TimeWindowPartitionMapping(start_offset=-n_returns))


def returns_window(asset, n_returns: int) -> AssetDep:
    """Lineage of a window of ``n_returns`` daily returns of ``asset`` (``symbol_returns``, one return
    per partition): day D reads D-(n-1)..D."""
    return AssetDep(asset, partition_mapping=TimeWindowPartitionMapping(start_offset=-(n_returns - 1)))


def run_days(context) -> pd.DatetimeIndex:
    """The partition days of this run (one day nightly, a range in a backfill run)."""
    return partition_days(context.partition_keys)


def scope_symbols(config: ScopeConfig) -> list[str] | None:
    if not config.symbols:
        return None
    return sorted({s.strip().upper() for s in config.symbols if s and s.strip()})


def scope_portfolios(config: PortfolioScopeConfig) -> list[str] | None:
    if not config.portfolio_ids:
        return None
    return sorted({p.strip() for p in config.portfolio_ids if p and p.strip()})


def md_table(frame: pd.DataFrame, max_rows: int = 10, floatfmt: str = "{:.4g}") -> MetadataValue:
    """A short markdown preview of a frame (no extra dependency)."""
    if frame is None or frame.empty:
        return MetadataValue.md("_no rows_")
    head = frame.head(max_rows)
    cols = list(head.columns)

    def fmt(v):
        if isinstance(v, (float, np.floating)):
            return "—" if np.isnan(v) else floatfmt.format(v)
        if isinstance(v, pd.Timestamp):
            return v.date().isoformat()
        return str(v)

    lines = ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in head.itertuples(index=False)]
    if len(frame) > max_rows:
        lines.append(f"\n_{len(frame) - max_rows} more rows_")
    return MetadataValue.md("\n".join(lines))


def table_metadata(table) -> dict:
    """Definition metadata for an asset stored in ``table``: column schema and table name."""
    return {"dagster/column_schema": table_schema(table), "dagster/table_name": table.name}


def table_schema(table) -> TableSchema:
    """Dagster column schema from a SQLAlchemy table (shown in the UI's asset page)."""
    return TableSchema(
        columns=[
            TableColumn(c.name, str(c.type).lower(), description=c.comment or None)
            for c in table.columns
        ]
    )


def reasons_summary(reasons: dict[str, str], limit: int = 15) -> MetadataValue:
    if not reasons:
        return MetadataValue.md("_none_")
    items = sorted(reasons.items())[:limit]
    lines = [f"- `{s}`: {r}" for s, r in items]
    if len(reasons) > limit:
        lines.append(f"- … {len(reasons) - limit} more")
    return MetadataValue.md("\n".join(lines))


def percent(share: float, digits: int = 2) -> float:
    """A share (0.985) as a rounded percentage (98.51) for metadata keys ending in ``_pct``; NaN stays NaN."""
    return float("nan") if share is None or not np.isfinite(share) else round(100.0 * float(share), digits)


def dollars(amount: float) -> MetadataValue:
    """An amount in USD as text ``$1,424,806`` (``—`` when missing: never shown as 0)."""
    return MetadataValue.text("—" if amount is None or not np.isfinite(amount) else f"${amount:,.0f}")


def range_metadata(days: pd.DatetimeIndex) -> dict:
    """The run's range. A run of many days records the same metadata on each of its partitions: counts
    are totals over ``partition_range``; ``newest_day`` and the ``newest_day_*`` entries describe the
    range's last day (previews show that day too)."""
    return {
        "partition_range": f"{days[0].date()}..{days[-1].date()}" if len(days) else "",
        "partitions": len(days),
        "newest_day": days[-1].date().isoformat() if len(days) else "",
    }


def _run_tags(context) -> dict:
    try:
        return dict(context.run.tags)
    except Exception:  # noqa: BLE001 - an asset called as a plain function has no run
        return {}


DayChecks = Callable[[pd.Timestamp], Optional[list]]


def checks_by_day(context, result, day_checks: DayChecks | None = None):
    """``result`` (a ``MaterializeResult``), after recording a verdict of each of its checks on every
    day of the run.

    Dagster plans each check once per partition of a run (one day or many) but records a returned
    result once, without a partition; every day's planned evaluation would stay "planned" and read as
    skipped in the UI. So each day gets an evaluation:

    * a one-day run: the run's result (passed, severity, description, metadata) — it is the day's;
    * a run of many days: ``day_checks(day)``, the asset's check results computed on that day's own
      counts and values by the same functions as the range's (so a rate or a coverage judges the
      day: a bad day cannot hide in a passing range), with the day's reasons and offenders;
    * a check ``day_checks`` does not return for a day (or without ``day_checks``): the range's
      verdict, its description prefixed "judged over the run's range a..b" — exact for a row rule
      that passed (it held on every row, hence on each day), the range's for a rate.

    Only the checks in ``result.check_results`` (the selected ones) are recorded. Should ``day_checks``
    raise, the step still succeeds (its rows are stored): a warning says so and every day records the
    range's verdict. Costs one event per check and day (``SIGMASIGHT_CHECKS_BY_DAY=0`` turns it off,
    the run tag ``sigmasight/checks_by_day: "0"`` for one run); ``day_checks`` is not called then.
    """
    if not CHECKS_BY_DAY or _run_tags(context).get(CHECKS_BY_DAY_TAG) == "0":
        return result
    days = list(context.partition_keys)
    if not days or not result.check_results:
        return result
    default_key = result.asset_key or (context.assets_def.key if len(context.assets_def.keys) == 1 else None)

    def key_of(check) -> tuple:
        return (AssetKey.from_coercible(check.asset_key) if check.asset_key else default_key, check.check_name)

    ranged = len(days) > 1
    prefix = f"judged over the run's range {days[0]}..{days[-1]}" if ranged else ""
    own_by_day = {}
    if ranged and day_checks is not None:
        try:
            for day in days:
                own_by_day[day] = {key_of(c): c for c in (day_checks(pd.Timestamp(day)) or [])}
        except Exception as exc:  # noqa: BLE001 - the rows are stored: a per-day report must not fail the step
            own_by_day = {}
            context.log.warning(f"per-day check verdicts could not be computed ({exc!r}); each day records "
                                "the range's verdict")
    events = []
    for check in result.check_results:
        asset_key, name = key_of(check)
        for day in days:
            own = own_by_day.get(day, {}).get((asset_key, name))
            if own is not None or not ranged:
                chosen = own if own is not None else check
                description = chosen.description
                metadata = dict(chosen.metadata or {})
            else:  # the range's verdict on this day, saying so
                description = ": ".join(t for t in (prefix, check.description) if t)
                metadata = {**(check.metadata or {}), "judged_over": f"{days[0]}..{days[-1]}"}
                chosen = check
            events.append(AssetCheckEvaluation(asset_key=asset_key, check_name=name, passed=chosen.passed,
                                               severity=chosen.severity, partition=day,
                                               description=description or None, metadata=metadata))
    try:
        context.log_event(events[0])
    except Exception:  # noqa: BLE001 - an asset called as a plain function (no run) takes no check events
        return result
    for event in events[1:]:
        context.log_event(event)
    return result


def day_rows(frame: pd.DataFrame, column: str = "date") -> Callable[[pd.Timestamp], pd.DataFrame]:
    """``day → frame's rows of that day`` (empty with the same columns when none), split by one
    ``groupby`` on the first call (never when per-day checks are off)."""
    split: dict = {}

    def rows(day) -> pd.DataFrame:
        if not split and frame is not None and len(frame):
            dates = pd.to_datetime(frame[column]).dt.normalize()
            split.update((pd.Timestamp(d), idx) for d, idx in dates.groupby(dates, sort=False).indices.items())
        idx = split.get(pd.Timestamp(day).normalize())
        return frame.iloc[idx] if idx is not None else frame.iloc[:0]

    return rows


def range_tags(start: str, end: str) -> dict[str, str]:
    """Tags of one run over the partition range [start, end]."""
    return {"dagster/asset_partition_range_start": start, "dagster/asset_partition_range_end": end}


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
    except ValueError:
        raise settings.ConfigError(f"{KILL_AFTER_ENV}={raw!r} is not a number of minutes (0 or unset: no limit)") from None
    if not minutes >= 0:
        raise settings.ConfigError(f"{KILL_AFTER_ENV}={raw!r} must not be negative (0 or unset: no limit)")
    return {MAX_RUNTIME_SECONDS_TAG: str(int(minutes * 60))} if minutes > 0 else {}
