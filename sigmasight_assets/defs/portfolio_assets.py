"""Portfolio analytics: ``portfolio_snapshots``, ``correlations``, ``aggregated_exposures``,
``stress_results``.

The four assets share one expensive intermediate — every position's market value on every day — so
they are computed by one subsettable multi-asset: each keeps its own lineage, checks and table, can
be materialised alone, and a run that selects several values positions once per day. Days are
processed in chunks so a year-long backfill at full scale stays within memory; each chunk's
partitions are replaced atomically (delete-then-insert in one transaction per table).
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
from ..calc.correlation import portfolio_correlations
from ..calc.exposures import aggregate_exposures
from ..calc.returns import log_returns
from ..calc.snapshots import compute_snapshots
from ..calc.stress import compute_stress
from ..config import scenarios_file
from ..scenarios import load_scenarios
from ..warehouse import schema as tables
from ..warehouse.ledger import read_ledger
from .common import OWNER, md_table, range_metadata, run_days, table_metadata, write_partitions
from .partitions import trading_days
from .resources import WarehouseResource

GROUP = "portfolio_analytics"
STALE_SESSIONS = 5
VOL_WINDOW = 63
CORR_WINDOW, CORR_MIN_OVERLAP, CORR_MIN_VALUE, CORR_MIN_WEIGHT = 90, 30, 10_000.0, 0.01
COVERAGE_WARN = 0.80
CHUNK_DAYS = 21
# Largest contributors kept per (portfolio, day, scenario): the JSON is most of a stress row's bytes,
# and at 10,000 portfolios × 19 scenarios a year is 48M rows.
STRESS_TOP_CONTRIBUTORS = 3

SNAP_SUMMARY_COLUMNS = ["date", "portfolio_id", "equity", "gross_exposure", "net_exposure", "daily_pnl",
                        "daily_return", "position_count", "unpriced_count", "is_partial", "volatility_63d"]

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


def _read_prices(wh, symbols: list[str], start, end) -> tuple[pd.DataFrame, pd.DataFrame]:
    sess = calendar.sessions(start, end)
    px = wh.read("prices", start, end, keys=symbols, columns=["date", "symbol", "close", "adj_close"])
    close = px.pivot(index="date", columns="symbol", values="close").reindex(index=sess, columns=symbols)
    adj = px.pivot(index="date", columns="symbol", values="adj_close").reindex(index=sess, columns=symbols)
    return close, adj


def _betas(wh, start, end) -> pd.DataFrame:
    parts = [wh.read(t, start, end, columns=["date", "symbol", "factor", "beta"])
             for t in ("symbol_betas", "ridge_factors", "spread_factors")]
    return pd.concat(parts, ignore_index=True).dropna(subset=["beta"])


@multi_asset(
    name="portfolio_analytics",
    specs=SPECS,
    check_specs=CHECKS,
    can_subset=True,
    partitions_def=trading_days,
    backfill_policy=BackfillPolicy.single_run(),
)
def portfolio_analytics(context: AssetExecutionContext, warehouse: WarehouseResource):
    days = run_days(context)
    wh = warehouse.get()
    selected = set(context.selected_asset_keys)
    books, positions, flows = read_ledger(wh)
    positions = positions[~positions["deleted"].astype(bool)] if len(positions) else positions
    scenarios = load_scenarios(scenarios_file())
    market_symbols = sorted(set(positions.loc[positions["investment_class"] != "PRIVATE", "symbol"])) if len(positions) else []
    need_returns = CORR_WINDOW if CORR in selected else VOL_WINDOW
    totals = {k: 0 for k in (SNAP, CORR, EXPO, STRESS)}
    acc = {k: [] for k in (SNAP, CORR, EXPO, STRESS)}  # reduced per-chunk frames for checks/metadata
    active_ids = {s.id for s in scenarios.active}
    stress_ok: list[bool] = []
    stress_groups = 0
    context.log.info(f"portfolio_analytics: {len(books)} portfolios, {len(positions)} positions, "
                     f"{len(market_symbols)} market symbols, {len(days)} day(s), selected "
                     f"{sorted(k.to_user_string() for k in selected)}")
    for i in range(0, len(days), CHUNK_DAYS):
        chunk = days[i : i + CHUNK_DAYS]
        first = min(calendar.window_start(chunk[0], need_returns),
                    calendar.sessions_back(calendar.previous_session(chunk[0]), STALE_SESSIONS + 1)[0])
        close, adj = _read_prices(wh, market_symbols, first, chunk[-1])
        snaps, pv = compute_snapshots(books, positions, flows, close, chunk, STALE_SESSIONS, adj_close_wide=adj)
        if SNAP in selected:
            totals[SNAP] += write_partitions(wh, "portfolio_snapshots", snaps, chunk[0], chunk[-1])
            acc[SNAP].append(snaps[SNAP_SUMMARY_COLUMNS])
        if CORR in selected:
            corr = portfolio_correlations(pv, log_returns(adj), chunk, CORR_WINDOW, CORR_MIN_OVERLAP, CORR_MIN_VALUE,
                                          CORR_MIN_WEIGHT, portfolio_ids=books["portfolio_id"])
            totals[CORR] += write_partitions(wh, "correlations", corr, chunk[0], chunk[-1])
            acc[CORR].append(corr.drop(columns=["symbols", "matrix"]))
        if EXPO in selected or STRESS in selected:
            betas = _betas(wh, chunk[0], chunk[-1])
        if EXPO in selected:
            expo = aggregate_exposures(pv, betas, snaps)
            totals[EXPO] += write_partitions(wh, "aggregated_exposures", expo, chunk[0], chunk[-1])
            acc[EXPO].append(expo[expo["factor"] == "market"])
        if STRESS in selected:
            cov = wh.read("factor_covariance", chunk[0], chunk[-1])
            stress, _ = compute_stress(pv, betas, snaps, cov, scenarios.scenarios, duration=scenarios.rate_duration,
                                       top_n=STRESS_TOP_CONTRIBUTORS)
            totals[STRESS] += write_partitions(wh, "stress_results", stress, chunk[0], chunk[-1])
            # A year at 10,000 portfolios is 48M stress rows: keep the check's verdict per chunk and
            # only the chunk's last day for the preview, never the whole range in memory.
            per_book = stress[stress["scenario_id"].isin(active_ids)].groupby(["date", "portfolio_id"]).size()
            stress_ok.append(bool((per_book == len(active_ids)).all()))
            stress_groups += len(per_book)
            acc[STRESS].append(stress.loc[stress["date"] == chunk[-1]].drop(columns=["top_contributors"]))
        context.log.info(f"portfolio_analytics: {chunk[0].date()}..{chunk[-1].date()} done "
                         f"({min(i + CHUNK_DAYS, len(days))}/{len(days)} days; rows so far "
                         f"{ {k.to_user_string(): v for k, v in totals.items() if k in selected} })")
    for key in (SNAP, CORR, EXPO, STRESS):
        if key in selected:
            frame = pd.concat(acc[key], ignore_index=True) if acc[key] else pd.DataFrame()
            stress_complete = all(stress_ok) and stress_groups == len(days) * len(books)
            yield _result(context, key, days, frame, totals[key], scenarios, books, stress_complete)


def _selected_checks(context, key: AssetKey, results: list[AssetCheckResult]) -> list[AssetCheckResult]:
    chosen = context.selected_asset_check_keys
    return [r for r in results if AssetCheckKey(key, r.check_name) in chosen]


def _result(context, key, days, frame, written, scenarios, books, stress_complete: bool) -> MaterializeResult:
    meta = {**range_metadata(days), "rows": written, "portfolios": int(frame["portfolio_id"].nunique()) if len(frame) else 0}
    checks: list[AssetCheckResult] = []
    last = frame[frame["date"] == frame["date"].max()] if len(frame) else frame
    if key == SNAP:
        eq_ok = bool(np.isfinite(frame["equity"]).all()) if len(frame) else True
        gn_ok = bool((frame["gross_exposure"] + 1e-6 >= frame["net_exposure"].abs()).all()) if len(frame) else True
        meta.update({
            "partial_portfolio_days": int(frame["is_partial"].sum()) if len(frame) else 0,
            "unpriced_positions_latest": int(last["unpriced_count"].sum()) if len(last) else 0,
            "total_equity_latest": float(last["equity"].sum()) if len(last) else 0.0,
            "preview": md_table(last[["portfolio_id", "equity", "gross_exposure", "net_exposure", "daily_pnl",
                                      "daily_return", "position_count", "unpriced_count", "volatility_63d"]]
                                .sort_values("equity", ascending=False)),
        })
        checks = [
            AssetCheckResult(asset_key=key, check_name="equity_finite", passed=eq_ok,
                             metadata={"non_finite": int((~np.isfinite(frame["equity"])).sum()) if len(frame) else 0}),
            AssetCheckResult(asset_key=key, check_name="gross_ge_abs_net", passed=gn_ok),
        ]
    elif key == CORR:
        ok = True
        if len(frame):
            eig = frame["min_eigenvalue"].dropna()
            avg = frame["avg_correlation"].dropna()
            ok = bool((eig >= -1e-8).all() and ((avg >= -1 - 1e-12) & (avg <= 1 + 1e-12)).all())
        meta.update({
            "median_avg_correlation": float(frame["avg_correlation"].median()) if len(frame) else float("nan"),
            "psd_repaired_rows": int(frame["psd_repaired"].sum()) if len(frame) else 0,
            "insufficient_pairs": int(frame["n_pairs_insufficient"].sum()) if len(frame) else 0,
            "window": CORR_WINDOW, "min_overlap": CORR_MIN_OVERLAP,
            "filters": f"PUBLIC, |MV| ≥ {CORR_MIN_VALUE:,.0f}, ≥ {CORR_MIN_WEIGHT:.0%} of gross",
            "preview": md_table(last[["portfolio_id", "n_symbols", "avg_correlation", "effective_positions",
                                      "psd_repaired"]]),
        })
        checks = [AssetCheckResult(asset_key=key, check_name="matrices_psd", passed=ok)]
    elif key == EXPO:
        cov = frame["coverage"].dropna() if len(frame) else pd.Series(dtype=float)
        low = int((cov < COVERAGE_WARN).sum())
        meta.update({
            "median_market_coverage": float(cov.median()) if len(cov) else float("nan"),
            "portfolio_days_below_coverage": low,
            "preview": md_table(last[["portfolio_id", "exposure_dollar", "exposure_value", "coverage",
                                      "positions_missing_beta"]].rename(columns={"exposure_value": "market_beta_exposure"})),
        })
        checks = [AssetCheckResult(asset_key=key, check_name="exposure_coverage", passed=low == 0, severity=AssetCheckSeverity.WARN,
                                   metadata={"portfolio_days_below": low})]
    elif key == STRESS:
        active = {s.id for s in scenarios.active}
        ok = stress_complete
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
