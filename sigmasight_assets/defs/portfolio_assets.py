"""Portfolio analytics: ``portfolio_snapshots``, ``correlations``, ``aggregated_exposures``,
``stress_results``.

The four assets share one expensive intermediate — every position's market value on every day — so
they are computed by one subsettable multi-asset: each keeps its own lineage, checks and table, can
be materialised alone, and a run that selects several values positions once per day. (A backfill
of more days than a run holds splits the four across lineage layers, each valuing positions again;
a non-subsettable multi-asset would avoid that, but Dagster then refuses the asset graph's
partition dialog, whose look-back expansion targets different days for the four.) The range work
is ``pipelines.portfolio.run``: bounded batches of days and portfolios, each chunk of days replaced
atomically in every selected table. Run config ``portfolio_ids`` scopes a run to those books (only
their rows are replaced).
"""


import numpy as np
import pandas as pd
from dagster import (
    AssetCheckKey,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetSpec,
    MaterializeResult,
    MetadataValue,
    multi_asset,
)

from .. import config as settings
from ..calc.correlation import CORR_MIN_OVERLAP, CORR_MIN_VALUE, CORR_MIN_WEIGHT, CORR_WINDOW
from ..pipelines import portfolio as pipeline
from ..pipelines.windows import window_reader
from ..scenarios import load_scenarios
from ..warehouse import schema as tables
from .common import (BACKFILL_POLICY, OWNER, PortfolioScopeConfig, checks_by_day, dollars, lookback, md_table,
                     percent, range_metadata, returns_window, run_days, scope_portfolios, table_metadata)
from .partitions import trading_days
from .replays import replay_dep
from .resources import WarehouseResource

GROUP = "portfolio_analytics"
COVERAGE_WARN = 0.80
# Read when the definitions load, so a bad value fails before any run starts.
BATCH_PORTFOLIO_DAYS = settings.batch_portfolio_days(pipeline.BATCH_PORTFOLIO_DAYS)

SNAP, CORR, EXPO, STRESS = (AssetKey(k) for k in pipeline.TABLES)


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
    # sessions of volatility) and correlations (90) declare the wider returns window. Snapshots value
    # positions with the close of the day (or a stale one within 5 sessions) and the previous session.
    _spec(SNAP, ["portfolios", lookback("prices", pipeline.STALE_SESSIONS + 1),
                 returns_window("symbol_returns", CORR_WINDOW)], tables.portfolio_snapshots, "portfolio × day",
          "One row per portfolio per trading day, a pure function of the ledger (positions, capital flows, "
          "private marks), prices on the day and the previous session and the corporate actions since entry — "
          "never an earlier snapshot, so any day can be computed alone. Quantities include every split after "
          "entry (a split is never a loss); dividends are cash on the ex-date (credited to longs, debited from "
          "shorts; `dividends`). Equity, cash, long/short/gross/net exposure, daily and cumulative P&L and flows, "
          "counts (positions, long, short, unpriced, stale), partial/stale flags, gross-weight concentration "
          f"(HHI, effective positions 1/HHI, top-3/top-10) and the day's holdings' realised volatility over 21 and {pipeline.VOL_WINDOW} "
          "sessions (on `symbol_returns`). Options ×100, private assets at their last mark on or before the day "
          "(entry cost before the first), shorts negative; an unpriced position makes equity and every ratio "
          "on it NULL (`is_partial`, `unpriced_count`), never valued at 0."),
    _spec(CORR, ["portfolios", returns_window("symbol_returns", CORR_WINDOW), SNAP], tables.correlations, "portfolio × day",
          f"Per portfolio: PUBLIC positions with |MV| ≥ ${CORR_MIN_VALUE:,.0f} and ≥ {CORR_MIN_WEIGHT:.0%} of gross; "
          f"Pearson correlation of log(1 + total return) (`symbol_returns`) over {CORR_WINDOW} sessions on pairwise complete cases (≥ "
          f"{CORR_MIN_OVERLAP} overlapping days), PSD repair by eigenvalue clipping; the matrix stored "
          "compactly (JSON upper triangle, one row per portfolio-day) with the value-weighted average "
          "correlation and the correlation-adjusted effective number of positions."),
    _spec(EXPO, ["symbol_betas", "ridge_factors", "spread_factors", SNAP], tables.aggregated_exposures,
          "portfolio × day × factor",
          "Per portfolio, day and factor (market, ir, provider, 6 ridge styles, 4 spreads): exposure_dollar = "
          "Σ MV·β over PUBLIC positions with a β, exposure_value = exposure_dollar / equity, and coverage "
          "(share of public gross value with a β). Missing betas are excluded and counted, never 0; options "
          "are counted as missing (no delta)."),
    _spec(STRESS, ["factor_model", "factor_covariance", SNAP, *filter(None, [replay_dep()])], tables.READABLE["stress_results"],
          "portfolio × day × scenario",
          "Stress P&L per portfolio, day and active scenario of `stress_scenarios.yaml`, priced with the joint "
          "`factor_model` loadings so each factor move counts once: a scenario moves some factor ETFs; direct = "
          "only the named ETFs move (an unnamed style ETF moves with SPY, an unnamed TLT does not), correlated = "
          "every unnamed ETF at its conditional expectation under the day's `factor_covariance`; the ETF moves "
          "are mapped to the model's basis (SPY, TLT, styles in excess of SPY) and pnl = MV · (loadings · f). "
          "Correlation effect, % of equity, coverage (share of in-scope gross value with loadings) and the top "
          "contributing positions. Rate shocks move TLT by −duration·Δy; a long position never loses more than "
          "its value. Historical replays (`kind: replay`, category historical) apply a dated window's real "
          "compounded returns from `replay_window_returns` (a holding without its own complete window: loadings × "
          "the window's compounded factor moves, counted as proxied) → `correlated_pnl`, `coverage` and "
          "`replayed_share`; a window not in the warehouse is not replayable (NULL P&L, check warning), never 0."),
]

CHECKS = [
    AssetCheckSpec("equity_finite", asset=SNAP,
                   description="Equity is finite for every portfolio-day without an unpriced position, and NULL "
                               "exactly when one is unpriced (is_partial)."),
    AssetCheckSpec("gross_ge_abs_net", asset=SNAP, description="Gross exposure ≥ |net exposure|."),
    AssetCheckSpec("matrices_psd", asset=CORR,
                   description="Stored correlation matrices are PSD after repair; average correlation in [−1, 1]."),
    AssetCheckSpec("exposure_coverage", asset=EXPO,
                   description=f"Market-beta coverage of public gross value ≥ {COVERAGE_WARN:.0%} (warn)."),
    AssetCheckSpec("every_active_scenario", asset=STRESS,
                   description="A stress row for every active scenario for every portfolio-day."),
    AssetCheckSpec("replays_replayable", asset=STRESS,
                   description="Every active replay window is in replay_window_returns (warn: a replay that is not "
                               "replayable has NULL P&L)."),
]


@multi_asset(
    name="portfolio_analytics",
    specs=SPECS,
    check_specs=CHECKS,
    can_subset=True,
    partitions_def=trading_days,
    backfill_policy=BACKFILL_POLICY,
)
def portfolio_analytics(context: AssetExecutionContext, config: PortfolioScopeConfig, warehouse: WarehouseResource):
    days, wh, scope = run_days(context), warehouse.get(), scope_portfolios(config)
    selected = {k.to_user_string() for k in context.selected_asset_keys}
    scenarios = load_scenarios(settings.scenarios_file())
    context.log.info(f"portfolio_analytics: {len(days)} day(s), scope {scope or 'all portfolios'}, "
                     f"selected {sorted(selected)}, ≤ {BATCH_PORTFOLIO_DAYS:,} portfolio-days per batch")

    def progress(chunk: pipeline.ChunkReport) -> None:
        context.log.info(f"portfolio_analytics: {chunk.start.date()}..{chunk.end.date()} stored in {chunk.batches} "
                         f"batch(es); seconds {chunk.seconds}; rows {chunk.rows}")

    book, totals = pipeline.run(wh, window_reader(wh, context.run.run_id), days, selected, scenarios, scope,
                                BATCH_PORTFOLIO_DAYS, on_chunk=progress)
    n_books = len(book.portfolio_ids)
    on_day = _day_checks(totals, n_books)
    for key in (SNAP, CORR, EXPO, STRESS):
        if key.to_user_string() in selected:
            yield checks_by_day(context, _result(context, key, days, totals, scenarios, n_books, scope),
                                lambda day, key=key: _selected_checks(context, key, on_day(key, day)))


def _selected_checks(context, key: AssetKey, results: list[AssetCheckResult]) -> list[AssetCheckResult]:
    chosen = context.selected_asset_check_keys
    return [r for r in results if AssetCheckKey(key, r.check_name) in chosen]


def _result(context, key, days, totals: pipeline.Totals, scenarios, n_books: int, scope) -> MaterializeResult:
    """Metadata and check results of one table from the merged statistics (``pipeline.Totals``)."""
    name = key.to_user_string()
    written = totals.rows[name]
    c = totals.counts
    preview = totals.preview.get(name, pd.DataFrame())
    meta = {**range_metadata(days), "rows": written, "portfolios": len(totals.ids[name]),
            "scope": ", ".join(scope) if scope else "all portfolios"}
    checks: list[AssetCheckResult] = []
    if key == SNAP:
        non_finite = c.get("non_finite_equity", 0)
        meta.update({
            "partial_portfolio_days": c.get("partial_portfolio_days", 0),
            "unpriced_positions_latest": int(totals.last_day.get("unpriced_positions", 0)),
            "newest_day_total_equity": dollars(totals.last_day.get("total_equity", float("nan"))),
            "newest_day_total_equity_note": "sum over portfolios without an unpriced position",
            "newest_day_dividends": dollars(totals.last_day.get("dividends", float("nan"))),
            "dividend_portfolio_days": c.get("dividend_portfolio_days", 0),
            "preview": md_table(preview),
        })
        checks = _snapshot_checks(non_finite, c.get("gross_lt_abs_net", 0))
    elif key == CORR:
        avg = totals.array("avg_correlation")
        meta.update({
            "median_avg_correlation": round(float(np.median(avg)), 3) if len(avg) else float("nan"),
            "psd_repaired_rows": c.get("psd_repaired_rows", 0),
            "insufficient_pairs": c.get("insufficient_pairs", 0),
            "window": CORR_WINDOW, "min_overlap": CORR_MIN_OVERLAP,
            "filters": f"PUBLIC, |MV| ≥ {CORR_MIN_VALUE:,.0f}, ≥ {CORR_MIN_WEIGHT:.0%} of gross",
            "preview": md_table(preview),
        })
        checks = _correlation_checks(c.get("not_psd", 0), c.get("avg_out_of_range", 0))
    elif key == EXPO:
        cov = totals.array("market_coverage")
        low = int((cov < COVERAGE_WARN).sum())
        meta.update({
            "median_market_coverage_pct": percent(float(np.median(cov))) if len(cov) else float("nan"),
            "portfolio_days_below_coverage": low,
            "preview": md_table(preview.rename(columns={"exposure_value": "market_beta_exposure"})),
        })
        checks = [_exposure_check(cov, totals.by_day.top("lowest_market_coverage"))]
    elif key == STRESS:
        stress_cov = totals.array("stress_coverage")
        meta.update({
            "active_scenarios": len(scenarios.active),
            "rate_duration": scenarios.rate_duration,
            "median_coverage": float(np.median(stress_cov)) if len(stress_cov) else float("nan"),
            "loadings": "factor_model (joint ridge, 8 factors)",
            "worst_scenarios": md_table(preview),
        })
        meta["replays_not_replayable"] = MetadataValue.json(totals.not_replayable)
        checks = _stress_checks(c.get("stress_groups", 0), c.get("stress_complete_groups", 0), len(days) * n_books,
                                totals.by_day.top("stress_incomplete"), totals.not_replayable)
    context.log.info(f"{name}: {written} rows written")
    return MaterializeResult(asset_key=key, metadata=meta, check_results=_selected_checks(context, key, checks))


# -- the checks, on the range's statistics or one day's (one code path) ----------------------------------
def _snapshot_checks(non_finite: int, gross_lt_abs_net: int) -> list[AssetCheckResult]:
    """Portfolio-days whose equity is non-finite without being partial (or NaN while complete), and
    whose gross exposure is below |net|: both must be 0."""
    return [
        AssetCheckResult(asset_key=SNAP, check_name="equity_finite", passed=non_finite == 0,
                         metadata={"non_finite": non_finite}),
        AssetCheckResult(asset_key=SNAP, check_name="gross_ge_abs_net", passed=gross_lt_abs_net == 0),
    ]


def _correlation_checks(not_psd: int, avg_out_of_range: int) -> list[AssetCheckResult]:
    """Matrices with an eigenvalue below −1e-8 and average correlations outside [−1, 1]: both 0."""
    return [AssetCheckResult(asset_key=CORR, check_name="matrices_psd", passed=not_psd == 0 and avg_out_of_range == 0)]


def _exposure_check(cov: np.ndarray, lowest: pd.DataFrame) -> AssetCheckResult:
    """Portfolio-days (of ``cov``: market-beta coverage per portfolio-day, NaN excluded) below
    ``COVERAGE_WARN``; the lowest portfolio-days (``lowest``: date, portfolio_id, coverage) name them."""
    low = int((cov < COVERAGE_WARN).sum())
    worst = lowest.head(5).assign(coverage_pct=lambda f: (100 * f["coverage"]).round(1)).drop(columns="coverage") \
        if len(lowest) else lowest
    return AssetCheckResult(asset_key=EXPO, check_name="exposure_coverage", passed=low == 0,
                            severity=AssetCheckSeverity.WARN,
                            description=f"{low} of {len(cov)} portfolio-day(s) below {COVERAGE_WARN:.0%} market-beta "
                                        f"coverage of public gross value",
                            metadata={"portfolio_days_below": low,
                                      "lowest_coverage_pct": percent(float(cov.min())) if len(cov) else float("nan"),
                                      "lowest_portfolios": md_table(worst)})


def _stress_checks(groups: int, complete: int, expected: int, incomplete: pd.DataFrame,
                   not_replayable: dict[str, str]) -> list[AssetCheckResult]:
    """``every_active_scenario``: every expected portfolio-day (portfolios × days) has one row per
    active scenario (``incomplete``: date, portfolio_id, scenarios of those that do not);
    ``replays_replayable``: no active replay window is missing from the warehouse (the same on every
    day: a missing window leaves that scenario's P&L NULL on each day)."""
    return [AssetCheckResult(asset_key=STRESS, check_name="every_active_scenario",
                             passed=groups == complete == expected,
                             metadata={"portfolio_days": expected, "with_rows": groups, "complete": complete,
                                       "incomplete": md_table(incomplete)}),
            AssetCheckResult(asset_key=STRESS, check_name="replays_replayable", passed=not not_replayable,
                             severity=AssetCheckSeverity.WARN,
                             description=(None if not not_replayable else
                                          f"{len(not_replayable)} replay window(s) not in the warehouse "
                                          f"({', '.join(sorted(not_replayable))}): NULL P&L until their "
                                          "market data and replay_window_returns are backfilled"),
                             metadata={"not_replayable": MetadataValue.json(not_replayable)})]


def _day_checks(totals: pipeline.Totals, n_books: int):
    """``(key, day) → key's checks on that day alone``, from the per-day statistics (``totals.by_day``;
    the market-beta coverages are split by day once, on first use)."""
    d = totals.by_day
    coverage: dict = {}

    def on(key: AssetKey, day: pd.Timestamp) -> list[AssetCheckResult]:
        if key == SNAP:
            return _snapshot_checks(d.get(day, "non_finite_equity"), d.get(day, "gross_lt_abs_net"))
        if key == CORR:
            return _correlation_checks(d.get(day, "not_psd"), d.get(day, "avg_out_of_range"))
        if key == EXPO:
            if not coverage:
                cov = totals.dated("market_coverage")
                coverage.update((pd.Timestamp(k), v.to_numpy()) for k, v in cov.groupby(level=0))
            return [_exposure_check(coverage.get(pd.Timestamp(day), np.empty(0)), d.top("lowest_market_coverage", day))]
        return _stress_checks(d.get(day, "stress_groups"), d.get(day, "stress_complete_groups"), n_books,
                              d.top("stress_incomplete", day), totals.not_replayable)

    return on
