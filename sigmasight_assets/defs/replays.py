"""``replay_window_returns``: the dated windows of the historical replay scenarios, computed once.

Partition D holds the windows of the active replay scenarios (``kind: replay`` in the scenario
file) whose last day is D: every symbol's compounded total return over the window. The asset's
lineage reads ``symbol_returns`` over the longest window ending at D; ``stress_results`` reads exactly the
partitions of the windows' last days (:data:`REPLAY_END_KEYS`), so the UI shows which dated
windows the replays use. On any other day the partition is empty (nothing to read or compute).
"""

from datetime import date

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetDep,
    AssetExecutionContext,
    MaterializeResult,
    MetadataValue,
    SpecificPartitionsPartitionMapping,
    asset,
)

from .. import config as settings
from ..pipelines import replays as pipeline
from ..scenarios import load_scenarios
from ..warehouse import schema as tables
from .common import BACKFILL_POLICY, OWNER, checks_by_day, range_metadata, returns_window, run_days, table_metadata
from .market_assets import symbol_returns
from .partitions import trading_days
from .resources import WarehouseResource
from .symbol_regressions import GROUP

# Read when the definitions load: a malformed scenario file fails here, with one line naming it.
_SCENARIOS = load_scenarios(settings.scenarios_file())
#: Returns in the longest active replay window (the asset's look-back on symbol_returns).
REPLAY_LOOKBACK = max((pipeline.window_sessions(s) for s in _SCENARIOS.active_replays), default=0)
_FIRST = date.fromisoformat(trading_days.start.strftime("%Y-%m-%d"))
#: The partitions stress_results reads: the last day of each active replay window within the partitions.
REPLAY_END_KEYS = sorted({s.end.isoformat() for s in _SCENARIOS.active_replays if s.end >= _FIRST})


def replay_dep() -> AssetDep | None:
    """stress_results' lineage on the replay windows (None when the file has no active replay)."""
    if not REPLAY_END_KEYS:
        return None
    return AssetDep("replay_window_returns", partition_mapping=SpecificPartitionsPartitionMapping(REPLAY_END_KEYS))


@asset(
    partitions_def=trading_days,
    backfill_policy=BACKFILL_POLICY,
    deps=[returns_window(symbol_returns, REPLAY_LOOKBACK)] if REPLAY_LOOKBACK else [symbol_returns],
    group_name=GROUP,
    kinds={"pandas", "sql"},
    owners=[OWNER],
    metadata={**table_metadata(tables.replay_window_returns), "grain": "window end day × replay scenario × symbol"},
    check_specs=[
        AssetCheckSpec("factor_etfs_complete", asset="replay_window_returns",
                       description="Every replay window ending in the range has a complete window for the 8 factor "
                                   "ETFs (else its scenario is not replayable: warn)."),
    ],
    description=(
        "Historical replay windows: for each active `kind: replay` scenario whose window ends on the day, the "
        "compounded total return Π(1 + r) − 1 over the sessions after its `start` up to `end` of every symbol "
        "priced on `end` and of the factor ETFs (a symbol with any missing return in the window has no row). "
        "Computed once, when the window's last day is materialised; `stress_results` reads these rows instead "
        f"of the window's prices. Windows of the scenario file: {', '.join(REPLAY_END_KEYS) or 'none'} (last days)."
    ),
)
def replay_window_returns(context: AssetExecutionContext, warehouse: WarehouseResource) -> MaterializeResult:
    days, wh = run_days(context), warehouse.get()
    scenarios = load_scenarios(settings.scenarios_file())
    res = pipeline.window_returns(wh, days, scenarios)
    context.log.info(f"replay_window_returns: {len(res.windows)} window(s) ending in the range, {res.written} rows; "
                     f"incomplete {res.incomplete or 'none'}")
    return checks_by_day(context, MaterializeResult(
        metadata={
            **range_metadata(days),
            "rows": res.written,
            "windows": MetadataValue.json(res.windows),
            "not_replayable": MetadataValue.json(res.incomplete),
        },
        check_results=[_etf_check(res.incomplete, "the range")],
    ), lambda day: [_etf_check({sid: why for sid, why in res.incomplete.items()
                                if res.windows[sid]["end"] == day.date().isoformat()}, "the day")])


def _etf_check(incomplete: dict[str, str], span: str) -> AssetCheckResult:
    """``factor_etfs_complete`` over the windows ending in ``span`` (the range, or one day: a day on
    which no window ends passes — nothing of it is needed by a replay)."""
    return AssetCheckResult(check_name="factor_etfs_complete", passed=not incomplete, severity=AssetCheckSeverity.WARN,
                            description=(f"every window ending in {span} is replayable" if not incomplete else
                                         "; ".join(f"{k}: {v}" for k, v in incomplete.items())),
                            metadata={"not_replayable": MetadataValue.json(incomplete)})
