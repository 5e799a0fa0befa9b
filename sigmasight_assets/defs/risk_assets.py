"""Ex-ante risk: ``portfolio_risk``, ``risk_contributions``, ``var_backtest``.

One subsettable multi-asset (op ``risk_analytics``): the three tables share the day's covered book
(positions valued, loadings attached), so a run that selects several builds it once per day. The
range work is ``pipelines.risk.run`` (chunks of days, batches of portfolios, each chunk replaced
atomically in every selected table). Run config ``portfolio_ids`` scopes a run to those books.
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
from ..calc.var import BACKTEST_WINDOW, HIST_MIN_OBSERVATIONS, HIST_WINDOW
from ..pipelines import risk as pipeline
from ..pipelines.portfolio import BATCH_PORTFOLIO_DAYS as DEFAULT_BATCH, STALE_SESSIONS
from ..pipelines.windows import window_reader
from ..warehouse import schema as tables
from .common import (BACKFILL_POLICY, OWNER, PortfolioScopeConfig, checks_by_day, lookback, md_table, range_metadata,
                     returns_window, run_days,
                     scope_portfolios, table_metadata)
from .partitions import trading_days
from .resources import WarehouseResource

GROUP = "portfolio_analytics"  # beside the portfolio assets it builds on, in the UI
OP_NAME = "risk_analytics"
COVERAGE_WARN = 0.80
BATCH_PORTFOLIO_DAYS = settings.batch_portfolio_days(DEFAULT_BATCH)

RISK, CONTRIB, BACKTEST = (AssetKey(k) for k in pipeline.TABLES)
# D's hypothetical P&L prices D−1's covered holdings (D−1's model); the simulation window reaches 250
# returns before D−1 (symbol_returns from D−250); positions are valued on D−1 and D with the stale
# look-back of the snapshots (prices from D−7).
RISK_DEPS = [lookback("factor_model", 1), "factor_covariance", "portfolio_snapshots",
             lookback("prices", STALE_SESSIONS + 2), returns_window("symbol_returns", HIST_WINDOW + 1)]


def _spec(key: AssetKey, deps: list, table, grain: str, description: str) -> AssetSpec:
    return AssetSpec(key, deps=deps, description=description, group_name=GROUP, kinds={"pandas", "sql"},
                     owners=[OWNER], metadata={**table_metadata(table), "grain": grain}, partitions_def=trading_days)


SPECS = [
    _spec(RISK, RISK_DEPS, tables.portfolio_risk, "portfolio × day",
          "Ex-ante risk of each portfolio-day from the joint factor model: total, factor and specific daily "
          "volatility in USD and % of equity (annualised ×√252), factor share, beta to SPY and tracking error "
          "against SPY; 1-day VaR and ES at 95 % and 99 %, parametric (normal, ex-ante σ) and historical "
          f"(today's holdings on the last {HIST_WINDOW} sessions' total returns, factor proxy for a missing "
          f"return, ≥ {HIST_MIN_OBSERVATIONS} days); coverage and the counts of what was excluded (options, "
          "private, unpriced, no loadings) — never 0 for what was not measured; and the hypothetical P&L of "
          "the previous session's holdings on the day (what the VaR backtest compares)."),
    _spec(CONTRIB, RISK_DEPS, tables.risk_contributions, "portfolio × day × component (10 rows)",
          "Euler contributions to the daily ex-ante volatility: one row per factor (8) and one for specific "
          "risk (they sum to portfolio_risk.volatility_daily), and one row `top_positions` whose JSON lists "
          f"the {pipeline.TOP_POSITIONS} positions with the largest |contribution|."),
    _spec(BACKTEST, [lookback(RISK, BACKTEST_WINDOW)], tables.var_backtest, "portfolio × day",
          "VaR backtest: the parametric 99 % VaR of the previous session against the hypothetical P&L of "
          "that session's holdings on the day; exception flag, and over the trailing "
          f"{BACKTEST_WINDOW} sessions the exception count, Kupiec proportion-of-failures LR and p-value, "
          "Christoffersen independence LR and p-value, and the Basel traffic light (green 0–4, yellow "
          "5–9, red ≥ 10)."),
]

CHECKS = [
    AssetCheckSpec("risk_coverage", asset=RISK,
                   description=f"Share of public gross value with a factor model ≥ {COVERAGE_WARN:.0%} (warn)."),
    AssetCheckSpec("euler_sums_to_volatility", asset=CONTRIB,
                   description="Factor and specific contributions of every portfolio-day sum to its volatility."),
    AssetCheckSpec("traffic_light", asset=BACKTEST,
                   description="Warns when a portfolio's VaR backtest is yellow, fails when one is red; the "
                               "worst portfolios are in the metadata."),
]


@multi_asset(name=OP_NAME, specs=SPECS, check_specs=CHECKS, can_subset=True, partitions_def=trading_days,
             backfill_policy=BACKFILL_POLICY)
def risk_analytics(context: AssetExecutionContext, config: PortfolioScopeConfig, warehouse: WarehouseResource):
    days, wh, scope = run_days(context), warehouse.get(), scope_portfolios(config)
    selected = {k.to_user_string() for k in context.selected_asset_keys}
    context.log.info(f"{OP_NAME}: {len(days)} day(s), scope {scope or 'all portfolios'}, selected {sorted(selected)}")

    def progress(chunk: pipeline.ChunkReport) -> None:
        context.log.info(f"{OP_NAME}: {chunk.start.date()}..{chunk.end.date()} stored in {chunk.batches} batch(es); "
                         f"seconds {chunk.seconds}; rows {chunk.rows}")

    book, totals = pipeline.run(wh, window_reader(wh, context.run.run_id), days, selected, scope,
                                BATCH_PORTFOLIO_DAYS, on_chunk=progress)
    on_day = _day_checks(totals)
    chosen = context.selected_asset_check_keys
    for key in (RISK, CONTRIB, BACKTEST):
        if key.to_user_string() in selected:
            yield checks_by_day(context, _result(context, key, days, totals, scope),
                                lambda day, key=key: [r for r in on_day(key, day) if AssetCheckKey(key, r.check_name) in chosen])


def _result(context, key: AssetKey, days, totals: pipeline.RiskTotals, scope) -> MaterializeResult:
    name = key.to_user_string()
    c = totals.counts
    meta = {**range_metadata(days), "rows": totals.rows[name], "portfolios": len(totals.ids[name]),
            "scope": ", ".join(scope) if scope else "all portfolios",
            "seconds": MetadataValue.json({k: round(v, 2) for k, v in totals.seconds.items()})}
    checks: list[AssetCheckResult] = []
    if key == RISK:
        vol = totals.array("volatility_annual_pct_equity")
        cov = totals.array("coverage")
        low = int((cov < COVERAGE_WARN).sum())
        meta.update({
            "median_volatility_annual_pct_equity": float(np.median(vol)) if len(vol) else float("nan"),
            "median_coverage": float(np.median(cov)) if len(cov) else float("nan"),
            "portfolio_days_below_coverage": low,
            "portfolio_days_without_volatility": c.get("no_volatility", 0),
            "portfolio_days_without_historical_var": c.get("no_historical_var", 0),
            "excluded_positions": MetadataValue.json({k: c.get(k, 0) for k in (
                "positions_options", "positions_private", "positions_unpriced", "positions_no_loadings")}),
            "hist_proxied_returns": c.get("hist_proxied_returns", 0),
            "hist_window": HIST_WINDOW, "hist_min_observations": HIST_MIN_OBSERVATIONS,
            "preview": md_table(totals.preview.get(name, pd.DataFrame())),
        })
        checks = [_coverage_check(cov, totals.by_day.top("lowest_coverage"))]
    elif key == CONTRIB:
        off = c.get("euler_sum_off", 0)
        meta.update({"rows_per_portfolio_day": 10, "top_positions": pipeline.TOP_POSITIONS,
                     "largest_factor_contribution": md_table(totals.preview.get(name, pd.DataFrame()))})
        checks = [_euler_check(off, totals.by_day.top("euler_off"))]
    elif key == BACKTEST:
        lights = pd.Series(totals.lights, dtype=object)
        n = len(lights)
        red = sorted(lights.index[lights == "red"])
        yellow = sorted(lights.index[lights == "yellow"])
        share = (lambda k: len(k) / n if n else float("nan"))
        meta.update({
            "share_red": share(red), "share_yellow": share(yellow),
            "portfolios_without_light": int(lights.isna().sum()) if n else 0,
            "exception_rate": (c.get("backtest_exceptions", 0) / c["backtest_observations"]
                               if c.get("backtest_observations") else float("nan")),
            "window": BACKTEST_WINDOW,
            "worst_portfolios": md_table(totals.worst),
        })
        checks = [_traffic_light(len(red), len(yellow), red, yellow, totals.worst)]
    context.log.info(f"{name}: {totals.rows[name]} rows written")
    chosen = context.selected_asset_check_keys
    return MaterializeResult(asset_key=key, metadata=meta,
                             check_results=[r for r in checks if AssetCheckKey(key, r.check_name) in chosen])


# -- the checks, on the range's statistics or one day's (one code path) ----------------------------------
def _coverage_check(cov: np.ndarray, lowest: pd.DataFrame) -> AssetCheckResult:
    """Portfolio-days (of ``cov``: coverage per portfolio-day, NaN excluded) below ``COVERAGE_WARN``;
    the lowest portfolio-days (``lowest``: date, portfolio_id, coverage) name them."""
    low = int((cov < COVERAGE_WARN).sum())
    return AssetCheckResult(asset_key=RISK, check_name="risk_coverage", passed=low == 0,
                            severity=AssetCheckSeverity.WARN,
                            description=f"{low} of {len(cov)} portfolio-day(s) below {COVERAGE_WARN:.0%} coverage",
                            metadata={"portfolio_days_below": low, "threshold": COVERAGE_WARN,
                                      "lowest_coverage": md_table(lowest.head(5), floatfmt="{:.3f}")})


def _euler_check(off: int, worst: pd.DataFrame) -> AssetCheckResult:
    """Portfolio-days whose factor and specific shares do not sum to 1 (|Σ − 1| > 1e-8): must be 0."""
    return AssetCheckResult(asset_key=CONTRIB, check_name="euler_sums_to_volatility", passed=off == 0,
                            metadata={"portfolio_days_off": off, "worst": md_table(worst.head(5))})


def _traffic_light(n_red: int, n_yellow: int, red: list, yellow: list, worst) -> AssetCheckResult:
    """Fails when a portfolio is red, warns when one is yellow (Basel light of its trailing window);
    names the first 20 of each and the worst rows (most exceptions, lowest Kupiec p-value)."""
    severity = AssetCheckSeverity.ERROR if n_red else AssetCheckSeverity.WARN
    return AssetCheckResult(
        asset_key=BACKTEST, check_name="traffic_light", passed=not n_red and not n_yellow, severity=severity,
        metadata={"red": n_red, "yellow": n_yellow, "red_portfolios": ", ".join(red[:20]) or "—",
                  "yellow_portfolios": ", ".join(yellow[:20]) or "—", "worst": md_table(worst)})


def _day_checks(totals: pipeline.RiskTotals):
    """``(key, day) → key's checks on that day alone`` from ``totals.by_day`` (coverages split by day once)."""
    d = totals.by_day
    coverage: dict = {}

    def on(key: AssetKey, day: pd.Timestamp) -> list[AssetCheckResult]:
        if key == RISK:
            if not coverage:
                cov = totals.dated("coverage")
                coverage.update((pd.Timestamp(k), v.to_numpy()) for k, v in cov.groupby(level=0))
            return [_coverage_check(coverage.get(pd.Timestamp(day), np.empty(0)), d.top("lowest_coverage", day))]
        if key == CONTRIB:
            return [_euler_check(d.get(day, "euler_sum_off"), d.top("euler_off", day))]
        names = {c: list(d.top(c, day).get("portfolio_id", [])) for c in ("red", "yellow")}
        worst = d.top("worst", day)
        return [_traffic_light(d.get(day, "red"), d.get(day, "yellow"), names["red"], names["yellow"],
                               worst.drop(columns="date") if len(worst) else worst)]

    return on
