"""Symbol analytics without Dagster: ``symbol_betas``, ``ridge_factors``, ``spread_factors``,
``factor_model``, ``factor_covariance`` and ``symbol_metrics`` over a range of days.

Each range is computed and stored chunk by chunk (``SYMBOL_CHUNK_DAYS`` / ``METRICS_CHUNK_DAYS``
sessions, each chunk's partitions replaced in one transaction), so memory is bounded by the chunk,
not the range; every day's window is read in full whatever the chunk, so chunking does not change a
single number. Windows come from the run's :class:`~.windows.WindowReader`. The functions return
the statistics the Dagster layer reports as metadata and asset checks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd

from .. import calendar
from ..calc.covariance import ewma_factor_covariance
from ..calc.factor_model import (
    FACTOR_MODEL_MIN_OBSERVATIONS,
    FACTOR_MODEL_WINDOW,
    factor_returns,
    rolling_factor_model,
)
from ..calc.factors import (
    BETA_CAP,
    BETA_MIN_OBS,
    BETA_WINDOW,
    COV_CLIP,
    COV_LAMBDA,
    COV_MIN_OBS,
    COV_WINDOW,
    FACTOR_ETFS,
    MARKET_ETF,
    RATES_ETF,
    RIDGE_ALPHA,
    RIDGE_MIN_OBS,
    RIDGE_WINDOW,
    SPREAD_MIN_OBS,
    SPREAD_WINDOW,
    STYLE_ETFS,
)
from ..calc.metrics import METRICS_WINDOW, symbol_returns_metrics
from ..calc.regression import rolling_ols, rolling_ridge
from ..calc.spreads import rolling_spread_betas, spread_returns
from ..warehouse.schema import TABLES
from .daystats import DayStats
from .io import write_partitions
from .windows import WindowReader

# Sessions per chunk of a regression asset's range: a year at 5,000 symbols in one pass held several
# GB of (days × window × symbols) temporaries and result rows; 42 sessions keep it near 1 GB.
SYMBOL_CHUNK_DAYS = 42
# symbol_metrics joins every factor table's rows of its chunk (~110k beta rows a session at 5,000
# symbols): 21 sessions peak at ~0.9 GB.
METRICS_CHUNK_DAYS = 21

Log = Callable[[str], None]


def _quiet(_msg: str) -> None:
    return None


@dataclass
class SymbolInputs:
    days: pd.DatetimeIndex
    pairs: pd.DataFrame  # (date, symbol) of the public universe to report on
    returns: pd.DataFrame  # wide simple returns, every session of the window (sessions × symbols)


def load_symbol_inputs(wh, reader: WindowReader, days: pd.DatetimeIndex, n_returns: int,
                       scope: list[str] | None) -> SymbolInputs:
    """The public universe of ``days`` and the returns of its symbols plus the factor ETFs over the
    ``n_returns`` sessions ending at the first day and every later day of the range, so a symbol's
    window is the same whether the day is computed alone or inside a backfill."""
    uni = wh.read("symbol_universe", days[0], days[-1], keys=scope, columns=["date", "symbol", "asset_class", "fetch"])
    pairs = uni[uni["fetch"].astype(bool) & (uni["asset_class"] == "PUBLIC")][["date", "symbol"]]
    symbols = sorted(set(pairs["symbol"]) | set(FACTOR_ETFS))
    first = calendar.sessions_back(days[0], n_returns)[0]
    return SymbolInputs(days, pairs.reset_index(drop=True), reader.returns(symbols, first, days[-1]))


def restrict(frame: pd.DataFrame, pairs: pd.DataFrame) -> pd.DataFrame:
    """Rows of ``frame`` whose (date, symbol) is one of ``pairs``."""
    return frame.merge(pairs, on=["date", "symbol"], how="inner")


def regression_pairs(results: pd.DataFrame) -> pd.DataFrame:
    """(date, symbol) with at least one estimated beta; the provider's published beta is not an estimate."""
    return results.loc[results["factor"] != "provider", ["date", "symbol"]].drop_duplicates()


def skip_status(asset_name: str, inputs: SymbolInputs, results: pd.DataFrame, skipped: pd.DataFrame) -> pd.DataFrame:
    """symbol_status rows for universe symbol-days without any estimated beta, with the calc's reason
    (the first one when several regressions were skipped), or 'no prices in the window'."""
    reasons = skipped.reindex(columns=["date", "symbol", "reason"]).drop_duplicates(["date", "symbol"])
    reasons["date"] = pd.to_datetime(reasons["date"])
    missing = inputs.pairs.merge(regression_pairs(results).assign(_ok=1), on=["date", "symbol"], how="left")
    missing = missing[missing["_ok"].isna()][["date", "symbol"]]
    out = missing.merge(reasons, on=["date", "symbol"], how="left")
    out["reason"] = out["reason"].fillna("no prices in the window").astype(object)
    out["asset"] = asset_name
    out["status"] = "skipped"
    return out[["date", "symbol", "asset", "status", "reason"]].reset_index(drop=True)


# In the reason of a window with too few observations (``calc.regression.insufficient_reason``).
HISTORY_REASON = "insufficient_history"


def reason_counts(status: pd.DataFrame) -> dict[str, int]:
    """Skipped symbol-days per reason kind (the text before the first ``:``)."""
    if status.empty:
        return {}
    kind = status["reason"].astype(str).str.split(":").str[0]
    return {k: int(v) for k, v in kind.value_counts().items()}


@dataclass
class RegressionTotals:
    """What the metadata and checks of a regression asset need, merged over the range's chunks."""

    written: int = 0
    n_pairs: int = 0
    with_result: int = 0
    skipped: int = 0
    reasons: dict = field(default_factory=dict)
    symbols: set = field(default_factory=set)
    beta_over_cap: int = 0
    beta_not_finite: int = 0
    negative_specific_variance: int = 0
    r2_outside: int = 0
    betas: dict = field(default_factory=dict)  # factor → list of float32 arrays (for the medians)
    last: pd.DataFrame | None = None  # the latest day's results (its beta distribution)
    skipped_by_symbol: dict = field(default_factory=dict)  # symbol → skipped days other than short history
    newest_pairs: int = 0  # universe symbols on the newest day of the range
    newest_with_result: int = 0  # … of which with an estimated beta
    by_day: DayStats = field(default_factory=DayStats)  # the counters above per day, reasons, failed symbols

    def on(self, day) -> "RegressionTotals":
        """The statistics of ``day`` alone (what its checks judge): the day's counters, reasons and
        failed symbols (its first ``WORST_PER_DAY`` by name, one day each)."""
        d, get = self.by_day, self.by_day.get
        failed = d.top("failed", day)
        return RegressionTotals(
            n_pairs=get(day, "n_pairs"), with_result=get(day, "with_result"), skipped=get(day, "skipped"),
            reasons=d.prefixed(day, "reason:"), beta_over_cap=get(day, "beta_over_cap"),
            beta_not_finite=get(day, "beta_not_finite"),
            negative_specific_variance=get(day, "negative_specific_variance"), r2_outside=get(day, "r2_outside"),
            skipped_by_symbol={s: 1 for s in failed.get("symbol", [])})

    @property
    def share(self) -> float:
        """Share of universe symbol-days with at least one estimated beta."""
        return self.with_result / self.n_pairs if self.n_pairs else 1.0

    @property
    def history_short(self) -> int:
        """Skipped symbol-days whose window held too few observations yet (expected for new symbols)."""
        return int(sum(v for k, v in self.reasons.items() if HISTORY_REASON in k))

    @property
    def failure_rate(self) -> float:
        """Share of universe symbol-days skipped for a reason other than a short history."""
        return (self.skipped - self.history_short) / self.n_pairs if self.n_pairs else 0.0

    def worst_symbols(self, limit: int = 10) -> list[tuple[str, int]]:
        """The symbols with the most failed (not short-history) days, most first."""
        return sorted(self.skipped_by_symbol.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]

    def medians(self) -> dict[str, float]:
        return {f: float(np.median(np.concatenate(v))) for f, v in sorted(self.betas.items()) if sum(len(a) for a in v)}

    def beta_distribution(self) -> pd.DataFrame:
        """Quantiles of the latest day's betas per factor."""
        last = self.last if self.last is not None else pd.DataFrame()
        if last.empty:
            return last
        q = last.groupby("factor")["beta"].describe(percentiles=[0.05, 0.25, 0.5, 0.75, 0.95])
        q = q.rename(columns={"count": "symbols"}).reset_index()
        return q[["factor", "symbols", "mean", "5%", "25%", "50%", "75%", "95%"]]


def store_regression(wh, asset_name: str, inputs: SymbolInputs, results: pd.DataFrame, skipped: pd.DataFrame,
                     scope, totals: RegressionTotals) -> None:
    """Write one chunk's results and symbol_status rows, and merge its statistics into ``totals``."""
    days = inputs.days
    columns = [c.name for c in TABLES[asset_name].columns]
    results = restrict(results, inputs.pairs)
    for col in columns:
        if col not in results.columns:
            results[col] = np.nan
    results = results[columns]
    status = skip_status(asset_name, inputs, results, skipped)
    totals.written += write_partitions(wh, asset_name, results, days[0], days[-1], keys=scope)
    write_partitions(wh, "symbol_status", status, days[0], days[-1], keys=scope, extra_filter={"asset": asset_name})
    totals.n_pairs += len(inputs.pairs)
    totals.with_result += len(regression_pairs(results))
    totals.skipped += len(status)
    for k, v in reason_counts(status).items():
        totals.reasons[k] = totals.reasons.get(k, 0) + v
    failed = status[~status["reason"].astype(str).str.contains(HISTORY_REASON, regex=False)]
    for sym, n in failed["symbol"].value_counts().items():
        totals.skipped_by_symbol[sym] = totals.skipped_by_symbol.get(sym, 0) + int(n)
    newest = inputs.pairs[inputs.pairs["date"] == days[-1]]
    totals.newest_pairs = len(newest)
    done = regression_pairs(results)
    totals.newest_with_result = int((done["date"] == days[-1]).sum())
    totals.symbols.update(results["symbol"].unique())
    totals.beta_not_finite += int((~np.isfinite(results["beta"].to_numpy(dtype=float))).sum())
    beta = results["beta"].dropna()
    totals.beta_over_cap += int((beta.abs() > BETA_CAP + 1e-12).sum())
    if "specific_variance" in results.columns:
        totals.negative_specific_variance += int((results["specific_variance"] < 0).sum())
    r2 = results["r_squared"].dropna()
    totals.r2_outside += int(((r2 < -1e-12) | (r2 > 1 + 1e-12)).sum())
    for factor, b in results.groupby("factor")["beta"]:
        totals.betas.setdefault(factor, []).append(b.dropna().to_numpy(dtype=np.float32))
    if len(results):  # chunks come in date order: the latest non-empty one holds the latest day
        totals.last = results[results["date"] == results["date"].max()]
    _count_days(totals.by_day, inputs, results, status, failed)


WORST_PER_DAY = 10  # failed symbols kept per day for a day's check metadata


def _count_days(by_day: DayStats, inputs: SymbolInputs, results: pd.DataFrame, status: pd.DataFrame,
                failed: pd.DataFrame) -> None:
    """The chunk's counters of :class:`RegressionTotals` per day (same rules as the range's)."""
    by_day.count(inputs.pairs["date"], n_pairs=np.ones(len(inputs.pairs)))
    done = regression_pairs(results)
    by_day.count(done["date"], with_result=np.ones(len(done)))
    kind = status["reason"].astype(str).str.split(":").str[0]
    by_day.add(pd.crosstab(status["date"], "reason:" + kind) if len(status) else pd.DataFrame())
    by_day.count(status["date"], skipped=np.ones(len(status)))
    beta = results["beta"].to_numpy(dtype=float)
    r2 = results["r_squared"].to_numpy(dtype=float)
    spec = (results["specific_variance"].to_numpy(dtype=float) if "specific_variance" in results.columns
            else np.full(len(results), np.nan))
    with np.errstate(invalid="ignore"):  # NaN compares False: a missing value is not a violation
        by_day.count(results["date"], beta_not_finite=~np.isfinite(beta),
                     beta_over_cap=np.abs(beta) > BETA_CAP + 1e-12,
                     negative_specific_variance=spec < 0,
                     r2_outside=(r2 < -1e-12) | (r2 > 1 + 1e-12))
    by_day.keep("failed", failed[["date", "symbol"]], "symbol", limit=WORST_PER_DAY)


def run_regression(wh, reader: WindowReader, asset_name: str, days: pd.DatetimeIndex, n_returns: int, scope,
                   compute: Callable[[SymbolInputs], tuple[pd.DataFrame, pd.DataFrame]],
                   log: Log = _quiet) -> RegressionTotals:
    """Compute and store a regression asset chunk by chunk; ``compute(inputs) → (results, skipped)``."""
    totals = RegressionTotals()
    for i, chunk in enumerate(calendar.chunks(days, SYMBOL_CHUNK_DAYS)):
        inputs = load_symbol_inputs(wh, reader, chunk, n_returns, scope)
        if i == 0:
            log(f"{asset_name}: {inputs.pairs['symbol'].nunique()} symbols × {len(days)} day(s) in chunks of ≤ "
                f"{SYMBOL_CHUNK_DAYS}; returns window {inputs.returns.shape}")
        results, skipped = compute(inputs)
        store_regression(wh, asset_name, inputs, results, skipped, scope, totals)
        del results, skipped, inputs
    log(f"{asset_name}: {totals.with_result}/{totals.n_pairs} symbol-days computed ({totals.share:.1%}), "
        f"{totals.skipped} skipped {totals.reasons}, {totals.written} rows written")
    return totals


# -- the three regression assets ------------------------------------------------------------------------
def symbol_betas(wh, reader: WindowReader, days: pd.DatetimeIndex, scope, log: Log = _quiet) -> RegressionTotals:
    """Market (SPY) and IR (TLT) OLS betas, and the provider's published beta from ``daily_valuations``."""

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

    return run_regression(wh, reader, "symbol_betas", days, BETA_WINDOW, scope, compute, log)


def ridge_factors(wh, reader: WindowReader, days: pd.DatetimeIndex, scope, log: Log = _quiet) -> RegressionTotals:
    """Ridge style-factor betas on the six style ETFs (``calc.regression.rolling_ridge``)."""

    def compute(inputs: SymbolInputs):
        regressors = inputs.returns[list(STYLE_ETFS.values())].set_axis(list(STYLE_ETFS), axis=1)
        return rolling_ridge(inputs.returns, regressors, inputs.days, RIDGE_WINDOW, RIDGE_MIN_OBS, RIDGE_ALPHA,
                             BETA_CAP)

    return run_regression(wh, reader, "ridge_factors", days, RIDGE_WINDOW, scope, compute, log)


def spread_factors(wh, reader: WindowReader, days: pd.DatetimeIndex, scope, log: Log = _quiet) -> RegressionTotals:
    """Univariate OLS betas on the four long-short spreads (``calc.spreads``)."""

    def compute(inputs: SymbolInputs):
        spreads = spread_returns(inputs.returns)
        results, skipped = rolling_spread_betas(inputs.returns, spreads, inputs.days, SPREAD_WINDOW, SPREAD_MIN_OBS,
                                                BETA_CAP)
        if "factor" in skipped.columns and len(skipped):
            skipped = skipped.assign(reason=skipped["factor"].astype(str) + " " + skipped["reason"].astype(str))
        return results, skipped

    return run_regression(wh, reader, "spread_factors", days, SPREAD_WINDOW, scope, compute, log)


def factor_model(wh, reader: WindowReader, days: pd.DatetimeIndex, scope, log: Log = _quiet) -> RegressionTotals:
    """The joint factor model (``calc.factor_model.rolling_factor_model``): each symbol's ridge
    loadings on the 8 factors of the model's basis, built from the factor ETFs' returns of the same
    window, plus specific variance, r² and observations. Loadings are not capped."""

    def compute(inputs: SymbolInputs):
        factors = factor_returns(inputs.returns)
        return rolling_factor_model(inputs.returns, factors, inputs.days, FACTOR_MODEL_WINDOW,
                                    FACTOR_MODEL_MIN_OBSERVATIONS, RIDGE_ALPHA)

    return run_regression(wh, reader, "factor_model", days, FACTOR_MODEL_WINDOW, scope, compute, log)


# -- factor_covariance --------------------------------------------------------------------------------
@dataclass
class CovarianceResult:
    written: int
    days_with_matrix: int
    missing_days: list[str]
    symmetric_psd: bool
    clipped: bool
    min_relative_eigenvalue: float
    latest_correlations: pd.DataFrame
    #: per day with a matrix: ``symmetric_psd``, ``clipped`` (bool) and ``min_relative_eigenvalue``
    by_day: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(
        columns=["symmetric_psd", "clipped", "min_relative_eigenvalue"]))


def factor_covariance(wh, reader: WindowReader, days: pd.DatetimeIndex) -> CovarianceResult:
    """EWMA covariance of the factor ETFs for every day, stored, with the checks of each day's matrix
    (symmetric, PSD relative to its largest eigenvalue, correlations within the clip)."""
    first = calendar.sessions_back(days[0], COV_WINDOW)[0]
    returns = reader.returns(list(FACTOR_ETFS), first, days[-1])
    frame = ewma_factor_covariance(returns, days, COV_WINDOW, COV_LAMBDA, COV_MIN_OBS, COV_CLIP)
    written = write_partitions(wh, "factor_covariance", frame, days[0], days[-1])
    psd_ok, sym_ok, clip_ok = True, True, True
    min_eig = np.inf
    per_day = {}
    for day, day_rows in frame.groupby("date"):  # one 8 × 8 matrix a day: O(days)
        cov = day_rows.pivot(index="factor_1", columns="factor_2", values="covariance").to_numpy()
        corr = day_rows.pivot(index="factor_1", columns="factor_2", values="correlation").to_numpy()
        day_sym = bool(np.allclose(cov, cov.T, atol=1e-14))
        eig = np.linalg.eigvalsh((cov + cov.T) / 2)
        day_min = float(eig.min() / max(eig.max(), 1e-300))
        day_psd = bool(eig.min() >= -1e-12 * max(eig.max(), 1e-300))
        off = corr[~np.eye(len(corr), dtype=bool)]
        day_clip = bool((np.abs(off) <= COV_CLIP + 1e-12).all() and np.allclose(np.diag(corr), 1.0))
        sym_ok &= day_sym
        psd_ok &= day_psd
        clip_ok &= day_clip
        min_eig = min(min_eig, day_min)
        per_day[pd.Timestamp(day).normalize()] = (day_sym and day_psd, day_clip, day_min)
    present = set(frame["date"]) if len(frame) else set()
    last = frame[frame["date"] == frame["date"].max()] if len(frame) else frame
    corr_last = (last.pivot(index="factor_1", columns="factor_2", values="correlation")
                 .reindex(index=list(FACTOR_ETFS), columns=list(FACTOR_ETFS)).round(2).reset_index()
                 if len(last) else pd.DataFrame())
    return CovarianceResult(
        written=written, days_with_matrix=len(present),
        missing_days=[d.date().isoformat() for d in days if d not in present],
        symmetric_psd=psd_ok and sym_ok, clipped=clip_ok,
        min_relative_eigenvalue=float(min_eig) if np.isfinite(min_eig) else 0.0,
        latest_correlations=corr_last,
        by_day=pd.DataFrame.from_dict(per_day, orient="index",
                                      columns=["symmetric_psd", "clipped", "min_relative_eigenvalue"]),
    )


# -- symbol_metrics -----------------------------------------------------------------------------------------
@dataclass
class MetricsResult:
    written: int = 0
    rows: int = 0
    symbols: set = field(default_factory=set)
    non_missing: pd.Series | None = None  # per column: rows with a value
    duplicated: bool = False
    negative_volatility: bool = False
    last: pd.DataFrame = field(default_factory=pd.DataFrame)
    by_day: DayStats = field(default_factory=DayStats)  # per day: ``duplicated``, ``negative_volatility`` rows

    def coverage(self) -> dict[str, float]:
        if not self.rows or self.non_missing is None:
            return {}
        return {k: float(v) for k, v in (self.non_missing / self.rows).round(3).items()}


def symbol_metrics(wh, reader: WindowReader, days: pd.DatetimeIndex, scope) -> MetricsResult:
    """The denormalised per-symbol view, stored in chunks of ``METRICS_CHUNK_DAYS`` sessions."""
    out = MetricsResult()
    for chunk in calendar.chunks(days, METRICS_CHUNK_DAYS):
        frame = metrics_frame(wh, reader, chunk, scope)
        out.written += write_partitions(wh, "symbol_metrics", frame, chunk[0], chunk[-1], keys=scope)
        out.rows += len(frame)
        out.symbols.update(frame["symbol"].unique())
        counts = frame.drop(columns=["date", "symbol"]).notna().sum()
        out.non_missing = counts if out.non_missing is None else out.non_missing + counts
        dup = frame.duplicated(["date", "symbol"]).to_numpy()
        out.duplicated = out.duplicated or bool(dup.any())
        vols = frame[["volatility_21d", "volatility_63d"]].stack()
        out.negative_volatility = out.negative_volatility or bool((vols < 0).any())
        # NaN < 0 is False: a missing volatility is not a negative one (as in the range's rule above)
        negative = (frame["volatility_21d"] < 0).to_numpy() | (frame["volatility_63d"] < 0).to_numpy()
        out.by_day.count(frame["date"], duplicated=dup, negative_volatility=negative)
        if len(frame):
            out.last = frame[frame["date"] == frame["date"].max()]
    return out


def metrics_frame(wh, reader: WindowReader, days: pd.DatetimeIndex, scope) -> pd.DataFrame:
    """symbol_metrics rows of ``days``: returns and volatilities from the ``symbol_returns`` window,
    the day's close and valuations, and every beta side by side."""
    uni = wh.read("symbol_universe", days[0], days[-1], keys=scope, columns=["date", "symbol", "asset_class", "fetch"])
    pairs = uni[uni["fetch"].astype(bool) & (uni["asset_class"] == "PUBLIC")][["date", "symbol"]]
    symbols = sorted(pairs["symbol"].unique())
    first = calendar.sessions_back(days[0], METRICS_WINDOW + 1)[0]
    metrics = symbol_returns_metrics(reader.returns(symbols, first, days[-1]), days)
    frame = pairs.merge(metrics, on=["date", "symbol"], how="left")
    day_prices = pd.concat(
        {c: reader.prices(symbols, days[0], days[-1], c).stack(future_stack=True) for c in ("close", "adj_close")},
        axis=1)
    day_prices.index.names = ["date", "symbol"]
    frame = frame.merge(day_prices.reset_index(), on=["date", "symbol"], how="left")
    vals = wh.read("daily_valuations", days[0], days[-1], keys=symbols,
                   columns=["date", "symbol", "pe", "forward_pe", "market_cap", "dividend_yield", "week52_high",
                            "week52_low"])
    frame = frame.merge(vals, on=["date", "symbol"], how="left")
    for table_name in ("symbol_betas", "ridge_factors", "spread_factors"):
        b = wh.read(table_name, days[0], days[-1], keys=symbols, columns=["date", "symbol", "factor", "beta"])
        if len(b):
            wide_b = b.pivot(index=["date", "symbol"], columns="factor", values="beta")  # unique (date, symbol, factor)
            wide_b.columns = [f"beta_{c}" for c in wide_b.columns]
            frame = frame.merge(wide_b.reset_index(), on=["date", "symbol"], how="left")
    table_cols = [c.name for c in TABLES["symbol_metrics"].columns]
    for col in table_cols:
        if col not in frame.columns:
            frame[col] = np.nan
    return frame[table_cols]
