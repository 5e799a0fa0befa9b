"""Hand-built CSV price files with corporate actions, as a provider would deliver them on a given night.

Nine sessions of closes are fixed by hand around three events; the rest is a deterministic random
walk. The symbols:

* ``SPLT`` — a 4:1 split on ``SPLIT_DAY``: close 100.00 the session before, 25.25 on the day;
  total return 4 × 25.25 / 100 − 1 = +1 %.
* ``DIVS`` — a 2:1 split with a 0.50 dividend (per post-split share) on ``SPLIT_DIV_DAY``: close
  50.00 before, 24.75 on the day; total return 2 × (24.75 + 0.50) / 50 − 1 = +1 %.
* ``QDIV`` — quarterly dividends of 0.40 (63 sessions apart, on ``DIV_DAYS``): close 40.00 before,
  39.80 on the ex-date; total return (39.80 + 0.40) / 40 − 1 = +0.5 %.
* the 8 factor ETFs, without actions.

:func:`write_files` writes one file per symbol with the closes *as traded* up to the night's date,
the actions, and ``adj_close`` re-adjusted as of that night (split factor 1/s and dividend factor
1 − d/c_prev for every action after the row, up to the night): each night's files differ in the
history's ``adj_close``, the way a real provider re-adjusts history.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from sigmasight_assets import calendar

FACTOR_ETFS = ("SPY", "TLT", "VTV", "VUG", "MTUM", "QUAL", "IWM", "USMV")
STOCKS = ("SPLT", "DIVS", "QDIV")
SESSIONS = calendar.sessions("2025-01-02", "2025-06-30")[:74]
HISTORY, RANGE = SESSIONS[:66], SESSIONS[66:]
SPLIT_DAY, SPLIT_DIV_DAY = RANGE[2], RANGE[4]
DIV_DAYS = (SESSIONS[10], SESSIONS[73])  # 63 sessions apart; the second is in RANGE


def market() -> dict[str, pd.DataFrame]:
    """Per symbol: ``close`` (as traded), ``dividend``, ``split_ratio`` on every session."""
    rng = np.random.default_rng(14)
    n = len(SESSIONS)
    out = {}
    spy = rng.normal(0.0004, 0.01, n)
    for k, sym in enumerate(FACTOR_ETFS + STOCKS):
        r = 0.6 * spy + rng.normal(0.0, 0.008, n) if sym != "SPY" else spy
        close = 50.0 * (1 + k / 4) * np.cumprod(1 + r)
        out[sym] = pd.DataFrame({"close": close, "dividend": 0.0, "split_ratio": 1.0}, index=SESSIONS)

    def fix(sym, day, before, on, split=1.0, div=0.0):
        f = out[sym]
        i = SESSIONS.get_loc(day)
        # Rescale the path so the session before is `before` and everything after the event follows
        # from `on`, keeping the random walk's daily moves elsewhere.
        f.iloc[: i, 0] *= before / f.iloc[i - 1, 0]
        f.iloc[i:, 0] *= on / f.iloc[i, 0]
        f.iloc[i, 1], f.iloc[i, 2] = div, split

    fix("SPLT", SPLIT_DAY, 100.0, 25.25, split=4.0)
    fix("DIVS", SPLIT_DIV_DAY, 50.0, 24.75, split=2.0, div=0.5)
    for day in DIV_DAYS:
        fix("QDIV", day, 40.0, 39.80, div=0.40)
    for f in out.values():
        f["close"] = f["close"].round(4)
    return out


def adjusted(frame: pd.DataFrame, night) -> pd.Series:
    """``adj_close`` as a provider computes it on ``night``: every action after a row (up to the night)
    divides it by the split ratio and multiplies it by 1 − dividend / previous close."""
    f = frame[frame.index <= pd.Timestamp(night)]
    factor = (1.0 / f["split_ratio"]) * (1.0 - f["dividend"] / f["close"].shift(1).fillna(f["close"]))
    # the factor of action day t applies to every row before t
    after = factor[::-1].cumprod()[::-1].shift(-1).fillna(1.0)
    return (f["close"] * after).round(6)


def write_files(directory: Path, night, data: dict[str, pd.DataFrame] | None = None) -> None:
    """The provider's files on ``night``: history up to that session, adj_close adjusted as of it."""
    data = data or market()
    directory.mkdir(parents=True, exist_ok=True)
    stamp = pd.Timestamp(night).value  # distinct mtimes: the provider's cache re-reads every rewrite
    for sym, f in data.items():
        g = f[f.index <= pd.Timestamp(night)]
        out = pd.DataFrame({"date": [d.date().isoformat() for d in g.index], "close": g["close"].map("{:.4f}".format),
                            "adj_close": adjusted(f, night).map("{:.6f}".format).to_numpy(),
                            "dividend": g["dividend"].to_numpy(), "split_ratio": g["split_ratio"].to_numpy()})
        path = directory / f"{sym}.csv"
        out.to_csv(path, index=False)
        os.utime(path, ns=(stamp, stamp))
