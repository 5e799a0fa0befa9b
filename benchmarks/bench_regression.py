"""Benchmark: vectorised symbol regressions vs the per-symbol statsmodels / scikit-learn loop.

One partition day (the last session) of the symbol-level regressions on random data:

* market beta (OLS on SPY, window 90) and IR beta (OLS on TLT, window 90),
* ridge style factors (6 ETFs, StandardScaler + Ridge(alpha=1), window 90),
* spread betas (4 univariate OLS on long-short spreads, window 180),

computed once by ``sigmasight_assets.calc`` (all symbols at once) and once by a per-symbol loop of
``statsmodels.OLS`` / ``make_pipeline(StandardScaler(), Ridge())`` on the same complete cases. It
prints both times, the speed-up and the largest absolute difference, and appends a record to
``benchmarks/results_regression.json``. Optionally (``--range-days``) it also times a backfill
range of the vectorised code alone.

Usage::

    .venv/bin/python benchmarks/bench_regression.py                 # 5000 symbols
    .venv/bin/python benchmarks/bench_regression.py --symbols 500 --range-days 0
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import sklearn
import statsmodels
import statsmodels.api as sm
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sigmasight_assets.calc.factors import FACTOR_ETFS, STYLE_ETFS
from sigmasight_assets.calc.regression import rolling_ols, rolling_ridge
from sigmasight_assets.calc.returns import simple_returns
from sigmasight_assets.calc.spreads import rolling_spread_betas, spread_returns

ETFS = list(FACTOR_ETFS)
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results_regression.json"


def make_data(n_symbols: int, sessions: int, seed: int, nan_rate: float):
    """Random factor-model prices: ETFs, then symbols loading on SPY/TLT/styles plus noise."""
    rng = np.random.default_rng(seed)
    idx = pd.bdate_range("2023-01-03", periods=sessions)
    etf_ret = rng.normal(0.0003, 0.01, (sessions, len(ETFS)))
    etf_ret[:, 2:] += 0.8 * etf_ret[:, [0]]  # style ETFs co-move with the market
    loadings = rng.normal(0.0, 0.6, (len(ETFS), n_symbols))
    loadings[0] += 1.0
    sym_ret = etf_ret @ loadings + rng.normal(0, 0.015, (sessions, n_symbols))
    etf_prices = pd.DataFrame(100 * np.cumprod(1 + etf_ret, axis=0), index=idx, columns=ETFS)
    prices = pd.DataFrame(
        50 * np.cumprod(1 + sym_ret, axis=0), index=idx, columns=[f"SYM{i:05d}" for i in range(n_symbols)]
    )
    prices = prices.mask(rng.random(prices.shape) < nan_rate)
    # ~2 % of symbols listed recently: short histories, some below the minimum
    late = rng.choice(n_symbols, size=max(1, n_symbols // 50), replace=False)
    for j in late:
        prices.iloc[: sessions - int(rng.integers(20, 120)), j] = np.nan
    return simple_returns(prices), simple_returns(etf_prices)


def vectorised(returns, etf, day):
    styles = etf[list(STYLE_ETFS.values())].set_axis(list(STYLE_ETFS), axis=1)
    market, _ = rolling_ols(returns, etf["SPY"], day)
    ir, _ = rolling_ols(returns, etf["TLT"], day)
    ridge, _ = rolling_ridge(returns, styles, day)
    spreads, _ = rolling_spread_betas(returns, spread_returns(etf), day)
    return {"market": market, "ir": ir, "ridge": ridge, "spread": spreads}


def _complete(y, x, pos, window):
    lo = max(0, pos - window + 1)
    yy, xx = y[lo: pos + 1], x[lo: pos + 1]
    keep = np.isfinite(yy) & np.isfinite(xx).reshape(len(xx), -1).all(axis=1)
    return yy[keep], xx[keep]


def loop(returns, etf, day):
    """The per-symbol reference: one library fit per symbol and regression."""
    pos = returns.index.get_loc(day[0])
    y_all = returns.to_numpy()
    spy, tlt = etf["SPY"].to_numpy(), etf["TLT"].to_numpy()
    styles = etf[list(STYLE_ETFS.values())].to_numpy()
    spreads = spread_returns(etf)
    out = {"market": {}, "ir": {}, "ridge": {}, "spread": {}}
    for j, sym in enumerate(returns.columns):
        y = y_all[:, j]
        for key, x in (("market", spy), ("ir", tlt)):
            yy, xx = _complete(y, x, pos, 90)
            if len(yy) >= 30:
                fit = sm.OLS(yy, sm.add_constant(xx, has_constant="add")).fit()
                out[key][sym] = (fit.params[1], fit.params[0], fit.rsquared, fit.bse[1], fit.pvalues[1])
        yy, xx = _complete(y, styles, pos, 90)
        if len(yy) >= 30:
            pipe = make_pipeline(StandardScaler(), Ridge(alpha=1.0)).fit(xx, yy)
            coef = pipe[-1].coef_ / pipe[0].scale_
            out["ridge"][sym] = (coef, pipe.score(xx, yy))
        for name in spreads.columns:
            yy, xx = _complete(y, spreads[name].to_numpy(), pos, 180)
            if len(yy) >= 60:
                fit = sm.OLS(yy, sm.add_constant(xx, has_constant="add")).fit()
                out["spread"][(sym, name)] = (fit.params[1], fit.params[0], fit.rsquared)
    return out


def max_differences(vec, ref):
    """Largest |vectorised - loop| per quantity, plus coverage agreement."""
    diffs: dict[str, float] = {}

    def upd(key, a, b):
        diffs[key] = max(diffs.get(key, 0.0), float(np.max(np.abs(np.asarray(a) - np.asarray(b)))))

    for key in ("market", "ir"):
        frame = vec[key].set_index("symbol")
        assert set(frame.index) == set(ref[key]), f"{key}: computed symbol sets differ"
        r = np.array([ref[key][s] for s in frame.index])
        for i, col in enumerate(("raw_beta", "intercept", "r_squared", "std_error", "p_value")):
            upd(f"ols_{col}", frame[col].to_numpy(), r[:, i])
    ridge = vec["ridge"]
    syms = ridge.symbol.to_numpy()[::6]
    assert set(syms) == set(ref["ridge"]), "ridge: computed symbol sets differ"
    upd("ridge_beta", ridge.raw_beta.to_numpy().reshape(-1, 6), np.array([ref["ridge"][s][0] for s in syms]))
    upd("ridge_r_squared", ridge.r_squared.to_numpy()[::6], np.array([ref["ridge"][s][1] for s in syms]))
    spread = vec["spread"]
    keys = list(zip(spread.symbol, spread.factor))
    assert set(keys) == set(ref["spread"]), "spread: computed pairs differ"
    r = np.array([ref["spread"][k] for k in keys])
    for i, col in enumerate(("raw_beta", "intercept", "r_squared")):
        upd(f"spread_{col}", spread[col].to_numpy(), r[:, i])
    diffs["overall"] = max(diffs.values())
    return diffs


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--symbols", type=int, default=5000)
    parser.add_argument("--sessions", type=int, default=340)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--nan-rate", type=float, default=0.02)
    parser.add_argument("--repeats", type=int, default=3, help="vectorised repeats (best is kept)")
    parser.add_argument("--range-days", type=int, default=250,
                        help="also time the vectorised code over this many partition days (0: skip)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)

    returns, etf = make_data(args.symbols, args.sessions, args.seed, args.nan_rate)
    day = returns.index[-1:]
    print(f"data: {args.symbols} symbols x {args.sessions} sessions, partition day {day[0].date()}")

    times = []
    for _ in range(max(1, args.repeats)):
        t0 = time.perf_counter()
        vec = vectorised(returns, etf, day)
        times.append(time.perf_counter() - t0)
    vec_time = min(times)
    print(f"vectorised: {vec_time:.3f} s (best of {len(times)}; runs {', '.join(f'{t:.3f}' for t in times)})")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        ref = loop(returns, etf, day)
        loop_time = time.perf_counter() - t0
    print(f"per-symbol loop (statsmodels/sklearn): {loop_time:.3f} s")
    ratio = loop_time / vec_time
    diffs = max_differences(vec, ref)
    print(f"speed-up: {ratio:.1f}x")
    print(f"max abs difference: {diffs['overall']:.3e}")
    for k, v in diffs.items():
        if k != "overall":
            print(f"  {k:>18}: {v:.3e}")

    range_time = None
    if args.range_days:
        n_days = min(args.range_days, len(returns) - 1)
        t0 = time.perf_counter()
        vectorised(returns, etf, returns.index[-n_days:])
        range_time = time.perf_counter() - t0
        print(f"vectorised backfill of {n_days} days: {range_time:.1f} s ({range_time / n_days * 1000:.0f} ms/day)")

    record = {
        "timestamp": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "benchmark": "regression_one_partition",
        "symbols": args.symbols,
        "sessions": args.sessions,
        "seed": args.seed,
        "nan_rate": args.nan_rate,
        "computations": ["ols_spy_90", "ols_tlt_90", "ridge_6_90", "spreads_4_180"],
        "vectorised_seconds": round(vec_time, 4),
        "vectorised_runs_seconds": [round(t, 4) for t in times],
        "loop_seconds": round(loop_time, 3),
        "speedup": round(ratio, 1),
        "max_abs_difference": diffs["overall"],
        "max_abs_difference_by_quantity": diffs,
        "range_days": args.range_days or None,
        "range_seconds": None if range_time is None else round(range_time, 2),
        "machine": {
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "numpy": np.__version__,
            "pandas": pd.__version__,
            "statsmodels": statsmodels.__version__,
            "sklearn": sklearn.__version__,
        },
    }
    history = []
    if args.output.exists():
        try:
            loaded = json.loads(args.output.read_text())
            history = loaded if isinstance(loaded, list) else [loaded]
        except json.JSONDecodeError:
            history = []
    history.append(record)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(history, indent=2) + "\n")
    print(f"results appended to {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
