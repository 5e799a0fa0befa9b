"""Deterministic benchmark ledger: N portfolios of ~K positions drawn from S synthetic symbols.

The synthetic provider serves any public symbol name, so the market is ``S0000 .. S{n-1}`` plus the
eight factor ETFs (always in the universe). Each portfolio:

* holds ``positions`` lots (distinct symbols) — about 20 % of the portfolios are long/short books with
  ~30 % of their lots short, the rest long-only;
* about 4 % hold one listed option (a handful of OCC contracts on SPY/IWM and a few stocks, expiring
  after the benchmark range, priced by the provider) and about 3 % one private asset (manual value);
* enters its lots on sessions before the benchmark range (so the whole range is covered by the
  symbol universe); about 2 % of lots exit inside the range;
* has one capital flow: the initial deposit on its first entry day (the lots' net cost plus a cash
  buffer), so equity starts near the deposit.

Entry prices are the synthetic closes of the entry day (the generator asks the provider), so P&L and
weights look like a real book. Every symbol is held by at least one portfolio when
``portfolios × positions ≥ symbols``. The result is a :class:`sigmasight_assets.ledger.Ledger`, the
same frames ``parse_ledger`` returns; :func:`write_csv` writes it in the loader's CSV format.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from sigmasight_assets import calendar
from sigmasight_assets.calc.factors import FACTOR_ETFS
from sigmasight_assets.ledger import Ledger
from sigmasight_assets.market_data.synthetic import SyntheticProvider

LONG_SHORT_SHARE = 0.20
SHORT_SHARE_IN_LS = 0.30
OPTION_SHARE = 0.04
PRIVATE_SHARE = 0.03
EXIT_SHARE = 0.02
N_OPTION_CONTRACTS = 12


def symbol_names(n: int) -> list[str]:
    """``S0000 ..`` (at least four digits), never colliding with the factor ETFs."""
    width = max(4, len(str(max(n - 1, 0))))
    return [f"S{i:0{width}d}" for i in range(n)]


def _third_friday(year: int, month: int) -> pd.Timestamp:
    first = pd.Timestamp(year=year, month=month, day=1)
    return first + pd.Timedelta(days=(4 - first.weekday()) % 7 + 14)


def _occ(root: str, expiry: pd.Timestamp, cp: str, strike: float) -> str:
    return f"{root}{expiry:%y%m%d}{cp}{int(round(strike * 1000)):08d}"


def generate_ledger(
    n_portfolios: int,
    n_symbols: int,
    positions: int,
    entry_start,
    entry_end,
    range_end,
    seed: int = 20261121,
    market_seed: int = 7,
) -> Ledger:
    """The benchmark ledger (see module docstring).

    ``entry_start .. entry_end``: sessions on which lots are entered (before the benchmark range);
    ``range_end``: last benchmark session (options expire after it, exits happen before it).
    """
    rng = np.random.default_rng(seed)
    symbols = symbol_names(n_symbols)
    k = min(positions, n_symbols)
    entry_sessions = calendar.sessions(entry_start, entry_end)
    exit_sessions = calendar.sessions(pd.Timestamp(entry_end) + pd.Timedelta(days=1), range_end)
    if len(entry_sessions) == 0:
        raise ValueError(f"no sessions in the entry window {entry_start}..{entry_end}")

    # Option contracts: near-the-money calls/puts expiring ~6 months after the range.
    expiry = _third_friday(*(pd.Timestamp(range_end) + pd.DateOffset(months=6)).timetuple()[:2])
    roots = ["SPY", "IWM"] + symbols[: max(0, min(4, n_symbols))]
    provider = SyntheticProvider(market_seed)
    ref = provider.fetch_prices(roots, entry_sessions[-1].date(), entry_sessions[-1].date()).frame
    ref_close = ref.groupby("symbol")["close"].last()
    contracts = []
    for j in range(N_OPTION_CONTRACTS):
        root = roots[j % len(roots)]
        if root not in ref_close:
            continue
        cp = "C" if j % 2 == 0 else "P"
        strike = max(1.0, round(float(ref_close[root]) * (1.0 + 0.05 * ((j // 2) % 3 - 1))))
        contracts.append((_occ(root, expiry, cp, strike), root, cp, strike))

    # -- lots ---------------------------------------------------------------------------------------
    rows = []
    # A shuffled deck of symbols dealt portfolio by portfolio: every symbol is held when the deck fits.
    deck = np.concatenate([rng.permutation(n_symbols) for _ in range(int(np.ceil(n_portfolios * k / n_symbols)) + 1)])
    cursor = 0
    books, flows = [], []
    for p in range(n_portfolios):
        pid = f"BP{p:05d}"
        books.append((pid, f"Bench portfolio {p}"))
        has_option = rng.random() < OPTION_SHARE and contracts
        has_private = rng.random() < PRIVATE_SHARE
        n_public = k - int(bool(has_option)) - int(has_private)
        picked: list[int] = []
        seen = set()
        while len(picked) < n_public:
            s = int(deck[cursor % len(deck)])
            cursor += 1
            if s not in seen:
                seen.add(s)
                picked.append(s)
        long_short = rng.random() < LONG_SHORT_SHARE
        equity = float(np.exp(rng.normal(np.log(2e6), 0.6)))
        weights = rng.dirichlet(np.full(k, 2.0)) * equity
        base = int(rng.integers(0, len(entry_sessions)))
        for i, s in enumerate(picked):
            day = entry_sessions[min(len(entry_sessions) - 1, base + int(rng.integers(0, 10)))]
            short = long_short and rng.random() < SHORT_SHARE_IN_LS
            rows.append(dict(portfolio_id=pid, position_id=f"L{i:03d}", symbol=symbols[s], investment_class="PUBLIC",
                             target=weights[i] * (-1 if short else 1), entry_date=day))
        if has_option:
            occ, root, cp, strike = contracts[int(rng.integers(0, len(contracts)))]
            rows.append(dict(portfolio_id=pid, position_id="OPT1", symbol=occ, investment_class="OPTIONS",
                             target=weights[-1] * 0.1, entry_date=entry_sessions[base], underlying=root,
                             option_type=cp, strike=strike, expiration=expiry))
        if has_private:
            value = round(float(weights[-2 if has_option else -1]), 2)
            rows.append(dict(portfolio_id=pid, position_id="PRIV1", symbol=f"PRIV_{p:05d}", investment_class="PRIVATE",
                             target=value, entry_date=entry_sessions[base], manual_value=round(value * 1.08, 2)))
    pos = pd.DataFrame(rows)

    # -- entry prices from the synthetic market -----------------------------------------------------
    market = pos.loc[pos["investment_class"] != "PRIVATE", "symbol"].unique().tolist()
    frame = provider.fetch_prices(market, entry_sessions[0].date(), entry_sessions[-1].date()).frame
    close = (frame.pivot(index="date", columns="symbol", values="close")
             .reindex(index=entry_sessions).ffill().bfill())
    public = pos["investment_class"] != "PRIVATE"
    px = np.full(len(pos), np.nan)
    rows_idx = close.index.get_indexer(pd.DatetimeIndex(pos.loc[public, "entry_date"]))
    cols_idx = close.columns.get_indexer(pos.loc[public, "symbol"])
    ok = (rows_idx >= 0) & (cols_idx >= 0)
    vals = np.full(int(public.sum()), np.nan)
    vals[ok] = close.to_numpy()[rows_idx[ok], cols_idx[ok]]
    px[public.to_numpy()] = vals
    unpriced = public.to_numpy() & ~np.isfinite(px)
    if unpriced.any():  # a symbol the provider has no close for in the entry window: drop the lot
        pos, px = pos[~unpriced].reset_index(drop=True), px[~unpriced]
    mult = np.where(pos["investment_class"] == "OPTIONS", 100.0, 1.0)
    is_private = (pos["investment_class"] == "PRIVATE").to_numpy()
    qty = np.where(is_private, 1.0, np.round(pos["target"].to_numpy() / (np.where(is_private, 1.0, px) * mult)))
    qty = np.where(qty == 0, np.sign(pos["target"].to_numpy()), qty)
    pos["quantity"] = qty.astype(float)
    pos["entry_price"] = np.where(is_private, pos["target"].to_numpy(), np.round(px, 4))

    # A few exits inside the range (approximate exit prices: ±20 % of entry).
    pos["exit_date"] = pd.NaT
    pos["exit_price"] = np.nan
    if len(exit_sessions):
        exits = (rng.random(len(pos)) < EXIT_SHARE) & (pos["investment_class"] == "PUBLIC").to_numpy()
        pos.loc[exits, "exit_date"] = exit_sessions[rng.integers(0, len(exit_sessions), int(exits.sum()))]
        pos.loc[exits, "exit_price"] = np.round(pos.loc[exits, "entry_price"] * rng.uniform(0.8, 1.2, int(exits.sum())), 4)

    for col in ("underlying", "option_type", "strike", "expiration", "manual_value"):
        if col not in pos.columns:
            pos[col] = np.nan
    pos["underlying"] = pos["underlying"].where(pos["underlying"].notna(), None).astype(object)
    pos["option_type"] = pos["option_type"].where(pos["option_type"].notna(), None).astype(object)
    pos["strike"] = pos["strike"].astype(float)
    pos["manual_value"] = pos["manual_value"].astype(float)
    pos["expiration"] = pd.to_datetime(pos["expiration"])
    pos["entry_date"] = pd.to_datetime(pos["entry_date"])
    pos["exit_date"] = pd.to_datetime(pos["exit_date"])
    pos["deleted"] = False

    # -- one capital flow per portfolio: the initial deposit ----------------------------------------
    cost = (pos["quantity"] * pos["entry_price"] * mult).groupby(pos["portfolio_id"]).sum()
    gross = (pos["quantity"].abs() * pos["entry_price"] * mult).groupby(pos["portfolio_id"]).sum()
    first = pos.groupby("portfolio_id")["entry_date"].min()
    deposit = np.round(np.maximum(cost, 0.0) + 0.05 * gross + 1000.0, 2)
    flows = pd.DataFrame({
        "portfolio_id": deposit.index,
        "flow_id": "DEPOSIT",
        "date": first.reindex(deposit.index).to_numpy(),
        "amount": deposit.to_numpy(),
        "description": "initial deposit",
    })
    columns = ["portfolio_id", "position_id", "symbol", "investment_class", "quantity", "entry_price", "entry_date",
               "exit_date", "exit_price", "underlying", "option_type", "strike", "expiration", "manual_value",
               "deleted"]
    portfolios = pd.DataFrame(books, columns=["portfolio_id", "name"]).assign(source_file="benchmarks/generate.py")
    portfolios = portfolios[portfolios["portfolio_id"].isin(pos["portfolio_id"])].reset_index(drop=True)
    return Ledger(portfolios, pos[columns].reset_index(drop=True), flows)


def write_csv(ledger: Ledger, directory: str | Path) -> tuple[Path, Path]:
    """The ledger as the loader's CSV files (``positions.csv``, ``capital_flows.csv``)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    pos = ledger.positions.merge(ledger.portfolios[["portfolio_id", "name"]], on="portfolio_id", how="left")
    pos = pos.rename(columns={"name": "portfolio_name"})
    out = pos[["portfolio_id", "portfolio_name", "position_id", "symbol", "quantity", "entry_price", "entry_date",
               "exit_date", "exit_price", "investment_class", "underlying", "option_type", "strike", "expiration",
               "manual_value", "deleted"]].copy()
    for col in ("entry_date", "exit_date", "expiration"):
        out[col] = out[col].dt.strftime("%Y-%m-%d")
    out["deleted"] = out["deleted"].map({True: "true", False: "false"})
    pos_path, flow_path = directory / "positions.csv", directory / "capital_flows.csv"
    out.to_csv(pos_path, index=False)
    flows = ledger.capital_flows.copy()
    flows["date"] = pd.to_datetime(flows["date"]).dt.strftime("%Y-%m-%d")
    flows.to_csv(flow_path, index=False)
    return pos_path, flow_path


def summary(ledger: Ledger) -> dict:
    pos = ledger.positions
    return {
        "portfolios": len(ledger.portfolios),
        "positions": len(pos),
        "capital_flows": len(ledger.capital_flows),
        "symbols_held": int(pos.loc[pos["investment_class"] == "PUBLIC", "symbol"].nunique()),
        "short_positions": int((pos["quantity"] < 0).sum()),
        "option_positions": int((pos["investment_class"] == "OPTIONS").sum()),
        "private_positions": int((pos["investment_class"] == "PRIVATE").sum()),
        "exits_in_range": int(pos["exit_date"].notna().sum()),
        "first_entry": str(pos["entry_date"].min().date()),
        "last_entry": str(pos["entry_date"].max().date()),
        "factor_etfs": list(FACTOR_ETFS),
    }
