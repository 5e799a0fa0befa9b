"""Symbol analytics: ``symbol_betas``, ``ridge_factors``, ``spread_factors``, ``factor_covariance``,
``symbol_metrics``. The maths lives in ``calc/``; this module reads windows, filters to the universe,
writes, and reports."""

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetDep,
    AssetExecutionContext,
    BackfillPolicy,
    MaterializeResult,
    MetadataValue,
    TimeWindowPartitionMapping,
    asset,
)

from .. import calendar
from ..calc.covariance import ewma_factor_covariance
from ..calc.metrics import symbol_returns_metrics
from ..calc.regression import rolling_ols, rolling_ridge
from ..calc.returns import simple_returns
from ..calc.spreads import rolling_spread_betas, spread_returns
from ..config import FACTOR_ETFS, MARKET_ETF, RATES_ETF, STYLE_ETFS
from ..warehouse import schema as tables
from .common import MEMORY_HEAVY_TAG, OWNER, ScopeConfig, md_table, range_metadata, run_days, scope_symbols, table_metadata, write_partitions
from .market_assets import daily_valuations, prices, symbol_universe
from .partitions import trading_days
from .resources import WarehouseResource

GROUP = "symbol_analytics"
BETA_WINDOW, BETA_MIN_OBS = 90, 30
RIDGE_WINDOW, RIDGE_MIN_OBS, RIDGE_ALPHA = 90, 30, 1.0
SPREAD_WINDOW, SPREAD_MIN_OBS = 180, 60
COV_WINDOW, COV_LAMBDA, COV_MIN_OBS, COV_CLIP = 252, 0.94, 30, 0.95
METRICS_WINDOW = 252
BETA_CAP = 5.0
FAILURE_RATE_WARN = 0.10
REGRESSION_COLUMNS = ["date", "symbol", "factor", "beta", "raw_beta", "capped", "alpha", "r_squared",
                      "std_error", "p_value", "observations"]


def _window_dep(asset_def, n_returns: int) -> AssetDep:
    """Lineage of a lookback: day D reads ``prices`` of D-n..D (n returns need n+1 prices)."""
    return AssetDep(asset_def, partition_mapping=TimeWindowPartitionMapping(start_offset=-n_returns))


@dataclass
class SymbolInputs:
    days: pd.DatetimeIndex
    pairs: pd.DataFrame  # (date, symbol) of the public universe to report on
    returns: pd.DataFrame  # wide simple returns on every session of the window


# One run's price window, shared by the symbol assets of that run (in-process execution runs them
# one after another in the same process): (run id, warehouse url) → (first, last, symbols, frame).
_PRICE_WINDOW: dict[tuple[str, str], tuple[pd.Timestamp, pd.Timestamp, frozenset, pd.DataFrame]] = {}
_WIDEST = max(BETA_WINDOW, RIDGE_WINDOW, SPREAD_WINDOW, COV_WINDOW, METRICS_WINDOW)


def read_prices(wh, run_id: str | None, days: pd.DatetimeIndex, start, symbols: list[str],
                columns: list[str]) -> pd.DataFrame:
    """``prices`` rows of ``symbols`` from ``start`` to the last day, read once per run.

    Betas, ridge, spreads, covariance and metrics read overlapping windows (90 to 253 sessions) of
    the same prices: the first reader of a run fetches close and adj_close of the widest window
    (253 sessions before the first day) and later readers slice it; a later chunk of the range
    reads only the sessions after those cached. Keyed by the Dagster run id —
    within a run, ``prices`` is materialised before any of its readers start, so the slice equals
    a fresh read; a request outside the cached window or symbols reads the warehouse directly.
    """
    start = pd.Timestamp(start)
    wanted = ["date", "symbol", *columns]
    if run_id is None or not set(columns) <= {"close", "adj_close"}:
        return wh.read("prices", start, days[-1], keys=symbols, columns=wanted)
    key = (run_id, wh.url)
    hit = _PRICE_WINDOW.get(key)
    cols = ["date", "symbol", "close", "adj_close"]
    if hit is None or hit[0] > start or not set(symbols) <= hit[2]:
        first = min(start, calendar.window_start(days[0], _WIDEST))
        syms = sorted(set(symbols) | set(FACTOR_ETFS))
        frame = wh.read("prices", first, days[-1], keys=syms, columns=cols)
        _PRICE_WINDOW.clear()  # one run's window at a time
        hit = (first, days[-1], frozenset(syms), frame)
        _PRICE_WINDOW[key] = hit
    elif hit[1] < days[-1]:
        # A later chunk of the range: read only the sessions after the cached ones and keep the
        # whole run's window (a year at 5,000 symbols is ~2.5M rows, ~100 MB).
        tail = wh.read("prices", hit[1] + pd.Timedelta(days=1), days[-1], keys=sorted(hit[2]), columns=cols)
        hit = (hit[0], days[-1], hit[2], pd.concat([hit[3], tail], ignore_index=True))
        _PRICE_WINDOW[key] = hit
    px = hit[3]
    keep = (px["date"] >= start) & (px["date"] <= days[-1]) & px["symbol"].isin(symbols)
    return px.loc[keep.to_numpy(), wanted].reset_index(drop=True)


def release_price_window() -> None:
    """Drop the cached price window and hand freed heap back to the OS.

    The portfolio step calls this before it starts its workers: after a year of symbol assets in
    the same process, glibc keeps the freed frames' pages mapped (1-2 GB of RSS) unless asked to
    trim, and the run's memory is the sum over the process and its workers.
    """
    import ctypes
    import gc

    _PRICE_WINDOW.clear()
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim
        pass


def load_symbol_inputs(wh, days: pd.DatetimeIndex, n_returns: int, scope: list[str] | None,
                       run_id: str | None = None) -> SymbolInputs:
    """The public universe of ``days`` and the adj_close returns of its symbols plus the factor ETFs.

    Returns run over every session from ``n_returns`` sessions before the first day, so a symbol's
    window is the same whether the day is computed alone or inside a backfill.
    """
    uni = wh.read("symbol_universe", days[0], days[-1], keys=scope,
                  columns=["date", "symbol", "asset_class", "fetch"])
    pairs = uni[uni["fetch"].astype(bool) & (uni["asset_class"] == "PUBLIC")][["date", "symbol"]]
    symbols = sorted(set(pairs["symbol"]) | set(FACTOR_ETFS))
    sess = calendar.sessions(calendar.window_start(days[0], n_returns), days[-1])
    px = read_prices(wh, run_id, days, sess[0], symbols, ["adj_close"])
    wide = px.pivot(index="date", columns="symbol", values="adj_close").reindex(index=sess, columns=symbols)
    return SymbolInputs(days, pairs.reset_index(drop=True), simple_returns(wide))


def _restrict(frame: pd.DataFrame, pairs: pd.DataFrame) -> pd.DataFrame:
    return frame.merge(pairs, on=["date", "symbol"], how="inner")


def _regression_pairs(results: pd.DataFrame) -> pd.DataFrame:
    """(date, symbol) with at least one estimated beta; the provider's published beta is not an estimate."""
    return results.loc[results["factor"] != "provider", ["date", "symbol"]].drop_duplicates()


def _skip_status(asset_name: str, inputs: SymbolInputs, results: pd.DataFrame, skipped: pd.DataFrame) -> pd.DataFrame:
    """symbol_status rows for universe symbol-days without any estimated beta, with the calc's reason
    (the first one when several regressions were skipped), or 'no prices in the window'."""
    reasons = skipped.reindex(columns=["date", "symbol", "reason"]).drop_duplicates(["date", "symbol"])
    reasons["date"] = pd.to_datetime(reasons["date"])
    missing = inputs.pairs.merge(_regression_pairs(results).assign(_ok=1), on=["date", "symbol"], how="left")
    missing = missing[missing["_ok"].isna()][["date", "symbol"]]
    out = missing.merge(reasons, on=["date", "symbol"], how="left")
    out["reason"] = out["reason"].fillna("no prices in the window").astype(object)
    out["asset"] = asset_name
    out["status"] = "skipped"
    return out[["date", "symbol", "asset", "status", "reason"]].reset_index(drop=True)


def _reason_counts(status: pd.DataFrame) -> dict[str, int]:
    if status.empty:
        return {}
    kind = status["reason"].astype(str).str.split(":").str[0]
    return {k: int(v) for k, v in kind.value_counts().items()}


def _beta_distribution(results: pd.DataFrame) -> MetadataValue:
    last = results[results["date"] == results["date"].max()] if len(results) else results
    if last.empty:
        return MetadataValue.md("_no results_")
    q = last.groupby("factor")["beta"].describe(percentiles=[0.05, 0.25, 0.5, 0.75, 0.95])
    q = q.rename(columns={"count": "symbols"}).reset_index()
    return md_table(q[["factor", "symbols", "mean", "5%", "25%", "50%", "75%", "95%"]], max_rows=20)


# Sessions per chunk of a regression asset's range: a year at 5,000 symbols in one pass held several
# GB of (days × window × symbols) temporaries and result rows; 42 sessions keep it near 1 GB.
SYMBOL_CHUNK_DAYS = 42
# symbol_metrics joins every factor table's rows of its chunk (~110k beta rows a session at 5,000
# symbols): 21 sessions peak at ~0.9 GB against ~1.25 GB for 42, for the same total time. It runs
# beside the portfolio step's workers on the multiprocess executor, so its peak adds to theirs.
METRICS_CHUNK_DAYS = 21


@dataclass
class _RegressionTotals:
    """What the metadata and checks of a regression asset need, merged over the range's chunks."""

    written: int = 0
    n_pairs: int = 0
    with_result: int = 0
    skipped: int = 0
    reasons: dict = field(default_factory=dict)
    symbols: set = field(default_factory=set)
    beta_over_cap: int = 0
    r2_outside: int = 0
    betas: dict = field(default_factory=dict)  # factor → list of float32 arrays (for the medians)
    last: pd.DataFrame | None = None  # the latest day's results (its beta distribution)


def _store_regression(wh, asset_name: str, inputs: SymbolInputs, results: pd.DataFrame,
                      skipped: pd.DataFrame, scope, totals: _RegressionTotals) -> None:
    """Write one chunk's results and symbol_status rows, and merge its statistics into ``totals``."""
    days = inputs.days
    results = _restrict(results, inputs.pairs)
    for col in REGRESSION_COLUMNS:
        if col not in results.columns:
            results[col] = np.nan
    results = results[REGRESSION_COLUMNS]
    status = _skip_status(asset_name, inputs, results, skipped)
    totals.written += write_partitions(wh, asset_name, results, days[0], days[-1], keys=scope)
    write_partitions(wh, "symbol_status", status, days[0], days[-1], keys=scope, extra_filter={"asset": asset_name})
    totals.n_pairs += len(inputs.pairs)
    totals.with_result += len(_regression_pairs(results))
    totals.skipped += len(status)
    for k, v in _reason_counts(status).items():
        totals.reasons[k] = totals.reasons.get(k, 0) + v
    totals.symbols.update(results["symbol"].unique())
    beta = results["beta"].dropna()
    totals.beta_over_cap += int((beta.abs() > BETA_CAP + 1e-12).sum())
    r2 = results["r_squared"].dropna()
    totals.r2_outside += int(((r2 < -1e-12) | (r2 > 1 + 1e-12)).sum())
    for factor, b in results.groupby("factor")["beta"]:
        totals.betas.setdefault(factor, []).append(b.dropna().to_numpy(dtype=np.float32))
    if len(results):  # chunks come in date order: the latest non-empty one holds the latest day
        totals.last = results[results["date"] == results["date"].max()]


def _run_regression(context, wh, asset_name: str, days: pd.DatetimeIndex, n_returns: int, scope,
                    compute, params: dict) -> MaterializeResult:
    """Compute and store a regression asset chunk by chunk (``SYMBOL_CHUNK_DAYS`` sessions, each
    chunk's partitions replaced in one transaction), then report on the whole range.

    ``compute(inputs) → (results, skipped)`` works on one chunk's inputs; every day's window is read
    in full whatever the chunk, so chunking does not change a single number.
    """
    totals = _RegressionTotals()
    for i, chunk in enumerate(calendar.chunks(days, SYMBOL_CHUNK_DAYS)):
        inputs = load_symbol_inputs(wh, chunk, n_returns, scope, context.run_id)
        if i == 0:
            context.log.info(f"{asset_name}: {inputs.pairs['symbol'].nunique()} symbols × {len(days)} day(s) in "
                             f"chunks of ≤ {SYMBOL_CHUNK_DAYS}; returns window {inputs.returns.shape}")
        results, skipped = compute(inputs)
        _store_regression(wh, asset_name, inputs, results, skipped, scope, totals)
        del results, skipped, inputs
    return _regression_result(context, asset_name, days, totals, scope, params)


def _regression_result(context, asset_name: str, days, totals: _RegressionTotals, scope,
                       params: dict) -> MaterializeResult:
    n_pairs, with_result = totals.n_pairs, totals.with_result
    share = with_result / n_pairs if n_pairs else 1.0
    failure_rate = totals.skipped / n_pairs if n_pairs else 0.0
    reasons = totals.reasons
    context.log.info(f"{asset_name}: {with_result}/{n_pairs} symbol-days computed ({share:.1%}), "
                     f"{totals.skipped} skipped {reasons}, {totals.written} rows written")
    medians = {f: float(np.median(np.concatenate(v))) for f, v in sorted(totals.betas.items())
               if sum(len(a) for a in v)}
    return MaterializeResult(
        metadata={
            **range_metadata(days),
            **params,
            "rows": totals.written,
            "symbols_computed": len(totals.symbols),
            "symbol_days_computed": with_result,
            "symbol_days_skipped": totals.skipped,
            "skipped_reasons": MetadataValue.json(reasons),
            "universe_share": float(share),
            "median_beta": MetadataValue.json({k: round(v, 4) for k, v in medians.items()}),
            "scope": ", ".join(scope) if scope else "all symbols",
            "beta_distribution": _beta_distribution(totals.last if totals.last is not None else pd.DataFrame()),
        },
        check_results=[
            AssetCheckResult(check_name="beta_within_cap", passed=totals.beta_over_cap == 0),
            AssetCheckResult(check_name="r_squared_in_unit_interval", passed=totals.r2_outside == 0),
            AssetCheckResult(check_name="failure_rate", passed=failure_rate <= FAILURE_RATE_WARN,
                             severity=AssetCheckSeverity.WARN,
                             metadata={"failure_rate": float(failure_rate), "universe_share": float(share),
                                       "skipped": totals.skipped}),
        ],
    )


def _regression_checks(asset_name: str) -> list[AssetCheckSpec]:
    return [
        AssetCheckSpec("beta_within_cap", asset=asset_name, description=f"|beta| ≤ {BETA_CAP} after capping."),
        AssetCheckSpec("r_squared_in_unit_interval", asset=asset_name, description="Every r² lies in [0, 1]."),
        AssetCheckSpec("failure_rate", asset=asset_name,
                       description=f"Share of universe symbol-days without a result (warn above {FAILURE_RATE_WARN:.0%}); "
                                   "reasons are in `symbol_status`."),
    ]


def _asset_kwargs(table, checks_for: str, deps: list, description: str) -> dict:
    return dict(
        partitions_def=trading_days,
        backfill_policy=BackfillPolicy.single_run(),
        deps=deps,
        group_name=GROUP,
        kinds={"pandas", "numpy", "sql"},
        owners=[OWNER],
        metadata={**table_metadata(table), "grain": "symbol × day × factor"},
        check_specs=_regression_checks(checks_for),
        description=description,
    )


@asset(**_asset_kwargs(
    tables.symbol_betas, "symbol_betas",
    [symbol_universe, _window_dep(prices, BETA_WINDOW), daily_valuations],
    "Market beta (OLS with intercept of the symbol's daily simple returns on SPY's), IR beta (same on "
    f"TLT) over the last {BETA_WINDOW} returns ending on the day (min {BETA_MIN_OBS} complete cases, "
    f"beta capped to ±{BETA_CAP:g}), and the provider's published beta from `daily_valuations`. "
    "One row per symbol × day × factor (`market`, `ir`, `provider`).",
))
def symbol_betas(context: AssetExecutionContext, config: ScopeConfig, warehouse: WarehouseResource) -> MaterializeResult:
    days, wh, scope = run_days(context), warehouse.get(), scope_symbols(config)

    def compute(inputs: SymbolInputs):
        parts, skips = [], []
        for factor, etf in (("market", MARKET_ETF), ("ir", RATES_ETF)):
            res, skip = rolling_ols(inputs.returns, inputs.returns[etf], inputs.days, BETA_WINDOW, BETA_MIN_OBS,
                                    BETA_CAP)
            parts.append(res.assign(factor=factor))
            skips.append(skip.assign(reason=factor + " " + skip["reason"].astype(str)) if len(skip) else skip)
        vals = wh.read("daily_valuations", inputs.days[0], inputs.days[-1], keys=scope,
                       columns=["date", "symbol", "provider_beta"])
        vals = vals.dropna(subset=["provider_beta"])
        provider = pd.DataFrame({
            "date": vals["date"], "symbol": vals["symbol"], "factor": "provider",
            "beta": vals["provider_beta"].clip(-BETA_CAP, BETA_CAP), "raw_beta": vals["provider_beta"],
            "capped": vals["provider_beta"].abs() > BETA_CAP,
        })
        # A symbol-day counts as skipped (in symbol_status) only when neither regression produced a beta.
        return pd.concat([*parts, provider], ignore_index=True), pd.concat(skips, ignore_index=True)

    return _run_regression(context, wh, "symbol_betas", days, BETA_WINDOW, scope, compute,
                           {"window": BETA_WINDOW, "min_observations": BETA_MIN_OBS, "beta_cap": BETA_CAP,
                            "regressors": "market=SPY, ir=TLT, provider=daily_valuations.provider_beta"})


@asset(**_asset_kwargs(
    tables.ridge_factors, "ridge_factors",
    [symbol_universe, _window_dep(prices, RIDGE_WINDOW)],
    "Ridge style factor betas: the symbol's returns on VTV (value), VUG (growth), MTUM (momentum), QUAL "
    f"(quality), IWM (size), USMV (low_volatility) over {RIDGE_WINDOW} returns (min {RIDGE_MIN_OBS}); "
    f"regressors standardised (population sd), intercept unpenalised, alpha {RIDGE_ALPHA:g} on the "
    f"standardised scale, coefficients mapped back (β = w/σ), capped ±{BETA_CAP:g}. `r_squared` is the "
    "model's; `alpha` holds the ridge penalty.",
))
def ridge_factors(context: AssetExecutionContext, config: ScopeConfig, warehouse: WarehouseResource) -> MaterializeResult:
    days, wh, scope = run_days(context), warehouse.get(), scope_symbols(config)

    def compute(inputs: SymbolInputs):
        regressors = inputs.returns[list(STYLE_ETFS.values())].set_axis(list(STYLE_ETFS), axis=1)
        return rolling_ridge(inputs.returns, regressors, inputs.days, RIDGE_WINDOW, RIDGE_MIN_OBS, RIDGE_ALPHA,
                             BETA_CAP)

    return _run_regression(context, wh, "ridge_factors", days, RIDGE_WINDOW, scope, compute,
                           {"window": RIDGE_WINDOW, "min_observations": RIDGE_MIN_OBS, "ridge_alpha": RIDGE_ALPHA,
                            "beta_cap": BETA_CAP,
                            "regressors": ", ".join(f"{k}={v}" for k, v in STYLE_ETFS.items())})


@asset(**_asset_kwargs(
    tables.spread_factors, "spread_factors",
    [symbol_universe, _window_dep(prices, SPREAD_WINDOW)],
    "Spread factor betas: one univariate OLS with intercept per spread return — growth_value (VUG−VTV), "
    f"momentum_spread (MTUM−SPY), size_spread (IWM−SPY), quality_spread (QUAL−SPY) — over {SPREAD_WINDOW} "
    f"returns (min {SPREAD_MIN_OBS}), capped ±{BETA_CAP:g}, each with its own r².",
))
def spread_factors(context: AssetExecutionContext, config: ScopeConfig, warehouse: WarehouseResource) -> MaterializeResult:
    days, wh, scope = run_days(context), warehouse.get(), scope_symbols(config)

    def compute(inputs: SymbolInputs):
        spreads = spread_returns(inputs.returns)
        results, skipped = rolling_spread_betas(inputs.returns, spreads, inputs.days, SPREAD_WINDOW, SPREAD_MIN_OBS,
                                                BETA_CAP)
        if "factor" in skipped.columns and len(skipped):
            skipped = skipped.assign(reason=skipped["factor"].astype(str) + " " + skipped["reason"].astype(str))
        return results, skipped

    return _run_regression(context, wh, "spread_factors", days, SPREAD_WINDOW, scope, compute,
                           {"window": SPREAD_WINDOW, "min_observations": SPREAD_MIN_OBS, "beta_cap": BETA_CAP,
                            "spreads": "growth_value=VUG-VTV, momentum_spread=MTUM-SPY, size_spread=IWM-SPY, "
                                       "quality_spread=QUAL-SPY"})


@asset(
    partitions_def=trading_days,
    backfill_policy=BackfillPolicy.single_run(),
    deps=[_window_dep(prices, COV_WINDOW)],
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
                       description=f"Every partition day has a matrix (needs ≥ {COV_MIN_OBS} complete ETF returns).",
                       ),
    ],
    description=(
        f"EWMA (λ = {COV_LAMBDA}) covariance and correlation of the daily returns of {', '.join(FACTOR_ETFS)} "
        f"over the last {COV_WINDOW} returns as of the day (not as of today); off-diagonal correlations "
        f"clipped to ±{COV_CLIP} with PSD repair; fewer than {COV_MIN_OBS} observations → no rows. Full matrix, "
        "64 rows per day (both orders)."
    ),
)
def factor_covariance(context: AssetExecutionContext, warehouse: WarehouseResource) -> MaterializeResult:
    days, wh = run_days(context), warehouse.get()
    sess = calendar.sessions(calendar.window_start(days[0], COV_WINDOW), days[-1])
    px = read_prices(wh, context.run_id, days, sess[0], list(FACTOR_ETFS), ["adj_close"])
    wide = px.pivot(index="date", columns="symbol", values="adj_close").reindex(index=sess, columns=list(FACTOR_ETFS))
    frame = ewma_factor_covariance(simple_returns(wide), days, COV_WINDOW, COV_LAMBDA, COV_MIN_OBS, COV_CLIP)
    written = write_partitions(wh, "factor_covariance", frame, days[0], days[-1])
    psd_ok, sym_ok, clip_ok = True, True, True
    min_eig = np.inf
    for _, day_rows in frame.groupby("date"):
        cov = day_rows.pivot(index="factor_1", columns="factor_2", values="covariance").to_numpy()
        corr = day_rows.pivot(index="factor_1", columns="factor_2", values="correlation").to_numpy()
        sym_ok &= bool(np.allclose(cov, cov.T, atol=1e-14))
        eig = np.linalg.eigvalsh((cov + cov.T) / 2)
        min_eig = min(min_eig, float(eig.min() / max(eig.max(), 1e-300)))
        psd_ok &= bool(eig.min() >= -1e-12 * max(eig.max(), 1e-300))
        off = corr[~np.eye(len(corr), dtype=bool)]
        clip_ok &= bool((np.abs(off) <= COV_CLIP + 1e-12).all() and np.allclose(np.diag(corr), 1.0))
    present = set(frame["date"]) if len(frame) else set()
    missing_days = [d.date().isoformat() for d in days if d not in present]
    last = frame[frame["date"] == frame["date"].max()] if len(frame) else frame
    corr_last = (last.pivot(index="factor_1", columns="factor_2", values="correlation")
                 .reindex(index=list(FACTOR_ETFS), columns=list(FACTOR_ETFS)).round(2).reset_index()
                 if len(last) else pd.DataFrame())
    context.log.info(f"factor_covariance: {len(present)} day(s) with a matrix, {len(missing_days)} without; {written} rows")
    return MaterializeResult(
        metadata={
            **range_metadata(days),
            "rows": written,
            "days_with_matrix": len(present),
            "days_without_matrix": len(missing_days),
            "window": COV_WINDOW,
            "lambda": COV_LAMBDA,
            "min_observations": COV_MIN_OBS,
            "correlation_clip": COV_CLIP,
            "latest_correlations": md_table(corr_last, max_rows=8, floatfmt="{:.2f}"),
        },
        check_results=[
            AssetCheckResult(check_name="symmetric_psd", passed=psd_ok and sym_ok,
                             metadata={"min_relative_eigenvalue": float(min_eig) if np.isfinite(min_eig) else 0.0}),
            AssetCheckResult(check_name="correlation_clipped", passed=clip_ok),
            AssetCheckResult(check_name="every_day_present", passed=not missing_days, severity=AssetCheckSeverity.WARN,
                             metadata={"missing": ", ".join(missing_days[:20])}),
        ],
    )


@asset(
    partitions_def=trading_days,
    backfill_policy=BackfillPolicy.single_run(),
    deps=[symbol_universe, _window_dep(prices, METRICS_WINDOW), daily_valuations, symbol_betas, ridge_factors,
          spread_factors],
    group_name=GROUP,
    op_tags=MEMORY_HEAVY_TAG,
    kinds={"pandas", "sql"},
    owners=[OWNER],
    metadata={**table_metadata(tables.symbol_metrics), "grain": "symbol × day"},
    check_specs=[
        AssetCheckSpec("one_row_per_symbol_day", asset="symbol_metrics", description="No duplicate (date, symbol) rows."),
        AssetCheckSpec("volatility_non_negative", asset="symbol_metrics", description="Realised volatilities are ≥ 0."),
    ],
    description=(
        "The denormalised per-symbol daily view: returns over 1 day, month-to-date, year-to-date, 1 month "
        "(21 sessions), 3 months (63), 1 year (252); realised volatility over 21 and 63 sessions "
        "(annualised, √252); the day's valuation fields; and every factor beta side by side "
        "(`beta_<factor>`). One row per public symbol × day."
    ),
)
def symbol_metrics(context: AssetExecutionContext, config: ScopeConfig, warehouse: WarehouseResource) -> MaterializeResult:
    days, wh, scope = run_days(context), warehouse.get(), scope_symbols(config)
    written, n_rows, symbols_seen = 0, 0, set()
    notna: pd.Series | None = None
    dup, negative_vol, last = False, False, pd.DataFrame()
    # Chunks of METRICS_CHUNK_DAYS sessions: a year in one pass held every factor table's rows for
    # the range at once (16M beta rows at 5,000 symbols, 5 GB).
    for chunk in calendar.chunks(days, METRICS_CHUNK_DAYS):
        frame = _metrics_frame(wh, context.run_id, chunk, scope)
        written += write_partitions(wh, "symbol_metrics", frame, chunk[0], chunk[-1], keys=scope)
        n_rows += len(frame)
        symbols_seen.update(frame["symbol"].unique())
        counts = frame.drop(columns=["date", "symbol"]).notna().sum()
        notna = counts if notna is None else notna + counts
        dup = dup or bool(frame.duplicated(["date", "symbol"]).any())
        vols = frame[["volatility_21d", "volatility_63d"]].stack()
        negative_vol = negative_vol or bool((vols < 0).any())
        last = frame[frame["date"] == frame["date"].max()] if len(frame) else last
    coverage = (notna / n_rows).round(3).to_dict() if n_rows and notna is not None else {}
    context.log.info(f"symbol_metrics: {written} rows for {len(symbols_seen)} symbols")
    preview_cols = ["symbol", "close", "return_1d", "return_ytd", "volatility_63d", "pe", "beta_market", "beta_ir"]
    return MaterializeResult(
        metadata={
            **range_metadata(days),
            "rows": written,
            "symbols": len(symbols_seen),
            "field_coverage": MetadataValue.json({k: float(v) for k, v in coverage.items()}),
            "preview": md_table(last[preview_cols].sort_values("symbol") if len(last) else last),
        },
        check_results=[
            AssetCheckResult(check_name="one_row_per_symbol_day", passed=not dup),
            AssetCheckResult(check_name="volatility_non_negative", passed=not negative_vol),
        ],
    )


def _metrics_frame(wh, run_id: str, days: pd.DatetimeIndex, scope) -> pd.DataFrame:
    """symbol_metrics rows of ``days``: returns and volatilities from the price window, the day's
    close and valuations, and every beta side by side."""
    uni = wh.read("symbol_universe", days[0], days[-1], keys=scope, columns=["date", "symbol", "asset_class", "fetch"])
    pairs = uni[uni["fetch"].astype(bool) & (uni["asset_class"] == "PUBLIC")][["date", "symbol"]]
    symbols = sorted(pairs["symbol"].unique())
    sess = calendar.sessions(calendar.window_start(days[0], METRICS_WINDOW), days[-1])
    px = read_prices(wh, run_id, days, sess[0], symbols, ["close", "adj_close"])
    wide = px.pivot(index="date", columns="symbol", values="adj_close").reindex(index=sess, columns=symbols)
    metrics = symbol_returns_metrics(wide, days)
    frame = pairs.merge(metrics, on=["date", "symbol"], how="left")
    frame = frame.merge(px[px["date"].isin(days)], on=["date", "symbol"], how="left")
    vals = wh.read("daily_valuations", days[0], days[-1], keys=symbols,
                   columns=["date", "symbol", "pe", "forward_pe", "market_cap", "dividend_yield", "week52_high", "week52_low"])
    frame = frame.merge(vals, on=["date", "symbol"], how="left")
    for table_name in ("symbol_betas", "ridge_factors", "spread_factors"):
        b = wh.read(table_name, days[0], days[-1], keys=symbols, columns=["date", "symbol", "factor", "beta"])
        if len(b):
            wide_b = b.pivot(index=["date", "symbol"], columns="factor", values="beta")  # unique (date, symbol, factor)
            wide_b.columns = [f"beta_{c}" for c in wide_b.columns]
            frame = frame.merge(wide_b.reset_index(), on=["date", "symbol"], how="left")
    table_cols = [c.name for c in tables.symbol_metrics.columns]
    for col in table_cols:
        if col not in frame.columns:
            frame[col] = np.nan
    return frame[table_cols]
