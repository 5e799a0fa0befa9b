"""``symbol_metrics``: the denormalised per-symbol daily view (returns, volatility, valuations, betas)."""

from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetExecutionContext,
    MaterializeResult,
    MetadataValue,
    asset,
)

from ..calc.metrics import METRICS_WINDOW
from ..pipelines import symbols as pipeline
from ..pipelines.windows import window_reader
from ..warehouse import schema as tables
from .common import (BACKFILL_POLICY, OWNER, ScopeConfig, checks_by_day, md_table, range_metadata, returns_window,
                     run_days, scope_symbols, table_metadata)
from .market_assets import daily_valuations, prices, symbol_returns, symbol_universe
from .partitions import trading_days
from .resources import WarehouseResource
from .symbol_regressions import GROUP, ridge_factors, spread_factors, symbol_betas

PREVIEW_COLUMNS = ["symbol", "close", "return_1d", "return_ytd", "volatility_63d", "pe", "beta_market", "beta_ir"]


@asset(
    partitions_def=trading_days,
    backfill_policy=BACKFILL_POLICY,
    deps=[symbol_universe, prices, returns_window(symbol_returns, METRICS_WINDOW), daily_valuations, symbol_betas, ridge_factors,
          spread_factors],
    group_name=GROUP,
    kinds={"pandas", "sql"},
    owners=[OWNER],
    metadata={**table_metadata(tables.symbol_metrics), "grain": "symbol × day"},
    check_specs=[
        AssetCheckSpec("one_row_per_symbol_day", asset="symbol_metrics", description="No duplicate (date, symbol) rows."),
        AssetCheckSpec("volatility_non_negative", asset="symbol_metrics", description="Realised volatilities are ≥ 0."),
    ],
    description=(
        "The denormalised per-symbol daily view: total returns (compounded from `symbol_returns`; missing when "
        "a daily return of the span is) over 1 day, month-to-date, year-to-date, 1 month "
        "(21 sessions), 3 months (63), 1 year (252); the day's close; realised volatility over 21 and 63 sessions "
        "(annualised, √252); the day's valuation fields; and every factor beta side by side "
        "(`beta_<factor>`). One row per public symbol × day."
    ),
)
def symbol_metrics(context: AssetExecutionContext, config: ScopeConfig, warehouse: WarehouseResource) -> MaterializeResult:
    days, wh, scope = run_days(context), warehouse.get(), scope_symbols(config)
    res = pipeline.symbol_metrics(wh, window_reader(wh, context.run.run_id), days, scope)
    context.log.info(f"symbol_metrics: {res.written} rows for {len(res.symbols)} symbols")
    last = res.last
    return checks_by_day(context, MaterializeResult(
        metadata={
            **range_metadata(days),
            "rows": res.written,
            "symbols": len(res.symbols),
            "field_coverage": MetadataValue.json(res.coverage()),
            "preview": md_table(last[PREVIEW_COLUMNS].sort_values("symbol") if len(last) else last),
        },
        check_results=_checks(res.duplicated, res.negative_volatility),
    ), lambda day: _checks(res.by_day.get(day, "duplicated") > 0, res.by_day.get(day, "negative_volatility") > 0))


def _checks(duplicated: bool, negative_volatility: bool) -> list[AssetCheckResult]:
    """The checks of the range or of one day (whether it has a duplicate row, a negative volatility)."""
    return [
        AssetCheckResult(check_name="one_row_per_symbol_day", passed=not duplicated),
        AssetCheckResult(check_name="volatility_non_negative", passed=not negative_volatility),
    ]
