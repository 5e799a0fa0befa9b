"""The synthetic market: a deterministic, offline provider (the embedded default).

Every number is a pure function of ``(seed, symbol, session)``: random draws come from a
counter-based hash (splitmix64) of those three, never from a stateful generator, so the same seed and
date give the same numbers on every machine and for every subset of symbols or date range requested.
Prices are rounded to 1/10,000 of a dollar so platform differences in the last bit of ``log``/``cos``
cannot leak into stored values.

Latent factor model (daily returns)
-----------------------------------
Latent drivers, independent standard normals ``z`` per session:

* market ``m = 0.0004 + 0.0095·z_m`` (≈ 10 %/yr drift, 15 %/yr volatility)
* rates ``q = 0.0090·z_q`` (the bond factor, independent of ``m``)
* six styles ``s_k = 0.0040·z_k`` for value, growth, momentum, quality, size, low_volatility

Factor ETFs::

    SPY  = m + 0.0005 e          TLT  = 0.0001 − 0.25·0.0090·z_m + q      (corr(SPY, TLT) ≈ −0.24)
    VTV  = 0.92 m + s_value      VUG  = 1.08 m + s_growth     MTUM = 1.00 m + s_momentum
    QUAL = 0.97 m + s_quality    IWM  = 1.15 m + s_size       USMV = 0.72 m + s_low_volatility
    (each style ETF also carries 0.001 e of its own noise; corr with SPY ≈ 0.9)

Stocks: ``r_i = β_m,i·m + β_q,i·q + Σ_k β_k,i·s_k + σ_i·e_i`` with the *planted* exposures returned by
:func:`planted_exposures` (market β uniform on [0.4, 1.8], rate β uniform on [−0.3, 0.3], style βs
normal with sd 0.5, idiosyncratic daily vol uniform on [1.2 %, 2.5 %]). Because ``q`` and ``s_k`` are
independent of ``m`` and SPY is ``m`` plus tiny noise, OLS of a stock on SPY estimates
``β_m·var(m)/var(SPY) = 0.9972·β_m``: tests use this to check beta recovery.

Behaviours the analytics must handle, all deterministic:

* about 0.2 % of stock sessions are missing (no row), never for the factor ETFs and never on a
  day with a corporate action;
* ``NEWCO`` lists on 2026-03-02 (no rows before), ``GONE`` stops trading after 2026-06-30;
* ``ZEROVOL`` trades at a constant close (zero price variance, ``r = 0``): its total return is its
  dividend on the ex-dates of the regular schedule below and 0 on every other day; it never splits;
* OCC option symbols are priced by Black-Scholes on their synthetic underlying's close (vol = the
  underlying's model vol, r = 4 %), with no price after expiry. The strike is not adjusted for a
  split of the underlying (the options in the demo and the tests are on SPY, which never splits).

Corporate actions and prices as traded
--------------------------------------
The model return ``r`` above is the *price* return, as traded. Each symbol-day may carry a dividend
fraction ``y`` (of the previous close, per post-split share) and a split ratio ``s`` (1 when none):
the close as traded follows ``c_D = c_{D−1}·(1 + r_D)/s_D``, the dividend paid is
``d_D = y_D·c_{D−1}/s_D``, and the model's *total* return is ``R_D = r_D + y_D``, so that
``s_D·(c_D + d_D)/c_{D−1} − 1 = R_D`` exactly before the prices are rounded to 1/10,000 of a dollar
(after rounding, to within about ``1.5e-4·(1 + s_D)/c_{D−1}``). :meth:`SyntheticProvider.model_returns`
gives ``R``.

* Dividends, quarterly: each stock with a planted ``dividend_yield`` > 0 (about 70 % of stocks)
  goes ex on the first session on or after day ``1 + ⌊28·u⌋`` of the months ``m, m+3, m+6, m+9``
  (``m = 1 + ⌊3·u'⌋``, both per-symbol hashes), with ``y = dividend_yield / 4``. The factor ETFs pay
  ``y = 0.018 / 4`` on the first session on or after the 18th of March, June, September and
  December.
* Splits: each stock (never a factor ETF, never ``ZEROVOL``) splits with probability
  :data:`SPLIT_RATE` per calendar year, on the first session on or after a hashed day of that year,
  by a ratio drawn from 2, 3 and 4 (see :meth:`SyntheticProvider.corporate_actions` for the
  schedule of any symbols and seed).
* Scripted, the same for every seed (:data:`SCRIPTED_ACTIONS`; these symbols get no hashed split):
  ``AAPL`` 4:1 on 2020-08-31; ``NVDA`` 4:1 on 2026-08-17; ``TSLA`` 3:1 on 2026-09-14; ``JNJ`` 2:1
  *and* a dividend of 0.6 % of the previous close (per post-split share) on 2026-10-15. On these
  days the scripted values replace the day's regular dividend.

The planted start price is per share held on 2026-01-02 (:data:`SHARE_BASIS_DATE`): a stock trades
``Π s`` times higher before the splits it made until then (as real stocks do before they split) and
``Π s`` times lower after the ones it makes later, so the path up to the scripted 2026 splits is the
planted one.
``volume`` is in shares traded that day (it scales with the splits before it); ``open`` gaps from
the previous close net of the day's dividend and split. ``adj_close`` is the back-adjusted total
return series, ``adj_D = c_ref·Π_{ref<t≤D}(1 + R_t)`` (and ``c_ref/Π_{D<t≤ref}(1 + R_t)`` before
it), meeting the close on ``ref`` = 2026-12-31 (a fixed reference, where Yahoo uses the latest date,
so the numbers never drift as time passes). Valuations: EPS is reset each calendar year to
``eps_yield × first close of the year`` and grows into the forward EPS by ``eps_growth``, both per
share as of the day (split-adjusted); the planted shares outstanding are per share held on
2026-01-02 like the start price (scaled by the splits between that day and the day), which gives
PE, forward PE and market cap; the provider beta is the planted market beta plus a fixed per-symbol
error (sd 0.1). The synthetic provider publishes no 52-week range (the asset derives it from stored
prices).

A symbol-day's numbers depend only on ``(seed, symbol, session)``: paths always start at the epoch
(2000-01-03), so a nightly fetch of one day and a history fetch over years agree bit for bit.
"""

from __future__ import annotations

from datetime import date
from typing import Sequence

import numpy as np
import pandas as pd
from scipy.special import ndtr

from .. import calendar
from ..calc.factors import FACTOR_ETFS
from .base import PRICE_COLUMNS, VALUATION_COLUMNS, FetchResult, empty_frame
from .symbols import is_private_symbol, parse_occ, stable_hash

EPOCH = pd.Timestamp("2000-01-03")
ADJ_REFERENCE = pd.Timestamp("2026-12-31")
#: The planted start price and shares outstanding are per share held on this day.
SHARE_BASIS_DATE = pd.Timestamp("2026-01-02")
STYLE_NAMES = ("value", "growth", "momentum", "quality", "size", "low_volatility")

# Symbols with scripted life cycles.
LISTINGS = {"NEWCO": pd.Timestamp("2026-03-02")}
DELISTINGS = {"GONE": pd.Timestamp("2026-06-30")}
CONSTANT_PRICE = {"ZEROVOL"}
MISSING_RATE = 0.002

# Corporate actions (see the module docstring).
ETF_DIVIDEND_YIELD = 0.018
ETF_DIVIDEND_MONTHS = (3, 6, 9, 12)
ETF_DIVIDEND_DAY = 18
SPLIT_RATE = 0.002  # per stock and calendar year: about one split per 500 stock-years
SPLIT_RATIOS = (2.0, 3.0, 4.0)
#: symbol → ((ex-date, split ratio, dividend as a fraction of the previous close per post-split share), ...)
SCRIPTED_ACTIONS: dict[str, tuple[tuple[str, float, float], ...]] = {
    "AAPL": (("2020-08-31", 4.0, 0.0),),
    "NVDA": (("2026-08-17", 4.0, 0.0),),
    "TSLA": (("2026-09-14", 3.0, 0.0),),
    "JNJ": (("2026-10-15", 2.0, 0.006),),
}

_M_MU, _M_SD, _Q_SD, _S_SD = 0.0004, 0.0095, 0.0090, 0.0040
# ETF loadings on (market, style index or None, own-noise sd)
_ETF_MODEL = {
    "SPY": (1.00, None, 0.0005),
    "VTV": (0.92, 0, 0.001),
    "VUG": (1.08, 1, 0.001),
    "MTUM": (1.00, 2, 0.001),
    "QUAL": (0.97, 3, 0.001),
    "IWM": (1.15, 4, 0.002),
    "USMV": (0.72, 5, 0.001),
}
_ETF_START_PRICE = {"SPY": 145.0, "TLT": 85.0, "VTV": 40.0, "VUG": 45.0, "MTUM": 50.0,
                    "QUAL": 40.0, "IWM": 50.0, "USMV": 30.0}
_ETF_PROVIDER_BETA = {"SPY": 1.0, "TLT": -0.25, "VTV": 0.92, "VUG": 1.08, "MTUM": 1.0,
                      "QUAL": 0.97, "IWM": 1.15, "USMV": 0.72}

_U64 = np.uint64
_MASK = 0xFFFFFFFFFFFFFFFF


def _splitmix(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        x = x + _U64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> _U64(30))) * _U64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> _U64(27))) * _U64(0x94D049BB133111EB)
        return x ^ (x >> _U64(31))


def _uniform(keys: np.ndarray, days: np.ndarray, stream: int, seed: int) -> np.ndarray:
    """U(0,1) of shape (len(days), len(keys)) from a hash of (seed, stream, key, day)."""
    salt = _splitmix(np.array([(seed * 1_000_003 + stream) & _MASK], dtype=_U64))[0]
    with np.errstate(over="ignore"):
        x = keys[None, :] ^ (days.astype(_U64)[:, None] * _U64(0xD1B54A32D192ED03)) ^ salt
    bits = _splitmix(_splitmix(x)) >> _U64(11)
    return (bits.astype(np.float64) + 0.5) * (1.0 / 9007199254740992.0)


def _normal(keys, days, stream, seed):
    u1 = _uniform(keys, days, 2 * stream, seed)
    u2 = _uniform(keys, days, 2 * stream + 1, seed)
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)


def _per_symbol_uniform(symbols: Sequence[str], field: str, seed: int) -> np.ndarray:
    # FNV-1a alone barely changes the high bits for names differing in the last character (S0001,
    # S0002, ...); splitmix spreads every input bit over the whole word.
    h = _splitmix(stable_hash(list(symbols), salt=f"{seed}:{field}"))
    return ((h >> _U64(11)).astype(np.float64) + 0.5) / 9007199254740992.0


def planted_exposures(symbols: Sequence[str], seed: int = 7) -> pd.DataFrame:
    """The model exposures of stocks, indexed by symbol.

    Columns: ``market``, ``rates``, the six style names, ``idio_vol`` (daily), ``start_price``,
    ``dividend_yield`` (annual fraction), ``eps_yield`` (EPS / year-open price), ``eps_growth``,
    ``shares`` and ``provider_beta``. ``spy_beta = 0.9972·market`` is what OLS on SPY recovers.
    """
    symbols = list(symbols)
    u = lambda f: _per_symbol_uniform(symbols, f, seed)  # noqa: E731
    z = lambda f: np.sqrt(2) * _erfinv(2 * u(f) - 1)  # noqa: E731
    market = 0.4 + 1.4 * u("market")
    out = pd.DataFrame(
        {
            "market": market,
            "rates": -0.3 + 0.6 * u("rates"),
            **{name: 0.5 * z(name) for name in STYLE_NAMES},
            "idio_vol": 0.012 + 0.013 * u("idio"),
            "start_price": np.round(np.exp(np.log(8.0) + u("p0") * np.log(400 / 8.0)), 2),
            "dividend_yield": np.where(u("divflag") < 0.3, 0.0, 0.04 * u("div")),
            "eps_yield": np.where(u("loss") < 0.08, -0.02 * u("epsneg"), 0.03 + 0.06 * u("eps")),
            "eps_growth": 0.03 + 0.12 * u("growth"),  # forward EPS / trailing EPS − 1
            "shares": np.exp(np.log(5e7) + u("shares") * np.log(100)),
            "provider_beta": np.round(market * 0.9972 + 0.1 * z("pbeta"), 3),
        },
        index=pd.Index(symbols, name="symbol"),
    )
    return out


def _erfinv(y: np.ndarray) -> np.ndarray:
    from scipy.special import erfinv

    return erfinv(np.clip(y, -1 + 1e-16, 1 - 1e-16))


class SyntheticProvider:
    """Deterministic offline market (see module docstring for the model)."""

    name = "synthetic"

    def __init__(self, seed: int = 7):
        self.seed = int(seed)

    # -- latent drivers ---------------------------------------------------------------------------
    def _sessions(self, end) -> pd.DatetimeIndex:
        return calendar.sessions(EPOCH, end)

    def _latents(self, ordinals: np.ndarray) -> dict[str, np.ndarray]:
        keys = np.arange(1, 9, dtype=_U64) * _U64(0x5851F42D4C957F2D)
        z = _normal(keys, ordinals, stream=1, seed=self.seed)  # (T, 8)
        return {
            "z_m": z[:, 0],
            "m": _M_MU + _M_SD * z[:, 0],
            "q": _Q_SD * z[:, 1],
            "styles": _S_SD * z[:, 2:8],
        }

    def _returns(self, symbols: list[str], sess: pd.DatetimeIndex) -> np.ndarray:
        """Daily simple returns (T, S) on every session from the epoch; row 0 is 0 by definition."""
        ordinals = sess.map(pd.Timestamp.toordinal).to_numpy(np.int64)
        lat = self._latents(ordinals)
        out = np.empty((len(sess), len(symbols)))
        keys = stable_hash(symbols, salt=f"noise:{self.seed}")
        noise = _normal(keys, ordinals, stream=2, seed=self.seed)
        stocks = [i for i, s in enumerate(symbols) if s not in FACTOR_ETFS]
        for i, s in enumerate(symbols):
            if s == "TLT":
                out[:, i] = 0.0001 - 0.25 * _Q_SD * lat["z_m"] + lat["q"]
            elif s in _ETF_MODEL:
                load, style, own = _ETF_MODEL[s]
                style_ret = lat["styles"][:, style] if style is not None else 0.0
                out[:, i] = load * lat["m"] + style_ret + own * noise[:, i]
        if stocks:
            exp = planted_exposures([symbols[i] for i in stocks], self.seed)
            style_b = exp[list(STYLE_NAMES)].to_numpy()  # (S, 6)
            out[:, stocks] = (
                lat["m"][:, None] * exp["market"].to_numpy()[None, :]
                + lat["q"][:, None] * exp["rates"].to_numpy()[None, :]
                # Elementwise sum, not a matmul: BLAS blocking depends on the matrix size, which
                # would make a symbol's numbers depend on which other symbols were requested.
                + sum(lat["styles"][:, k, None] * style_b[None, :, k] for k in range(len(STYLE_NAMES)))
                + noise[:, stocks] * exp["idio_vol"].to_numpy()[None, :]
            )
            for i in stocks:
                if symbols[i] in CONSTANT_PRICE:
                    out[:, i] = 0.0
        out[0, :] = 0.0
        return out

    def _model(self, symbols: list[str], sess: pd.DatetimeIndex) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(price return, dividend fraction, split ratio), each (T, S), on every session of ``sess``.

        The total return is ``price return + dividend fraction`` (see the module docstring).
        """
        rets = self._returns(symbols, sess)
        y, split = self._actions(symbols, sess)
        return rets, y, split

    def _actions(self, symbols: list[str], sess: pd.DatetimeIndex) -> tuple[np.ndarray, np.ndarray]:
        """(dividend fraction ``y``, split ratio ``s``), each (T, S), on every session of ``sess``.

        ``y`` is the dividend as a fraction of the previous close per post-split share (0 when none),
        ``s`` new shares per old (1 when none); see the module docstring for the schedule.
        """
        n_t, n_s = len(sess), len(symbols)
        y = np.zeros((n_t, n_s))
        split = np.ones((n_t, n_s))
        if n_t == 0 or n_s == 0:
            return y, split
        days = sess.to_numpy().astype("datetime64[D]")
        years = np.arange(sess[0].year, sess[-1].year + 1, dtype=np.int64)

        def mark(out, col, targets, values, active=True):
            # the first session on or after each target; never the epoch row (no previous close)
            pos = np.searchsorted(days, targets.ravel()).reshape(targets.shape)
            ok = (pos > 0) & (pos < n_t) & np.broadcast_to(active, pos.shape)
            out[pos[ok], np.broadcast_to(col, pos.shape)[ok]] = np.broadcast_to(values, pos.shape)[ok]

        def quarter_targets(first_month, dom):
            base = (years[:, None] - 1970) * 12 + (first_month[None, :] - 1)
            return np.stack([
                np.asarray(base + 3 * k, dtype="datetime64[M]").astype("datetime64[D]")
                + np.asarray(dom - 1, dtype="timedelta64[D]")[None, :]
                for k in range(4)
            ])  # (4, Y, S)

        etfs = np.array([i for i, s in enumerate(symbols) if s in FACTOR_ETFS], dtype=np.int64)
        stocks = np.array([i for i, s in enumerate(symbols) if s not in FACTOR_ETFS], dtype=np.int64)
        if len(etfs):
            months = np.full(len(etfs), ETF_DIVIDEND_MONTHS[0])
            targets = quarter_targets(months, np.full(len(etfs), ETF_DIVIDEND_DAY))
            mark(y, etfs[None, None, :], targets, np.full(len(etfs), ETF_DIVIDEND_YIELD / 4)[None, None, :])
        if len(stocks):
            names = [symbols[i] for i in stocks]
            q = planted_exposures(names, self.seed)["dividend_yield"].to_numpy() / 4
            first_month = 1 + np.floor(3 * _per_symbol_uniform(names, "divmonth", self.seed)).astype(np.int64)
            dom = 1 + np.floor(28 * _per_symbol_uniform(names, "divday", self.seed)).astype(np.int64)
            payers = q > 0
            if payers.any():
                mark(y, stocks[payers][None, None, :], quarter_targets(first_month[payers], dom[payers]),
                     q[payers][None, None, :])
            hashed = np.array([s not in SCRIPTED_ACTIONS and s not in CONSTANT_PRICE for s in names])
            if hashed.any():
                cols = stocks[hashed]
                keys = stable_hash([symbols[i] for i in cols], salt=f"split:{self.seed}")
                u_has = _uniform(keys, years, 201, self.seed)  # (Y, S)
                u_day = _uniform(keys, years, 202, self.seed)
                u_ratio = _uniform(keys, years, 203, self.seed)
                jan1 = np.asarray((years - 1970) * 12, dtype="datetime64[M]").astype("datetime64[D]")
                targets = jan1[:, None] + np.floor(u_day * 365).astype("timedelta64[D]")
                ratio = np.asarray(SPLIT_RATIOS)[np.minimum((u_ratio * len(SPLIT_RATIOS)).astype(np.int64),
                                                            len(SPLIT_RATIOS) - 1)]
                mark(split, cols[None, :], targets, ratio, active=u_has < SPLIT_RATE)
        for i, sym in enumerate(symbols):
            for day, ratio, fraction in SCRIPTED_ACTIONS.get(sym, ()):
                d = np.datetime64(day, "D")
                pos = int(np.searchsorted(days, d))
                if pos >= n_t:
                    continue
                if days[pos] != d:
                    raise ValueError(f"SCRIPTED_ACTIONS[{sym!r}]: {day} is not an NYSE session")
                split[pos, i], y[pos, i] = ratio, fraction
        return y, split

    def _paths(self, symbols: list[str], start: pd.Timestamp, end: pd.Timestamp) -> dict[str, object]:
        """Model paths per (session, symbol) for the sessions in [start, end].

        The path is always built from the epoch to ``max(end, ADJ_REFERENCE)`` (so a day's values do
        not depend on the requested range) and then sliced. Keys: ``sess``; and, each (n, S):
        ``close`` (as traded), ``prev_close`` (the previous session's), ``dividend`` (cash per
        post-split share), ``y`` (dividend as a fraction of ``prev_close`` per post-split share),
        ``split``, ``adj`` (back-adjusted close meeting ``close`` on the reference date),
        ``share_basis`` (shares per share held on :data:`SHARE_BASIS_DATE`) and ``year_open`` (the
        first close of the calendar year per share as of the day). No missing-day or listing mask.
        """
        horizon = max(pd.Timestamp(end), ADJ_REFERENCE)
        full = self._sessions(horizon)
        rets, y, split = self._model(symbols, full)
        price0 = np.array([_ETF_START_PRICE.get(s, np.nan) for s in symbols], dtype=float)
        stock_mask = np.isnan(price0)
        if stock_mask.any():
            exp = planted_exposures([s for s, m in zip(symbols, stock_mask) if m], self.seed)
            price0[stock_mask] = exp["start_price"].to_numpy()
        # c_D = c_{D-1}·(1 + r_D)/s_D, summed in logs from the epoch (a prefix sum, so a day's value
        # does not depend on how far the path runs), on the share basis of SHARE_BASIS_DATE.
        ref = int(full.searchsorted(ADJ_REFERENCE, side="right")) - 1
        basis = int(full.searchsorted(SHARE_BASIS_DATE, side="right")) - 1
        cum_split = np.cumprod(split, axis=0)
        growth = np.log1p(rets)
        has_split = split != 1.0
        growth[has_split] -= np.log(split[has_split])
        growth[0] = 0.0
        log_growth = np.cumsum(growth, axis=0)
        level = price0 * cum_split[basis]
        total = np.cumsum(np.log1p(rets + y), axis=0)  # the total return adds the dividend
        lo, hi = int(full.searchsorted(start)), int(full.searchsorted(end, side="right"))
        rows = np.arange(lo, hi)
        prev = np.maximum(rows - 1, 0)
        close = level[None, :] * np.exp(log_growth[rows])
        prev_close = level[None, :] * np.exp(log_growth[prev])
        close_ref = level * np.exp(log_growth[ref])
        first_of_year = pd.Series(np.arange(len(full))).groupby(full.year.to_numpy()).transform("min").to_numpy()[rows]
        return {
            "sess": full[rows],
            "close": close,
            "prev_close": prev_close,
            "dividend": y[rows] * prev_close / split[rows],
            "y": y[rows],
            "split": split[rows],
            "adj": close_ref[None, :] * np.exp(total[rows] - total[ref][None, :]),
            "share_basis": cum_split[rows] / cum_split[basis][None, :],
            "year_open": level[None, :] * np.exp(log_growth[first_of_year]) * cum_split[first_of_year] / cum_split[rows],
        }

    def _presence(self, symbols: list[str], sess: pd.DatetimeIndex, action_days: np.ndarray) -> np.ndarray:
        ordinals = sess.map(pd.Timestamp.toordinal).to_numpy(np.int64)
        keys = stable_hash(symbols, salt=f"missing:{self.seed}")
        # A corporate action's day is never missing: its split or dividend would otherwise be lost.
        present = (_uniform(keys, ordinals, stream=99, seed=self.seed) >= MISSING_RATE) | action_days
        for i, s in enumerate(symbols):
            if s in FACTOR_ETFS:
                present[:, i] = True
            if s in LISTINGS:
                present[:, i] &= sess.to_numpy() >= LISTINGS[s].to_datetime64()
            if s in DELISTINGS:
                present[:, i] &= sess.to_numpy() <= DELISTINGS[s].to_datetime64()
        return present

    # -- protocol ---------------------------------------------------------------------------------
    def fetch_prices(self, symbols: Sequence[str], start: date, end: date, chunk: int = 400) -> FetchResult:
        """Daily OHLCV as traded, with the day's ``dividend`` and ``split_ratio``, for the requested
        public symbols and sessions in [start, end]."""
        symbols = list(dict.fromkeys(symbols))
        failures: dict[str, str] = {}
        stocks, options = [], []
        for s in symbols:
            if is_private_symbol(s):
                failures[s] = "private symbol: not served by a market data provider"
            elif parse_occ(s) is not None:
                options.append(s)
            else:
                stocks.append(s)
        frames = []
        start_ts, end_ts = pd.Timestamp(start), pd.Timestamp(end)
        if start_ts < EPOCH:
            start_ts = EPOCH
        for i in range(0, len(stocks), chunk):
            frames.append(self._stock_frame(stocks[i : i + chunk], start_ts, end_ts))
        if options:
            frames.append(self._option_frame(options, start_ts, end_ts))
        frame = pd.concat(frames, ignore_index=True) if frames else empty_frame(PRICE_COLUMNS)
        delivered = set(frame["symbol"].unique())
        for s in symbols:
            if s not in delivered and s not in failures:
                failures[s] = _no_data_reason(s, start_ts, end_ts)
        return FetchResult(frame.sort_values(["date", "symbol"], ignore_index=True), failures)

    def corporate_actions(self, symbols: Sequence[str], start: date, end: date) -> pd.DataFrame:
        """The dividends and splits of ``symbols`` in [start, end]: the rows of :meth:`fetch_prices`
        with ``dividend > 0`` or ``split_ratio != 1``.

        Returns
        -------
        DataFrame
            ``date, symbol, close, dividend, split_ratio`` (USD; ratio new shares per old), sorted
            by date and symbol.
        """
        f = self.fetch_prices(symbols, start, end).frame
        acts = f[(f["dividend"] > 0) | (f["split_ratio"] != 1.0)]
        return acts[["date", "symbol", "close", "dividend", "split_ratio"]].reset_index(drop=True)

    def model_returns(self, symbols: Sequence[str], start: date, end: date) -> pd.DataFrame:
        """The latent model's daily *total* returns (price return plus the day's dividend fraction,
        unrounded), sessions in [start, end] × symbols.

        What ``split_ratio × (close + dividend) / previous close − 1`` of the stored rows
        reproduces up to the rounding of the prices; every session is a row, whether or not the
        symbol has a price row that day. Stocks and ETFs only.
        """
        symbols = list(dict.fromkeys(symbols))
        sess = self._sessions(pd.Timestamp(end))
        rets, y, _ = self._model(symbols, sess)
        keep = sess >= pd.Timestamp(start)
        return pd.DataFrame((rets + y)[keep], index=sess[keep], columns=symbols)

    def _stock_frame(self, symbols: list[str], start: pd.Timestamp, end: pd.Timestamp,
                     with_year_open: bool = False) -> pd.DataFrame:
        paths = self._paths(symbols, start, end)
        sess, close, adj = paths["sess"], paths["close"], paths["adj"]
        dividend, split, y = paths["dividend"], paths["split"], paths["y"]
        if len(sess) == 0:
            return empty_frame(PRICE_COLUMNS)
        present = self._presence(symbols, sess, (y > 0) | (split != 1.0))
        # The open gaps from the previous session's close net of the day's dividend and split (the
        # previous close comes from the full path, so a day's OHLC does not depend on where the
        # requested range starts).
        reference = paths["prev_close"] * (1.0 - y) / split
        ordinals = sess.map(pd.Timestamp.toordinal).to_numpy(np.int64)
        keys = stable_hash(symbols, salt=f"ohlc:{self.seed}")
        gap = _normal(keys, ordinals, 3, self.seed) * 0.004
        wick_hi = np.abs(_normal(keys, ordinals, 4, self.seed)) * 0.006
        wick_lo = np.abs(_normal(keys, ordinals, 5, self.seed)) * 0.006
        open_ = reference * np.exp(gap)
        high = np.maximum(open_, close) * (1 + wick_hi)
        low = np.minimum(open_, close) * (1 - wick_lo)
        vol_scale = np.exp(np.log(2e5) + _per_symbol_uniform(symbols, "vol", self.seed) * np.log(500))
        volume = np.round(vol_scale[None, :] * np.exp(0.35 * _normal(keys, ordinals, 6, self.seed))
                          * paths["share_basis"])
        for j, s in enumerate(symbols):
            if s in CONSTANT_PRICE:
                open_[:, j] = high[:, j] = low[:, j] = close[:, j]
        t_idx, s_idx = np.nonzero(present)
        sym_arr = np.asarray(symbols, dtype=object)
        frame = pd.DataFrame(
            {
                "date": sess.to_numpy()[t_idx],
                "symbol": sym_arr[s_idx],
                "open": np.round(open_[t_idx, s_idx], 4),
                "high": np.round(high[t_idx, s_idx], 4),
                "low": np.round(low[t_idx, s_idx], 4),
                "close": np.round(close[t_idx, s_idx], 4),
                "adj_close": np.round(adj[t_idx, s_idx], 4),
                "volume": volume[t_idx, s_idx],
                "dividend": np.round(dividend[t_idx, s_idx], 4),
                "split_ratio": split[t_idx, s_idx],
                "source": self.name,
            }
        )[PRICE_COLUMNS]
        if with_year_open:
            frame["year_open"] = paths["year_open"][t_idx, s_idx]
            frame["share_basis"] = paths["share_basis"][t_idx, s_idx]
        return frame

    def _option_frame(self, options: list[str], start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        contracts = [parse_occ(s) for s in options]
        underlyings = sorted({c.underlying for c in contracts})
        paths = self._paths(underlyings, start, end)
        sess, close = paths["sess"], paths["close"]
        present = self._presence(underlyings, sess, (paths["y"] > 0) | (paths["split"] != 1.0))
        under_vol = {}
        stocks = [u for u in underlyings if u not in FACTOR_ETFS]
        exp = planted_exposures(stocks, self.seed) if stocks else None
        for u in underlyings:
            if u in FACTOR_ETFS:
                under_vol[u] = 0.16
            else:
                e = exp.loc[u]
                style_var = float((e[list(STYLE_NAMES)] ** 2).sum()) * _S_SD**2
                var = (e["market"] * _M_SD) ** 2 + (e["rates"] * _Q_SD) ** 2 + style_var + e["idio_vol"] ** 2
                under_vol[u] = float(np.sqrt(var * 252))
        rows = []
        col = {u: i for i, u in enumerate(underlyings)}
        for sym, c in zip(options, contracts):
            expiry = pd.Timestamp(c.expiry)
            keep = (sess <= expiry) & present[:, col[c.underlying]]
            if not keep.any():
                continue
            s_px = close[keep, col[c.underlying]]
            days = sess[keep]
            t = np.maximum((expiry - days).days.to_numpy() / 365.0, 1.0 / 365.0)
            px = _black_scholes(s_px, c.strike, t, 0.04, under_vol[c.underlying], c.option_type)
            px = np.maximum(np.round(px, 2), 0.01)
            rows.append(
                pd.DataFrame(
                    {
                        "date": days.to_numpy(),
                        "symbol": sym,
                        "open": px,
                        "high": px,
                        "low": px,
                        "close": px,
                        "adj_close": px,
                        "volume": 100.0,
                        "dividend": 0.0,
                        "split_ratio": 1.0,
                        "source": self.name,
                    }
                )
            )
        return pd.concat(rows, ignore_index=True) if rows else empty_frame(PRICE_COLUMNS)

    def fetch_valuations(self, symbols: Sequence[str], start: date, end: date) -> FetchResult:
        """PE, forward PE, provider beta, market cap and dividend yield per stock session.

        EPS is ``eps_yield × first close of the calendar year`` per share as of the day (forward:
        × (1 + g)); PE is NaN for non-positive EPS (as providers publish). Market cap is the close
        times the shares outstanding (the planted count, per share held on 2026-01-02, scaled by the
        splits between that day and the day). ETFs get
        only the provider beta and dividend yield. Options have no valuation fields (``skipped``);
        private symbols are never served (``failures``).
        """
        symbols = list(dict.fromkeys(symbols))
        failures: dict[str, str] = {}
        skipped: dict[str, str] = {}
        public = []
        for s in symbols:
            if is_private_symbol(s):
                failures[s] = "private symbol: not served by a market data provider"
            elif parse_occ(s) is not None:
                skipped[s] = "options have no valuation fields"
            else:
                public.append(s)
        start_ts, end_ts = max(pd.Timestamp(start), EPOCH), pd.Timestamp(end)
        chunks = [self._stock_frame(public[i : i + 400], start_ts, end_ts, with_year_open=True)
                  for i in range(0, len(public), 400)]
        p = pd.concat(chunks, ignore_index=True) if chunks else pd.DataFrame()
        if p.empty:
            for s in public:
                failures.setdefault(s, _no_data_reason(s, pd.Timestamp(start), pd.Timestamp(end)))
            return FetchResult(empty_frame(VALUATION_COLUMNS), failures, skipped)
        stocks = [s for s in public if s not in FACTOR_ETFS]
        p = p[["date", "symbol", "close", "year_open", "share_basis"]]
        p["eps"] = np.nan
        p["fwd_eps"] = np.nan
        p["shares"] = np.nan
        p["provider_beta"] = p["symbol"].map(_ETF_PROVIDER_BETA)
        p["dividend_yield"] = np.where(p["symbol"].isin(FACTOR_ETFS), ETF_DIVIDEND_YIELD, np.nan)
        if stocks:
            exp = planted_exposures(stocks, self.seed)
            e = exp.reindex(p["symbol"])
            is_stock = p["symbol"].isin(stocks).to_numpy()
            eps = e["eps_yield"].to_numpy() * p["year_open"].to_numpy()
            p.loc[is_stock, "eps"] = eps[is_stock]
            p.loc[is_stock, "fwd_eps"] = (eps * (1 + e["eps_growth"].to_numpy()))[is_stock]
            p.loc[is_stock, "shares"] = (e["shares"].to_numpy() * p["share_basis"].to_numpy())[is_stock]
            p.loc[is_stock, "provider_beta"] = e["provider_beta"].to_numpy()[is_stock]
            p.loc[is_stock, "dividend_yield"] = e["dividend_yield"].to_numpy()[is_stock]
        close = p["close"].to_numpy()
        with np.errstate(invalid="ignore", divide="ignore"):
            pe = np.where(p["eps"] > 0, close / p["eps"], np.nan)
            fpe = np.where(p["fwd_eps"] > 0, close / p["fwd_eps"], np.nan)
        frame = pd.DataFrame(
            {
                "date": p["date"].to_numpy(),
                "symbol": p["symbol"].to_numpy(),
                "pe": np.round(pe, 4),
                "forward_pe": np.round(fpe, 4),
                "provider_beta": p["provider_beta"].to_numpy(dtype=float),
                "week52_high": np.nan,
                "week52_low": np.nan,
                "market_cap": np.round(close * p["shares"].to_numpy(), 0),
                "dividend_yield": p["dividend_yield"].to_numpy(dtype=float),
                "source": self.name,
            }
        )
        delivered = set(frame["symbol"])
        for s in public:
            if s not in delivered:
                failures[s] = _no_data_reason(s, pd.Timestamp(start), pd.Timestamp(end))
        return FetchResult(frame[VALUATION_COLUMNS], failures, skipped)


def _no_data_reason(symbol: str, start: pd.Timestamp, end: pd.Timestamp) -> str:
    if symbol in LISTINGS and end < LISTINGS[symbol]:
        return f"not listed until {LISTINGS[symbol].date()}"
    if symbol in DELISTINGS and start > DELISTINGS[symbol]:
        return f"stopped trading after {DELISTINGS[symbol].date()}"
    occ = parse_occ(symbol)
    if occ is not None and pd.Timestamp(occ.expiry) < start:
        return f"option expired on {occ.expiry}"
    return "no data in the requested range"


def _black_scholes(s, k, t, r, vol, cp):
    """European option value per share (no dividends)."""
    sqrt_t = np.sqrt(t)
    d1 = (np.log(s / k) + (r + 0.5 * vol**2) * t) / (vol * sqrt_t)
    d2 = d1 - vol * sqrt_t
    if cp == "C":
        return s * ndtr(d1) - k * np.exp(-r * t) * ndtr(d2)
    return k * np.exp(-r * t) * ndtr(-d2) - s * ndtr(-d1)
