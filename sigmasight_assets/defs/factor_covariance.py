"""``factor_covariance``: the day's EWMA covariance of the factor ETFs (market-wide, never scoped)."""

import pandas as pd
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
        check_results=_checks(res.symmetric_psd, res.min_relative_eigenvalue, res.clipped, res.missing_days),
    ), lambda day: _day_checks(res, day))


def _checks(symmetric_psd: bool, min_relative_eigenvalue: float, clipped: bool,
            missing_days: list[str]) -> list[AssetCheckResult]:
    """The checks of the range or of one day: its matrices' verdicts and the days without a matrix."""
    return [
        AssetCheckResult(check_name="symmetric_psd", passed=symmetric_psd,
                         metadata={"min_relative_eigenvalue": min_relative_eigenvalue}),
        AssetCheckResult(check_name="correlation_clipped", passed=clipped),
        AssetCheckResult(check_name="every_day_present", passed=not missing_days,
                         severity=AssetCheckSeverity.WARN, metadata={"missing": ", ".join(missing_days[:20])}),
    ]


def _day_checks(res: pipeline.CovarianceResult, day) -> list[AssetCheckResult]:
    """One day's checks: a day without a matrix has nothing to be asymmetric or unclipped (its
    smallest eigenvalue is NaN, not 0) and fails ``every_day_present``."""
    day = pd.Timestamp(day).normalize()
    if day not in res.by_day.index:
        return _checks(True, float("nan"), True, [day.date().isoformat()])
    row = res.by_day.loc[day]
    return _checks(bool(row["symmetric_psd"]), float(row["min_relative_eigenvalue"]), bool(row["clipped"]), [])
