"""Factor betas of every symbol: ``symbol_betas``, ``ridge_factors``, ``spread_factors`` and the
joint ``factor_model``.

The maths is in ``calc`` and the range work in ``pipelines.symbols``; each asset maps its
partitions and scope to one pipeline call and reports the returned statistics.
"""

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    MaterializeResult,
    MetadataValue,
    asset,
)

from ..calc.factors import (
    BETA_CAP,
    BETA_MIN_OBS,
    BETA_WINDOW,
    RIDGE_ALPHA,
    RIDGE_MIN_OBS,
    RIDGE_WINDOW,
    SPREAD_DEFINITIONS,
    SPREAD_MIN_OBS,
    SPREAD_WINDOW,
    STYLE_ETFS,
)
from ..calc.factor_model import FACTOR_MODEL_MIN_OBSERVATIONS, FACTOR_MODEL_WINDOW, FACTOR_NAMES
from ..pipelines import symbols as pipeline
from ..pipelines.windows import window_reader
from ..warehouse import schema as tables
from .common import (BACKFILL_POLICY, OWNER, ScopeConfig, checks_by_day, md_table, range_metadata, returns_window,
                     run_days, scope_symbols, table_metadata)
from .market_assets import daily_valuations, symbol_returns, symbol_universe
from .partitions import trading_days
from .resources import WarehouseResource

GROUP = "symbol_analytics"
FAILURE_RATE_WARN = 0.10


def _checks(asset_name: str) -> list[AssetCheckSpec]:
    return [
        AssetCheckSpec("beta_within_cap", asset=asset_name, description=f"|beta| ≤ {BETA_CAP:g} after capping."),
        AssetCheckSpec("r_squared_in_unit_interval", asset=asset_name, description="Every r² lies in [0, 1]."),
        AssetCheckSpec("failure_rate", asset=asset_name,
                       description=f"Share of universe symbol-days without a result (warn above {FAILURE_RATE_WARN:.0%}), "
                                   "with the reasons and the worst symbols; a window without enough history yet "
                                   "is expected and reported apart. Per symbol-day reasons: `sigmasight symbol-status`."),
    ]


def _asset_kwargs(table, deps: list, description: str) -> dict:
    return dict(
        partitions_def=trading_days,
        backfill_policy=BACKFILL_POLICY,
        deps=deps,
        group_name=GROUP,
        kinds={"pandas", "numpy", "sql"},
        owners=[OWNER],
        metadata={**table_metadata(table), "grain": "symbol × day × factor"},
        check_specs=_checks(table.name),
        description=description,
    )


def failure_check(totals: pipeline.RegressionTotals) -> AssetCheckResult:
    """Failure rate of ``totals`` (the range's, or one day's: ``totals.on(day)``) with its reasons and
    worst symbols: skipped symbol-days other than a short history / universe symbol-days (0 when the
    universe is empty). A window that does not hold enough history yet (a new symbol, the first days
    of a warehouse) is expected and reported, not counted."""
    rate, short = totals.failure_rate, totals.history_short
    failed = {k: v for k, v in totals.reasons.items() if pipeline.HISTORY_REASON not in k}
    text = (f"{rate:.1%} of {totals.n_pairs:,} universe symbol-days failed"
            + (f" ({', '.join(f'{k}: {v:,}' for k, v in sorted(failed.items()))})" if failed else "")
            + (f"; {short:,} symbol-day(s) without enough history yet (expected, not counted)" if short else ""))
    worst = totals.worst_symbols()
    return AssetCheckResult(
        check_name="failure_rate", passed=rate <= FAILURE_RATE_WARN, severity=AssetCheckSeverity.WARN,
        description=text,
        metadata={"failure_rate_pct": round(100 * rate, 2), "not_enough_history_yet": short,
                  "failed_reasons": MetadataValue.json(failed),
                  "worst_symbols": MetadataValue.md("\n".join(f"- `{s}`: {n} day(s)" for s, n in worst) or "_none_"),
                  "reasons_table": "symbol_status (`sigmasight symbol-status SYMBOL`)"},
    )


def _regression_checks(totals: pipeline.RegressionTotals) -> list[AssetCheckResult]:
    """The checks of a regression asset on ``totals``: the range's or one day's (``totals.on(day)``)."""
    return [
        AssetCheckResult(check_name="beta_within_cap", passed=totals.beta_over_cap == 0),
        AssetCheckResult(check_name="r_squared_in_unit_interval", passed=totals.r2_outside == 0),
        failure_check(totals),
    ]


def _model_checks(totals: pipeline.RegressionTotals) -> list[AssetCheckResult]:
    """The checks of ``factor_model`` (loadings are not capped: no ``beta_within_cap``)."""
    checks = [c for c in _regression_checks(totals) if c.check_name != "beta_within_cap"]
    checks.append(AssetCheckResult(
        check_name="loadings_finite", passed=totals.beta_not_finite == 0 and totals.negative_specific_variance == 0,
        metadata={"loadings_not_finite": totals.beta_not_finite,
                  "negative_specific_variance": totals.negative_specific_variance}))
    return checks


def _by_day(context, totals: pipeline.RegressionTotals, result: MaterializeResult, checks=_regression_checks):
    """``result`` after recording each day's own verdicts (``checks`` on that day's statistics)."""
    return checks_by_day(context, result, lambda day: checks(totals.on(day)))


def _result(days, totals: pipeline.RegressionTotals, scope, params: dict) -> MaterializeResult:
    newest_share = totals.newest_with_result / totals.newest_pairs if totals.newest_pairs else 1.0
    return MaterializeResult(
        metadata={
            **range_metadata(days),
            **params,
            "newest_day_symbols_computed": totals.newest_with_result,
            "newest_day_universe_share_pct": round(100 * newest_share, 2),
            "rows": totals.written,
            "symbols_computed": len(totals.symbols),
            "symbol_days_computed": totals.with_result,
            "symbol_days_skipped": totals.skipped,
            "skipped_reasons": MetadataValue.json(totals.reasons),
            "universe_share_pct": round(100 * totals.share, 2),
            "median_beta": MetadataValue.json({k: round(v, 4) for k, v in totals.medians().items()}),
            "scope": ", ".join(scope) if scope else "all symbols",
            "beta_distribution": md_table(totals.beta_distribution(), max_rows=20, floatfmt="{:.3f}"),
        },
        check_results=_regression_checks(totals),
    )


@asset(**_asset_kwargs(
    tables.symbol_betas,
    [symbol_universe, returns_window(symbol_returns, BETA_WINDOW), daily_valuations],
    "Market beta (OLS with intercept of the symbol's point-in-time daily total returns, `symbol_returns`, on SPY's), IR beta (same on "
    f"TLT) over the last {BETA_WINDOW} returns ending on the day (min {BETA_MIN_OBS} complete cases, "
    f"beta capped to ±{BETA_CAP:g}; `intercept` is the fitted daily intercept), and the provider's "
    "published beta from `daily_valuations`. One row per symbol × day × factor (`market`, `ir`, `provider`).",
))
def symbol_betas(context: AssetExecutionContext, config: ScopeConfig, warehouse: WarehouseResource) -> MaterializeResult:
    days, wh, scope = run_days(context), warehouse.get(), scope_symbols(config)
    totals = pipeline.symbol_betas(wh, window_reader(wh, context.run.run_id), days, scope, context.log.info)
    return _by_day(context, totals, _result(days, totals, scope, {
        "window": BETA_WINDOW, "min_observations": BETA_MIN_OBS, "beta_cap": BETA_CAP,
        "regressors": "market=SPY, ir=TLT, provider=daily_valuations.provider_beta"}))


@asset(**_asset_kwargs(
    tables.ridge_factors,
    [symbol_universe, returns_window(symbol_returns, RIDGE_WINDOW)],
    "Ridge style factor betas: the symbol's returns on VTV (value), VUG (growth), MTUM (momentum), QUAL "
    f"(quality), IWM (size), USMV (low_volatility) over {RIDGE_WINDOW} returns (min {RIDGE_MIN_OBS}); "
    f"regressors standardised (population sd), intercept unpenalised, penalty {RIDGE_ALPHA:g} on the "
    f"standardised scale, coefficients mapped back (β = w/σ), capped ±{BETA_CAP:g}. `r_squared` is the "
    "model's; `ridge_penalty` holds the penalty the fit used.",
))
def ridge_factors(context: AssetExecutionContext, config: ScopeConfig, warehouse: WarehouseResource) -> MaterializeResult:
    days, wh, scope = run_days(context), warehouse.get(), scope_symbols(config)
    totals = pipeline.ridge_factors(wh, window_reader(wh, context.run.run_id), days, scope, context.log.info)
    return _by_day(context, totals, _result(days, totals, scope, {
        "window": RIDGE_WINDOW, "min_observations": RIDGE_MIN_OBS, "ridge_penalty": RIDGE_ALPHA, "beta_cap": BETA_CAP,
        "regressors": ", ".join(f"{k}={v}" for k, v in STYLE_ETFS.items())}))


@asset(**_asset_kwargs(
    tables.spread_factors,
    [symbol_universe, returns_window(symbol_returns, SPREAD_WINDOW)],
    "Spread factor betas: one univariate OLS with intercept per spread return — "
    + ", ".join(f"{k} ({a}−{b})" for k, (a, b) in SPREAD_DEFINITIONS.items())
    + f" — over {SPREAD_WINDOW} returns (min {SPREAD_MIN_OBS}), capped ±{BETA_CAP:g}, each with its own r².",
))
def spread_factors(context: AssetExecutionContext, config: ScopeConfig, warehouse: WarehouseResource) -> MaterializeResult:
    days, wh, scope = run_days(context), warehouse.get(), scope_symbols(config)
    totals = pipeline.spread_factors(wh, window_reader(wh, context.run.run_id), days, scope, context.log.info)
    return _by_day(context, totals, _result(days, totals, scope, {
        "window": SPREAD_WINDOW, "min_observations": SPREAD_MIN_OBS, "beta_cap": BETA_CAP,
        "spreads": ", ".join(f"{k}={a}-{b}" for k, (a, b) in SPREAD_DEFINITIONS.items())}))


FACTOR_MODEL_BASIS = ("market=SPY, rates=TLT, value_excess=VTV−SPY, growth_excess=VUG−SPY, momentum_excess=MTUM−SPY, "
                      "quality_excess=QUAL−SPY, size_excess=IWM−SPY, low_volatility_excess=USMV−SPY")


@asset(
    partitions_def=trading_days,
    backfill_policy=BACKFILL_POLICY,
    deps=[symbol_universe, returns_window(symbol_returns, FACTOR_MODEL_WINDOW)],
    group_name=GROUP,
    kinds={"pandas", "numpy", "sql"},
    owners=[OWNER],
    metadata={**table_metadata(tables.factor_model), "grain": "symbol × day × factor"},
    check_specs=[
        AssetCheckSpec("loadings_finite", asset="factor_model",
                       description="Every stored loading and specific variance is finite; specific variance ≥ 0."),
        AssetCheckSpec("r_squared_in_unit_interval", asset="factor_model", description="Every r² lies in [0, 1]."),
        AssetCheckSpec("failure_rate", asset="factor_model",
                       description=f"Share of universe symbol-days without a model (warn above "
                                   f"{FAILURE_RATE_WARN:.0%}); reasons are in `symbol_status`."),
    ],
    description=(
        "Joint factor model: one ridge regression per symbol and day of the symbol's daily total returns on "
        f"the 8 factors of the basis ({FACTOR_MODEL_BASIS}) over the last {FACTOR_MODEL_WINDOW} returns ending on "
        f"the day (complete cases, min {FACTOR_MODEL_MIN_OBSERVATIONS}); regressors standardised (population sd), "
        f"intercept unpenalised, penalty {RIDGE_ALPHA:g} on the standardised scale, loadings mapped back and not "
        "capped. Each market move enters once (through `market`): the style factors are in excess of SPY. "
        "`specific_variance` = SSR / (n − 9), `r_squared`, `observations` repeat on the symbol-day's 8 rows. "
        "Stress and risk read this table."
    ),
)
def factor_model(context: AssetExecutionContext, config: ScopeConfig, warehouse: WarehouseResource) -> MaterializeResult:
    days, wh, scope = run_days(context), warehouse.get(), scope_symbols(config)
    totals = pipeline.factor_model(wh, window_reader(wh, context.run.run_id), days, scope, context.log.info)
    result = _result(days, totals, scope, {
        "window": FACTOR_MODEL_WINDOW, "min_observations": FACTOR_MODEL_MIN_OBSERVATIONS,
        "ridge_penalty": RIDGE_ALPHA, "factors": ", ".join(FACTOR_NAMES), "basis": FACTOR_MODEL_BASIS})
    return _by_day(context, totals, MaterializeResult(metadata=result.metadata, check_results=_model_checks(totals)),
                   _model_checks)
