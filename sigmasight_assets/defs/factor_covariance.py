"""``factor_covariance``: the day's EWMA covariance of the factor ETFs (market-wide, never scoped)."""

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    MaterializeResult,
    asset,
)

from ..calc.factors import COV_CLIP, COV_LAMBDA, COV_MIN_OBS, COV_WINDOW, FACTOR_ETFS
from ..pipelines import symbols as pipeline
from ..pipelines.windows import window_reader
from ..warehouse import schema as tables
from .common import (BACKFILL_POLICY, OWNER, checks_by_day, md_table, range_metadata, returns_window, run_days,
                     table_metadata)
from .market_assets import symbol_returns
from .partitions import trading_days
from .resources import WarehouseResource
from .symbol_regressions import GROUP


@asset(
    partitions_def=trading_days,
    backfill_policy=BACKFILL_POLICY,
    deps=[returns_window(symbol_returns, COV_WINDOW)],
    group_name=GROUP,
    kinds={"pandas", "numpy", "sql"},
    owners=[OWNER],
    metadata={**table_metadata(tables.factor_covariance), "grain": "day × factor pair"},
    check_specs=[
        AssetCheckSpec("symmetric_psd", asset="factor_covariance",
                       description="Each day's covariance matrix is symmetric and positive semi-definite."),
        AssetCheckSpec("correlation_clipped", asset="factor_covariance",
                       description=f"Off-diagonal correlations within ±{COV_CLIP}; unit diagonal."),
        AssetCheckSpec("every_day_present", asset="factor_covariance",
                       description=f"Every partition day has a matrix (needs ≥ {COV_MIN_OBS} complete ETF returns)."),
    ],
    description=(
        f"EWMA (λ = {COV_LAMBDA}) covariance and correlation of the daily total returns (`symbol_returns`) of {', '.join(FACTOR_ETFS)} "
        f"over the last {COV_WINDOW} returns as of the day (not as of today); off-diagonal correlations "
        f"clipped to ±{COV_CLIP} with PSD repair; fewer than {COV_MIN_OBS} observations → no rows. Full matrix, "
        "64 rows per day (both orders)."
    ),
)
def factor_covariance(context: AssetExecutionContext, warehouse: WarehouseResource) -> MaterializeResult:
    days, wh = run_days(context), warehouse.get()
    res = pipeline.factor_covariance(wh, window_reader(wh, context.run.run_id), days)
    context.log.info(f"factor_covariance: {res.days_with_matrix} day(s) with a matrix, {len(res.missing_days)} "
                     f"without; {res.written} rows")
    return checks_by_day(context, MaterializeResult(
        metadata={
            **range_metadata(days),
            "rows": res.written,
            "days_with_matrix": res.days_with_matrix,
            "days_without_matrix": len(res.missing_days),
            "window": COV_WINDOW,
            "lambda": COV_LAMBDA,
            "min_observations": COV_MIN_OBS,
            "correlation_clip": COV_CLIP,
            "latest_correlations": md_table(res.latest_correlations, max_rows=8, floatfmt="{:.2f}"),
        },
        check_results=[
            AssetCheckResult(check_name="symmetric_psd", passed=res.symmetric_psd,
                             metadata={"min_relative_eigenvalue": res.min_relative_eigenvalue}),
            AssetCheckResult(check_name="correlation_clipped", passed=res.clipped),
            AssetCheckResult(check_name="every_day_present", passed=not res.missing_days,
                             severity=AssetCheckSeverity.WARN, metadata={"missing": ", ".join(res.missing_days[:20])}),
        ],
    ))
