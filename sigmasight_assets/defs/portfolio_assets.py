"""Portfolio analytics: ``portfolio_snapshots``, ``correlations``, ``aggregated_exposures``,
``stress_results``.

The four assets share one expensive intermediate — every position's market value on every day — so
they are computed by one subsettable multi-asset: each keeps its own lineage, checks and table, can
be materialised alone, and a run that selects several values positions once per day. Days are
processed in chunks so a year-long backfill at full scale stays within memory; each chunk's
partitions of every selected table are replaced atomically (delete-then-insert, one transaction).
"""


import numpy as np
import pandas as pd
from dagster import (
    AssetCheckKey,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetDep,
    AssetExecutionContext,
    AssetKey,
    AssetSpec,
    BackfillPolicy,
    MaterializeResult,
    TimeWindowPartitionMapping,
    multi_asset,
)

from .. import calendar
from .. import portfolio_batch as batch
from ..config import scenarios_file
from ..portfolio_batch import (
    CORR_MIN_OVERLAP,
    CORR_MIN_VALUE,
    CORR_MIN_WEIGHT,
    CORR_WINDOW,
    VOL_WINDOW,
)
from ..scenarios import load_scenarios
from ..warehouse import schema as tables
from ..warehouse.ledger import read_ledger
from .common import MEMORY_HEAVY_TAG, OWNER, md_table, range_metadata, run_days, table_metadata
from .partitions import trading_days
from .resources import WarehouseResource
from .symbol_assets import release_price_window

GROUP = "portfolio_analytics"
COVERAGE_WARN = 0.80

SNAP, CORR, EXPO, STRESS = (AssetKey(k) for k in ("portfolio_snapshots", "correlations", "aggregated_exposures",
                                                   "stress_results"))


def _window(key: str, n: int) -> AssetDep:
    return AssetDep(key, partition_mapping=TimeWindowPartitionMapping(start_offset=-n))


def _spec(key: AssetKey, deps: list, table, grain: str, description: str) -> AssetSpec:
    return AssetSpec(
        key,
        deps=deps,
        description=description,
        group_name=GROUP,
        kinds={"pandas", "sql"},
        owners=[OWNER],
        metadata={**table_metadata(table), "grain": grain},
        partitions_def=trading_days,
    )


SPECS = [
    # Dagster allows one partition mapping per upstream key in a multi-asset, so both snapshots (63
    # sessions of volatility) and correlations (90) declare the wider prices window.
    _spec(SNAP, ["portfolios", _window("prices", CORR_WINDOW)], tables.portfolio_snapshots, "portfolio × day",
          "One row per portfolio per trading day, a pure function of the ledger (positions, capital flows) "
          "and prices on the day and the previous session — never an earlier snapshot, so any day can be "
          "computed alone. Equity, cash, long/short/gross/net exposure, daily and cumulative P&L and flows, "
          "counts (positions, long, short, unpriced, stale), partial/stale flags, gross-weight concentration "
          f"(HHI, effective N, top-3/top-10) and the day's holdings' realised volatility over 21 and {VOL_WINDOW} "
          "sessions. Options ×100, private assets at their manual value, shorts negative, unpriced "
          "positions reported (never valued at 0)."),
    _spec(CORR, ["portfolios", _window("prices", CORR_WINDOW), SNAP], tables.correlations, "portfolio × day",
          f"Per portfolio: PUBLIC positions with |MV| ≥ ${CORR_MIN_VALUE:,.0f} and ≥ {CORR_MIN_WEIGHT:.0%} of gross; "
          f"Pearson correlation of log returns over {CORR_WINDOW} sessions on pairwise complete cases (≥ "
          f"{CORR_MIN_OVERLAP} overlapping days), PSD repair by eigenvalue clipping; the matrix stored "
          "compactly (JSON upper triangle, one row per portfolio-day) with the value-weighted average "
          "correlation and the effective number of positions."),
    _spec(EXPO, ["symbol_betas", "ridge_factors", "spread_factors", SNAP], tables.aggregated_exposures,
          "portfolio × day × factor",
          "Per portfolio, day and factor (market, ir, provider, 6 ridge styles, 4 spreads): exposure_dollar = "
          "Σ MV·β over PUBLIC positions with a β, exposure_value = exposure_dollar / equity, and coverage "
          "(share of public gross value with a β). Missing betas are excluded and counted, never 0; options "
          "are counted as missing (no delta)."),
    _spec(STRESS, ["symbol_betas", "ridge_factors", "factor_covariance", SNAP, EXPO], tables.stress_results,
          "portfolio × day × scenario",
          "Stress P&L per portfolio, day and active scenario of `stress_scenarios.yaml`: direct (named shocks "
          "only) and correlated (unshocked factors filled with their conditional expectation under the "
          "day's `factor_covariance`), correlation effect, % of equity and the top contributing positions. "
          "Rate shocks move TLT by −duration·Δy; a long position never loses more than its value."),
]

CHECKS = [
    AssetCheckSpec("equity_finite", asset=SNAP, description="Equity is finite for every portfolio-day."),
    AssetCheckSpec("gross_ge_abs_net", asset=SNAP, description="Gross exposure ≥ |net exposure|."),
    AssetCheckSpec("matrices_psd", asset=CORR,
                   description="Stored correlation matrices are PSD after repair; average correlation in [−1, 1]."),
    AssetCheckSpec("exposure_coverage", asset=EXPO,
                   description=f"Market-beta coverage of public gross value ≥ {COVERAGE_WARN:.0%} (warn)."),
    AssetCheckSpec("every_active_scenario", asset=STRESS,
                   description="A stress row for every active scenario for every portfolio-day."),
]


@multi_asset(
    name="portfolio_analytics",
    specs=SPECS,
    check_specs=CHECKS,
    can_subset=True,
    partitions_def=trading_days,
    backfill_policy=BackfillPolicy.single_run(),
    op_tags=MEMORY_HEAVY_TAG,
)
def portfolio_analytics(context: AssetExecutionContext, warehouse: WarehouseResource):
    days = run_days(context)
    wh = warehouse.get()
    release_price_window()
    selected = set(context.selected_asset_keys)
    books, positions, flows = read_ledger(wh)
    positions = positions[~positions["deleted"].astype(bool)] if len(positions) else positions
    scenarios = load_scenarios(scenarios_file())
    market_symbols = sorted(set(positions.loc[positions["investment_class"] != "PRIVATE", "symbol"])) if len(positions) else []
    size = batch.chunk_days(len(books))
    chunks = calendar.chunks(days, size)
    workers = batch.worker_count(len(chunks))
    inputs = batch.Inputs(url=wh.url, selected=frozenset(k.to_user_string() for k in selected), books=books,
                          positions=positions, flows=flows, scenarios=scenarios, market_symbols=market_symbols,
                          last_day=days[-1] if len(days) else None)
    context.log.info(f"portfolio_analytics: {len(books)} portfolios, {len(positions)} positions, "
                     f"{len(market_symbols)} market symbols, {len(days)} day(s) in {len(chunks)} chunk(s) of ≤ "
                     f"{size} on {workers} process(es), selected {sorted(inputs.selected)}")
    totals = batch.Totals()

    def progress(res: batch.ChunkResult, n_done: int) -> None:
        totals.add(res)
        context.log.info(f"portfolio_analytics: {res.start.date()}..{res.end.date()} stored by pid {res.pid} "
                         f"({n_done}/{len(chunks)} chunks; seconds {res.seconds}; rows {res.rows}; "
                         f"rows so far { {t: n for t, n in totals.rows.items() if t in inputs.selected} })")

    batch.run_chunks(inputs, chunks, workers, on_done=progress)
    for key in (SNAP, CORR, EXPO, STRESS):
        if key in selected:
            name = key.to_user_string()
            yield _result(context, key, days, totals.stats(name), totals.preview.get(name, pd.DataFrame()),
                          totals.rows[name], scenarios, len(books))


def _selected_checks(context, key: AssetKey, results: list[AssetCheckResult]) -> list[AssetCheckResult]:
    chosen = context.selected_asset_check_keys
    return [r for r in results if AssetCheckKey(key, r.check_name) in chosen]


def _result(context, key, days, stats: dict, last: pd.DataFrame, written: int, scenarios,
            n_books: int) -> MaterializeResult:
    """Metadata and check results from the merged chunk statistics (``portfolio_batch.Totals``) and
    the last day's rows (``last``, for previews)."""
    meta = {**range_metadata(days), "rows": written, "portfolios": len(stats.get("portfolio_ids", ()))}
    checks: list[AssetCheckResult] = []
    if key == SNAP:
        non_finite = stats.get("non_finite_equity", 0)
        meta.update({
            "partial_portfolio_days": stats.get("partial_portfolio_days", 0),
            "unpriced_positions_latest": int(last["unpriced_count"].sum()) if len(last) else 0,
            "total_equity_latest": float(last["equity"].sum()) if len(last) else 0.0,
            "preview": md_table(last[["portfolio_id", "equity", "gross_exposure", "net_exposure", "daily_pnl",
                                      "daily_return", "position_count", "unpriced_count", "volatility_63d"]]
                                .sort_values("equity", ascending=False) if len(last) else last),
        })
        checks = [
            AssetCheckResult(asset_key=key, check_name="equity_finite", passed=non_finite == 0,
                             metadata={"non_finite": non_finite}),
            AssetCheckResult(asset_key=key, check_name="gross_ge_abs_net", passed=stats.get("gross_lt_abs_net", 0) == 0),
        ]
    elif key == CORR:
        avg = stats.get("avg_correlation", np.empty(0))
        meta.update({
            "median_avg_correlation": float(np.median(avg)) if len(avg) else float("nan"),
            "psd_repaired_rows": stats.get("psd_repaired_rows", 0),
            "insufficient_pairs": stats.get("insufficient_pairs", 0),
            "window": CORR_WINDOW, "min_overlap": CORR_MIN_OVERLAP,
            "filters": f"PUBLIC, |MV| ≥ {CORR_MIN_VALUE:,.0f}, ≥ {CORR_MIN_WEIGHT:.0%} of gross",
            "preview": md_table(last[["portfolio_id", "n_symbols", "avg_correlation", "effective_positions",
                                      "psd_repaired"]] if len(last) else last),
        })
        ok = stats.get("not_psd", 0) == 0 and stats.get("avg_out_of_range", 0) == 0
        checks = [AssetCheckResult(asset_key=key, check_name="matrices_psd", passed=ok)]
    elif key == EXPO:
        cov = stats.get("market_coverage", np.empty(0))
        low = int((cov < COVERAGE_WARN).sum())
        meta.update({
            "median_market_coverage": float(np.median(cov)) if len(cov) else float("nan"),
            "portfolio_days_below_coverage": low,
            "preview": md_table(last[["portfolio_id", "exposure_dollar", "exposure_value", "coverage",
                                      "positions_missing_beta"]].rename(columns={"exposure_value": "market_beta_exposure"})
                                if len(last) else last),
        })
        checks = [AssetCheckResult(asset_key=key, check_name="exposure_coverage", passed=low == 0, severity=AssetCheckSeverity.WARN,
                                   metadata={"portfolio_days_below": low})]
    elif key == STRESS:
        active = {s.id for s in scenarios.active}
        groups = stats.get("groups", 0)
        ok = groups == stats.get("complete_groups", 0) == len(days) * n_books
        worst = (last.sort_values("correlated_pct_equity").groupby("portfolio_id").head(1)
                 [["portfolio_id", "scenario_id", "direct_pnl", "correlated_pnl", "correlated_pct_equity"]]
                 if len(last) else last)
        meta.update({
            "active_scenarios": len(active),
            "rate_duration": scenarios.rate_duration,
            "worst_scenarios": md_table(worst),
        })
        checks = [AssetCheckResult(asset_key=key, check_name="every_active_scenario", passed=ok)]
    context.log.info(f"{key.to_user_string()}: {written} rows written")
    return MaterializeResult(asset_key=key, metadata=meta, check_results=_selected_checks(context, key, checks))
