"""Daily portfolio snapshots: a pure function of the ledger and prices.

Ledger model
------------
A portfolio is its capital flows plus its positions; nothing else is stored and no earlier snapshot
is ever read, so any day can be (re)computed alone, in any order, with the same result.

For a day ``D`` (every comparison is on calendar dates, so a weekend flow counts from the next
session on):

* multiplier ``m_i`` = 100 for ``OPTIONS`` (entry/exit prices are per-share premiums), 1 otherwise
  (``PUBLIC`` and ``PRIVATE``).
* Splits: the ledger's quantity ``q_i`` is as of the entry date (its ``entry_price`` is the price as
  traded that day). On ``D`` the position holds ``q_i(D) = q_i · F_i(D)`` shares, ``F_i(D)`` the
  product of the split ratios of its symbol on the sessions ``t`` with ``entry_date < t ≤ D`` (a
  split on the entry day is already in the entry price). A split therefore never shows as a loss.
* Dividends are cash: on an ex-date ``t`` a position held at the previous close (``entry_date <
  t`` and no exit before ``t``: ``exit_date`` empty or ``≥ t``) receives ``q_i(t) · dividend_t``
  (per post-split share on a split day) — a long is credited, a short (negative quantity) debited.
  ``dividends(D)`` is the day's total; options and private assets receive none.
* ``cash(D) = Σ flows with date ≤ D``
  ``− Σ q_i · entry_price_i · m_i`` over positions with ``entry_date ≤ D``
  ``+ Σ q_i(exit) · exit_price_i · m_i`` over positions with ``exit_date ≤ D``
  ``+ Σ dividends`` with ex-date ``≤ D``.
  Quantities are signed, so opening a short *adds* cash and closing it spends cash.
* Deleted positions (``deleted`` true) are removed from the ledger entirely (cash included): a
  deleted row is a booking error, not a trade.
* A missing ``entry_price`` (or an ``exit_date`` without ``exit_price``) makes the cash of that
  portfolio NaN from that date on — an unknown cash amount is not guessed (the portfolio loader
  rejects such rows; this is the last line of defence).
* Active on ``D``: ``entry_date ≤ D`` and (``exit_date`` empty or ``exit_date > D``) and not
  deleted; an option with ``expiration < D`` is inactive. An expired option without an exit row is
  treated as expired worthless: its premium stays spent and no proceeds arrive.
* Market value ``MV_i = q_i(P) · price_i · m_i``. ``PUBLIC``/``OPTIONS`` use ``close`` on ``D`` (the
  option's own OCC symbol; ``P = D``), else the last close within ``stale_days`` sessions
  (``is_stale``; ``P`` = that session, so a split after the stale close is not applied to it),
  else the position is *unpriced*: it has no MV, is not valued at 0, and is counted
  (``unpriced_count``, ``is_partial``). ``PRIVATE`` uses its dated marks (total USD value of the
  position, sign as given): the last mark dated ``≤ D``, the entry cost ``q_i · entry_price_i``
  before the first mark; a ``manual_value`` of the positions file is a mark dated at entry. A mark
  dated after ``D`` never reaches ``D``.
* ``equity(D) = cash(D) + Σ MV_i`` over active positions when every one is priced; NaN when some
  active position is unpriced (``is_partial``): a partial sum is not the portfolio's equity, and
  ``cumulative_pnl`` and every ratio built on equity (daily return, exposure_value, % of equity in
  stress) are NaN with it.
* ``long_exposure = Σ MV>0``, ``short_exposure = Σ MV<0`` (a negative number),
  ``gross_exposure = Σ |MV|``, ``net_exposure = Σ MV`` (priced positions only).
* ``position_count`` counts active positions, priced or not; ``long_count`` / ``short_count``
  split them by the sign of the quantity (known even when the position is unpriced), so a long
  put is a long position; ``stale_count`` counts positions valued from an older close.
  Exposures and concentration cover the priced positions (with ``is_partial`` set when some are
  not).

Daily P&L
---------
``daily_pnl(D) = equity(D) − equity(D⁻) − (flows dated in (D⁻, D])`` where ``D⁻`` is the previous
session of the price frame and ``equity(D⁻)`` is recomputed from the same ledger with ``D⁻`` prices.
When either day is partial (some active position unpriced), the P&L is NaN: the difference of two
valuations that cover different positions is not a P&L (an unpriced new position would show its
whole cost as a loss). ``daily_return = daily_pnl / equity(D⁻)``, NaN when ``equity(D⁻) ≤ 0``.
``cumulative_flows(D) = Σ flows ≤ D``; ``cumulative_pnl(D) = equity(D) − cumulative_flows(D)``.
On the first session of the price frame (no previous session) P&L and return are NaN.

Concentration and volatility
----------------------------
Gross weights ``|MV_i| / gross`` over priced positions (each position on its own, lots of the same
symbol are not merged) give ``hhi``, ``effective_positions_hhi = 1/hhi``, ``top3_weight``,
``top10_weight`` (NaN when gross is 0 or there is no priced position).

``volatility_{21,63}d`` is the realised volatility of *the day's holdings* held over the last 21 /
63 sessions ending at ``D`` (what the current book would have done), on the daily total returns
``r_i,t`` of ``returns_wide`` (``symbol_returns``; a missing return stays missing). Only
market-priced positions (``PUBLIC``/``OPTIONS`` priced on ``D``) take part: ``PRIVATE`` marks have
no return series. With ``w_i = MV_i / G`` (signed; ``G`` = their gross):

* ``c_t = Σ_{i: r_i,t known} |w_i|`` — gross weight with a return on day ``t``;
* ``r_p,t = Σ_{i: r_i,t known} w_i r_i,t / c_t`` if ``c_t ≥ 0.90`` else missing (renormalised
  over the weight present; a missing return is never treated as 0);
* ``vol = std(r_p, ddof=1) · √252`` if at least 80 % of the window's days (17 of 21, 51 of 63)
  have an ``r_p,t``, else NaN. Without ``returns_wide`` both columns are NaN.

Units: money in USD, returns and weights as decimal fractions, volatility annualised decimal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse

from .concentration import concentration_metrics
from .frames import upper_values

OPTION_MULTIPLIER = 100.0
VOL_WINDOWS = (21, 63)
VOL_MIN_WEIGHT_COVERAGE = 0.90
VOL_MIN_DAY_FRACTION = 0.80
TRADING_DAYS_PER_YEAR = 252

SNAPSHOT_COLUMNS = [
    "date", "portfolio_id", "equity", "cash", "long_exposure", "short_exposure", "gross_exposure",
    "net_exposure", "daily_pnl", "daily_return", "cumulative_pnl", "cumulative_flows", "dividends",
    "position_count", "long_count", "short_count", "unpriced_count", "stale_count", "is_partial",
    "has_stale", "hhi", "effective_positions_hhi", "top3_weight", "top10_weight", "volatility_21d",
    "volatility_63d",
]
POSITION_VALUE_COLUMNS = [
    "date", "portfolio_id", "position_id", "symbol", "investment_class", "quantity", "price",
    "price_date", "multiplier", "market_value", "is_stale", "is_priced",
]

_NAT = np.datetime64("NaT", "ns")


def _day_array(values) -> np.ndarray:
    """Dates as naive ``datetime64[ns]`` at midnight (NaT kept); times of day are dropped."""
    s = pd.to_datetime(pd.Series(values), errors="raise")
    if getattr(s.dt, "tz", None) is not None:
        s = s.dt.tz_localize(None)
    return s.dt.normalize().to_numpy(dtype="datetime64[ns]")


def _as_days(days) -> pd.DatetimeIndex:
    idx = pd.DatetimeIndex(pd.to_datetime(pd.Index(days)))
    if idx.tz is not None:
        idx = idx.tz_localize(None)
    return idx.normalize().unique().sort_values()


def _session_index(frame: pd.DataFrame, name: str) -> pd.DatetimeIndex:
    idx = pd.DatetimeIndex(frame.index)
    if idx.tz is not None:
        idx = idx.tz_localize(None)
    idx = idx.normalize()
    if not idx.is_monotonic_increasing or not idx.is_unique:
        raise ValueError(f"{name}: index must be unique sessions in ascending order")
    if not frame.columns.is_unique:
        raise ValueError(f"{name}: duplicate symbol columns")
    return idx


@dataclass
class _Ledger:
    """Column arrays of the (non-deleted) positions and flows, coded by portfolio."""

    portfolio_ids: np.ndarray  # sorted unique ids; code = index here
    pcode: np.ndarray
    position_id: np.ndarray
    symbol: np.ndarray
    inv_class: np.ndarray
    qty: np.ndarray
    mult: np.ndarray
    entry_price: np.ndarray
    cost: np.ndarray
    proceeds: np.ndarray
    entry: np.ndarray
    exit: np.ndarray
    expiration: np.ndarray
    is_option: np.ndarray
    is_private: np.ndarray
    manual_value: np.ndarray
    fcode: np.ndarray
    fdate: np.ndarray
    famount: np.ndarray

    @property
    def n_portfolios(self) -> int:
        return len(self.portfolio_ids)

    @classmethod
    def build(cls, portfolios: pd.DataFrame, positions: pd.DataFrame, flows: pd.DataFrame) -> "_Ledger":
        if "deleted" in positions:
            deleted = positions["deleted"].astype("boolean").fillna(False).to_numpy(dtype=bool)
            pos = positions.loc[~deleted]
        else:
            pos = positions
        ids = pd.Index(
            pd.concat(
                [portfolios["portfolio_id"], pos["portfolio_id"], flows["portfolio_id"]], ignore_index=True
            )
            .astype(str)
            .unique()
        ).sort_values()
        inv_class = upper_values(pos["investment_class"])
        is_option = inv_class == "OPTIONS"
        is_private = inv_class == "PRIVATE"
        mult = np.where(is_option, OPTION_MULTIPLIER, 1.0)
        qty = pos["quantity"].to_numpy(dtype=float)
        n = len(pos)

        def col(name, default=np.nan):
            return pos[name].to_numpy(dtype=float) if name in pos else np.full(n, default)

        def dcol(name):
            return _day_array(pos[name]) if name in pos else np.full(n, _NAT)

        exit_date = dcol("exit_date")
        return cls(
            portfolio_ids=ids.to_numpy(dtype=object),
            pcode=ids.get_indexer(pos["portfolio_id"].astype(str)),
            position_id=pos["position_id"].astype(str).to_numpy(dtype=object),
            symbol=pos["symbol"].astype(str).to_numpy(dtype=object),
            inv_class=inv_class.astype(object),
            qty=qty,
            mult=mult,
            entry_price=col("entry_price"),
            cost=qty * col("entry_price") * mult,
            proceeds=qty * col("exit_price") * mult,
            entry=dcol("entry_date"),
            exit=exit_date,
            expiration=dcol("expiration"),
            is_option=is_option,
            is_private=is_private,
            manual_value=col("manual_value"),
            fcode=ids.get_indexer(flows["portfolio_id"].astype(str)),
            fdate=_day_array(flows["date"]),
            famount=flows["amount"].to_numpy(dtype=float),
        )

    def bincount(self, weights: np.ndarray) -> np.ndarray:
        # float even with no position at all (np.bincount of empty weights returns int64 zeros)
        return np.bincount(self.pcode, weights=weights, minlength=self.n_portfolios).astype(float, copy=False)


class _Actions:
    """Split factors and dividend cash of every position from the sparse corporate actions.

    ``pairs`` join each market position (PUBLIC; options and private assets have none) with the
    actions of its symbol dated after its entry: ``F`` is the running product of the split ratios
    (the position's factor on that date), ``cash`` the dividend it receives then (0 after its exit).
    """

    def __init__(self, ledger: "_Ledger", actions: pd.DataFrame | None):
        self.n = ledger.qty.size
        empty = np.empty(0, dtype=np.int64)
        self.pi, self.t, self.split, self.cash = empty, np.empty(0, dtype="datetime64[ns]"), np.empty(0), np.empty(0)
        if actions is None or len(actions) == 0 or self.n == 0:
            return
        split = pd.to_numeric(actions["split_ratio"], errors="coerce").to_numpy(dtype=float)
        div = pd.to_numeric(actions["dividend"], errors="coerce").to_numpy(dtype=float)
        # NaN = actions unknown (an adjusted close): nothing to apply.
        split = np.where(np.isfinite(split) & (split > 0), split, 1.0)
        div = np.where(np.isfinite(div) & (div > 0), div, 0.0)
        keep = (split != 1.0) | (div > 0)
        ev_sym = actions["symbol"].astype(str).to_numpy(dtype=object)[keep]
        ev_t, split, div = _day_array(actions["date"])[keep], split[keep], div[keep]
        market = np.flatnonzero(~ledger.is_private & ~ledger.is_option & ~np.isnat(ledger.entry))
        # Pair every market position with its symbol's actions dated after its entry, by position
        # then date: actions sorted by (symbol, day) make each position's pairs one contiguous run
        # found with two binary searches (no join of 250,000 positions × their symbols' actions).
        if not ev_sym.size or not market.size:
            return
        codes, _ = pd.factorize(np.concatenate([ev_sym, ledger.symbol[market]]))
        ev_code, pos_code = codes[: ev_sym.size].astype(np.int64), codes[ev_sym.size :].astype(np.int64)
        ev_day = ev_t.astype("datetime64[D]").astype(np.int64)
        entry_day = ledger.entry[market].astype("datetime64[D]").astype(np.int64)
        order = np.lexsort((ev_day, ev_code))
        ev_code, ev_day, ev_t, split, div = ev_code[order], ev_day[order], ev_t[order], split[order], div[order]
        base = min(ev_day.min(), entry_day.min())
        span = max(ev_day.max(), entry_day.max()) - base + 1  # (symbol, day) as one sortable integer
        key = ev_code * span + (ev_day - base)
        lo = np.searchsorted(key, pos_code * span + (entry_day - base), side="right")  # first action after entry
        hi = np.searchsorted(ev_code, pos_code, side="right")  # past the symbol's last action
        n_pairs = np.maximum(hi - lo, 0)
        if not n_pairs.sum():
            return
        self.pi = np.repeat(market, n_pairs).astype(np.int64)
        ends = np.cumsum(n_pairs)
        ev_idx = np.repeat(lo - (ends - n_pairs), n_pairs) + np.arange(ends[-1])
        self.t, self.split = ev_t[ev_idx], split[ev_idx]
        # The position's split factor on each action's date: the running product of its splits,
        # computed over the (rare) split pairs and carried to the pairs after them.
        is_split = self.split != 1.0
        factor = np.ones(self.pi.size)
        if is_split.any():
            sp = np.flatnonzero(is_split)
            factor[sp] = pd.Series(self.split[sp]).groupby(self.pi[sp], sort=False).cumprod().to_numpy(dtype=float)
            last = np.maximum.accumulate(np.where(is_split, np.arange(self.pi.size), -1))
            carried = (last >= 0) & (self.pi[np.maximum(last, 0)] == self.pi)
            factor = np.where(carried, factor[np.maximum(last, 0)], 1.0)
        exit_ = ledger.exit[self.pi]
        held = np.isnat(exit_) | (self.t <= exit_)  # held at the previous close of the ex-date
        self.cash = np.where(held, ledger.qty[self.pi] * factor * div[ev_idx], 0.0)

    def factor_at(self, dates: np.ndarray) -> np.ndarray:
        """Per position, the product of its split ratios dated after entry and ≤ ``dates[i]`` (1 when
        none; ``NaT`` → 1)."""
        f = np.ones(self.n)
        if self.pi.size:
            m = self.t <= dates[self.pi]
            np.multiply.at(f, self.pi[m], self.split[m])
        return f

    def dividends(self, day: np.datetime64, through: bool) -> np.ndarray:
        """Per position, dividend cash dated ≤ ``day`` (``through``) or exactly on ``day``."""
        out = np.zeros(self.n)
        if self.pi.size:
            m = (self.t <= day) if through else (self.t == day)
            np.add.at(out, self.pi[m], self.cash[m])
        return out


class _Marks:
    """Dated values of the private positions: the ledger's ``manual_value`` as a mark at entry, then
    the marks of ``marks`` (a same-day mark of the file wins); before the first, the entry cost."""

    def __init__(self, ledger: "_Ledger", marks: pd.DataFrame | None):
        self.entry_cost = ledger.qty * ledger.entry_price
        idx = np.flatnonzero(ledger.is_private & np.isfinite(ledger.manual_value))
        parts = [(idx, ledger.entry[idx], ledger.manual_value[idx])]
        if marks is not None and len(marks):
            keys = pd.MultiIndex.from_arrays([ledger.portfolio_ids[ledger.pcode].astype(str), ledger.position_id])
            mi = keys.get_indexer(pd.MultiIndex.from_arrays([marks["portfolio_id"].astype(str).to_numpy(),
                                                             marks["position_id"].astype(str).to_numpy()]))
            ok = mi >= 0
            ok[ok] = ledger.is_private[mi[ok]]
            parts.append((mi[ok], _day_array(marks["date"])[ok], marks["value"].to_numpy(dtype=float)[ok]))
        i = np.concatenate([p[0] for p in parts]).astype(np.int64)
        t = np.concatenate([p[1] for p in parts]).astype("datetime64[ns]")
        v = np.concatenate([p[2] for p in parts]).astype(float)
        order = np.lexsort((np.arange(i.size), t, i))  # by position, date, then file marks after manual
        self.i, self.t, self.v = i[order], t[order], v[order]
        self.n = ledger.qty.size

    def value_at(self, day: np.datetime64) -> np.ndarray:
        """Per position, the last mark dated ≤ ``day``, else the entry cost."""
        last = np.full(self.n, -1, dtype=np.int64)
        m = np.flatnonzero(self.t <= day)
        if m.size:
            np.maximum.at(last, self.i[m], m)
        return np.where(last >= 0, self.v[np.maximum(last, 0)] if self.v.size else np.nan, self.entry_cost)


class _PriceTable:
    """Close lookup with a bounded look-back: ``price_row[s, j]`` is the row of the last non-missing
    close of column ``j`` within ``stale_days`` sessions of row ``s`` (NaN when none)."""

    def __init__(self, close_wide: pd.DataFrame, symbols: np.ndarray, stale_days: int):
        uniq = pd.Index(pd.unique(symbols))
        cols = close_wide.columns.get_indexer(uniq)
        used = uniq[cols >= 0]
        values = close_wide.loc[:, used].to_numpy(dtype=float, copy=True)
        values[~np.isfinite(values)] = np.nan
        rows = np.arange(values.shape[0], dtype=float)[:, None]
        price_row = pd.DataFrame(np.where(np.isnan(values), np.nan, rows)).ffill(limit=stale_days)
        # An extra all-NaN column at the end serves symbols absent from the frame.
        self.values = np.hstack([values, np.full((values.shape[0], 1), np.nan)])
        self.price_row = np.hstack([price_row.to_numpy(), np.full((values.shape[0], 1), np.nan)])
        lookup = pd.Index(used).get_indexer(symbols)
        self.col = np.where(lookup >= 0, lookup, len(used))

    def at(self, row: int, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(price, price_row) for positions in ``mask`` at session ``row``; NaN where unpriced."""
        cols = self.col[mask]
        prow = self.price_row[row, cols]
        ok = ~np.isnan(prow)
        price = np.full(cols.size, np.nan)
        price[ok] = self.values[prow[ok].astype(np.int64), cols[ok]]
        return price, prow


def _state(ledger: _Ledger, prices: _PriceTable, actions: _Actions, marks: _Marks, sessions: np.ndarray, row: int,
           day: np.datetime64, flows_cum: np.ndarray):
    """Ledger state at one session: per-position activity/valuation and per-portfolio equity."""
    entered = ledger.entry <= day
    exited = ledger.exit <= day  # NaT compares False: never exited
    expired = ledger.is_option & (ledger.expiration < day)
    active = entered & ~exited & ~expired
    # np.where keeps NaN costs of *entered* positions (unknown cash stays unknown) and ignores
    # the rest; bincount then propagates that NaN to the portfolio's cash.
    cash = (
        flows_cum
        - ledger.bincount(np.where(entered, ledger.cost, 0.0))
        + ledger.bincount(np.where(exited, ledger.proceeds, 0.0))
        + ledger.bincount(actions.dividends(day, through=True))
    )
    price = np.full(ledger.qty.size, np.nan)
    prow = np.full(ledger.qty.size, np.nan)
    market = active & ~ledger.is_private
    price[market], prow[market] = prices.at(row, market)
    # Shares held as of the close that values the position (a stale close predates later splits).
    price_day = np.full(ledger.qty.size, _NAT)
    have = ~np.isnan(prow)
    price_day[have] = sessions[prow[have].astype(np.int64)]
    qty = ledger.qty * actions.factor_at(np.where(have, price_day, np.datetime64(day, "ns")))
    mv = qty * price * ledger.mult
    private = active & ledger.is_private
    mv[private] = marks.value_at(day)[private]
    with np.errstate(divide="ignore", invalid="ignore"):
        price[private] = mv[private] / ledger.qty[private]
    priced = active & np.isfinite(mv)
    mv_priced = np.where(priced, mv, 0.0)
    unpriced = ledger.bincount((active & ~priced).astype(float))
    # An unpriced position makes the equity unknown: never "cash + the priced part".
    equity = np.where(unpriced > 0, np.nan, cash + ledger.bincount(mv_priced))
    dividends = ledger.bincount(actions.dividends(day, through=False))
    return dict(active=active, priced=priced, mv=mv, mv_priced=mv_priced, price=price, prow=prow, qty=qty,
                cash=cash, equity=equity, unpriced=unpriced, market=market, dividends=dividends)


def _volatility(
    ledger: _Ledger, st: dict, returns_padded: np.ndarray, ret_col: np.ndarray, row: int
) -> dict[str, np.ndarray]:
    """Realised volatility of the day's market-priced holdings (see module docstring).

    ``returns_padded`` has ``max(VOL_WINDOWS)`` all-NaN rows prepended (so a window reaching
    before the frame reads missing returns, not an error) and one all-NaN column appended (for
    symbols absent from the frame, ``ret_col == -1``); ``row`` is the unpadded session row.
    """
    n_p = ledger.n_portfolios
    out = {f"volatility_{w}d": np.full(n_p, np.nan) for w in VOL_WINDOWS}
    sel = np.flatnonzero(st["priced"] & st["market"])
    if sel.size == 0 or row < 0:
        return out
    wmax = max(VOL_WINDOWS)
    mv = st["mv"][sel]
    absmv = np.abs(mv)
    pc = ledger.pcode[sel]
    gross = np.bincount(pc, weights=absmv, minlength=n_p)
    # Positions share symbols: gather the window once per distinct symbol column (padded rows of
    # sessions row-wmax+1 .. row), then sum per portfolio with two sparse (portfolio × symbol)
    # products: num = Σ MV_i r_i,t over known returns, den = Σ |MV_i| over known returns.
    ucol, inv = np.unique(ret_col[sel], return_inverse=True)
    r = returns_padded[row + 1 : row + wmax + 1][:, ucol]  # (window × symbols)
    present = ~np.isnan(r)
    r0 = np.where(present, r, 0.0)
    shape = (n_p, ucol.size)
    num = np.asarray(sparse.csr_matrix((mv, (pc, inv)), shape=shape) @ r0.T)
    den = np.asarray(sparse.csr_matrix((absmv, (pc, inv)), shape=shape) @ present.T.astype(float))
    with np.errstate(divide="ignore", invalid="ignore"):
        coverage = den / gross[:, None]
        rp = np.where(coverage >= VOL_MIN_WEIGHT_COVERAGE - 1e-12, num / den, np.nan)
    for w in VOL_WINDOWS:
        x = rp[:, -w:]
        n_ok = (~np.isnan(x)).sum(axis=1)
        need = math.ceil(VOL_MIN_DAY_FRACTION * w)
        ok = n_ok >= max(need, 2)
        vol = np.full(n_p, np.nan)
        if ok.any():
            vol[ok] = np.nanstd(x[ok], axis=1, ddof=1) * math.sqrt(TRADING_DAYS_PER_YEAR)
        out[f"volatility_{w}d"] = vol
    return out


def compute_snapshots(
    portfolios: pd.DataFrame,
    positions: pd.DataFrame,
    flows: pd.DataFrame,
    close_wide: pd.DataFrame,
    days,
    stale_days: int = 5,
    returns_wide: pd.DataFrame | None = None,
    actions: pd.DataFrame | None = None,
    marks: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Portfolio snapshots and position valuations for a set of days (ledger model in module doc).

    Vectorised over portfolios and positions (``np.bincount`` / sparse products on integer
    portfolio codes); the only Python loop is over the requested days.

    Parameters
    ----------
    portfolios : DataFrame
        ``portfolio_id, name``. Every portfolio gets a row every day, also before its first flow
        (all zeros) and when it holds nothing (equity = cash, counts 0, weights NaN). Portfolio
        ids that appear only in positions or flows are included too (never silently dropped).
    positions : DataFrame
        Warehouse positions (``portfolio_id, position_id, symbol, investment_class, quantity,
        entry_price, entry_date, exit_date, exit_price, expiration, manual_value, deleted`` …).
    flows : DataFrame
        ``portfolio_id, date, amount`` (USD, + deposit / − withdrawal).
    close_wide : DataFrame
        ``close`` by session (index, ascending, every session present) × symbol (columns), NaN
        missing. Must cover every day, its previous session and ``stale_days`` sessions before.
    days : DatetimeIndex-like
        Partition days; each must be a row of ``close_wide``.
    stale_days : int, default 5
        Largest look-back, in sessions, of a stale close.
    returns_wide : DataFrame, optional
        Daily total returns by session (index, ascending) × symbol, NaN missing, for the
        volatility columns (63 sessions ending at each day for a full window). Without it, or for
        a day missing from its index, volatilities are NaN.
    actions : DataFrame, optional
        ``date, symbol, dividend, split_ratio``: the corporate actions of the held symbols (rows
        without one, and NaN "actions unknown", are ignored). Must hold every action dated after
        the earliest entry up to the last day; without it no split or dividend is applied.
    marks : DataFrame, optional
        ``portfolio_id, position_id, date, value``: dated marks of PRIVATE positions (total USD
        value); marks of other positions are ignored.

    Returns
    -------
    snapshots : DataFrame
        One row per (date, portfolio_id), columns ``SNAPSHOT_COLUMNS``.
    position_values : DataFrame
        One row per (date, active position), unpriced included, columns
        ``POSITION_VALUE_COLUMNS``; ``market_value`` and ``price`` NaN when unpriced, ``price_date``
        the session of the close used (NaT for PRIVATE, whose ``price`` is
        ``manual_value / quantity``).
    """
    days = _as_days(days)
    sessions = _session_index(close_wide, "close_wide")
    day_rows = sessions.get_indexer(days)
    if (day_rows < 0).any():
        missing = [d.date().isoformat() for d in days[day_rows < 0]]
        raise ValueError(f"days not in the close_wide session index: {missing[:5]}")
    ledger = _Ledger.build(portfolios, positions, flows)
    prices = _PriceTable(close_wide.set_axis(sessions, axis=0), ledger.symbol, stale_days)
    session_np = sessions.to_numpy(dtype="datetime64[ns]")
    acts = _Actions(ledger, actions)
    # Exit proceeds are per share as traded on the exit day: the quantity then includes the splits.
    ledger.proceeds = ledger.proceeds * acts.factor_at(ledger.exit)
    book_marks = _Marks(ledger, marks)

    returns = ret_col = ret_sessions = None
    if returns_wide is not None:
        ret_sessions = _session_index(returns_wide, "returns_wide")
        r = returns_wide.to_numpy(dtype=float)
        wmax = max(VOL_WINDOWS)
        returns = np.full((r.shape[0] + wmax, r.shape[1] + 1), np.nan)
        returns[wmax:, :-1] = r
        ret_col = returns_wide.columns.get_indexer(ledger.symbol)
        ret_col = np.where(ret_col >= 0, ret_col, r.shape[1])

    def flows_cum(day):
        return np.bincount(
            ledger.fcode, weights=np.where(ledger.fdate <= day, ledger.famount, 0.0),
            minlength=ledger.n_portfolios,
        ).astype(float, copy=False)

    light_cache: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    snaps, pvs = [], []
    n_p = ledger.n_portfolios
    for day, row in zip(days, day_rows):
        d64 = session_np[row]
        fc = flows_cum(d64)
        st = _state(ledger, prices, acts, book_marks, session_np, row, d64, fc)
        light_cache[row] = (st["equity"], st["unpriced"] > 0, fc)
        if row > 0:
            if row - 1 not in light_cache:
                p64 = session_np[row - 1]
                pfc = flows_cum(p64)
                pst = _state(ledger, prices, acts, book_marks, session_np, row - 1, p64, pfc)
                light_cache[row - 1] = (pst["equity"], pst["unpriced"] > 0, pfc)
            eq_prev, partial_prev, fc_prev = light_cache[row - 1]
        else:
            eq_prev = fc_prev = np.full(n_p, np.nan)
            partial_prev = np.zeros(n_p, dtype=bool)

        active, priced, mv_p = st["active"], st["priced"], st["mv_priced"]
        partial = st["unpriced"] > 0
        pnl = st["equity"] - eq_prev - (fc - fc_prev)
        pnl = np.where(partial | partial_prev, np.nan, pnl)
        with np.errstate(divide="ignore", invalid="ignore"):
            ret = np.where(eq_prev > 0, pnl / eq_prev, np.nan)
        stale = active & priced & st["market"] & (st["prow"] < row)
        pi = np.flatnonzero(priced)
        conc = concentration_metrics(ledger.pcode[pi], np.abs(st["mv"][pi]), n_p)
        if returns is not None:
            vrow = ret_sessions.get_loc(day) if day in ret_sessions else -1
            vol = _volatility(ledger, st, returns, ret_col, vrow)
        else:
            vol = {f"volatility_{w}d": np.full(n_p, np.nan) for w in VOL_WINDOWS}

        cnt = lambda m: ledger.bincount(m.astype(float)).astype(np.int64)  # noqa: E731
        snaps.append(
            pd.DataFrame(
                {
                    "date": day,
                    "portfolio_id": ledger.portfolio_ids,
                    "equity": st["equity"],
                    "cash": st["cash"],
                    "long_exposure": ledger.bincount(np.where(mv_p > 0, mv_p, 0.0)),
                    "short_exposure": ledger.bincount(np.where(mv_p < 0, mv_p, 0.0)),
                    "gross_exposure": ledger.bincount(np.abs(mv_p)),
                    "net_exposure": ledger.bincount(mv_p),
                    "daily_pnl": pnl,
                    "daily_return": ret,
                    "cumulative_pnl": st["equity"] - fc,
                    "cumulative_flows": fc,
                    "dividends": st["dividends"],
                    "position_count": cnt(active),
                    "long_count": cnt(active & (ledger.qty > 0)),
                    "short_count": cnt(active & (ledger.qty < 0)),
                    "unpriced_count": st["unpriced"].astype(np.int64),
                    "stale_count": cnt(stale),
                    "is_partial": partial,
                    "has_stale": cnt(stale) > 0,
                    **conc,
                    **vol,
                }
            )
        )
        ai = np.flatnonzero(active)
        prow = st["prow"][ai]
        price_date = np.full(ai.size, _NAT)
        ok = ~np.isnan(prow)
        price_date[ok] = session_np[prow[ok].astype(np.int64)]
        pvs.append(
            pd.DataFrame(
                {
                    "date": day,
                    "portfolio_id": ledger.portfolio_ids[ledger.pcode[ai]],
                    "position_id": ledger.position_id[ai],
                    "symbol": ledger.symbol[ai],
                    "investment_class": ledger.inv_class[ai],
                    "quantity": st["qty"][ai],
                    "price": st["price"][ai],
                    "price_date": price_date,
                    "multiplier": ledger.mult[ai],
                    "market_value": np.where(priced[ai], st["mv"][ai], np.nan),
                    "is_stale": stale[ai],
                    "is_priced": priced[ai],
                }
            )
        )
    snapshots = (
        pd.concat(snaps, ignore_index=True) if snaps else pd.DataFrame(columns=SNAPSHOT_COLUMNS)
    )
    position_values = (
        pd.concat(pvs, ignore_index=True) if pvs else pd.DataFrame(columns=POSITION_VALUE_COLUMNS)
    )
    return snapshots[SNAPSHOT_COLUMNS], position_values[POSITION_VALUE_COLUMNS]
