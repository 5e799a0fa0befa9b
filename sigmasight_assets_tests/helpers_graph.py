"""Helpers for the Dagster-level graph tests (symbol, portfolio, CSV and recovery tests).

* temporary warehouses (a unique SQLite file per warehouse, so ``engine_for``'s URL cache never
  hands one test another test's engine) and byte-identical copies of one (SQLite backup API), so
  two ways of computing the same partitions can start from the same history;
* ledgers written as CSV files and loaded the way ``sigmasight load-portfolios`` does;
* in-process runs of a partition range as ONE run (``materialize_range``) or one run per day;
* sorted table snapshots for exact comparisons;
* the slow oracles: per-symbol statsmodels OLS and scikit-learn ridge on the *stored* prices.

Nothing here imports from the code under test beyond its public entry points.
"""

from __future__ import annotations

import csv
import sqlite3
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
from dagster import DagsterInstance

from sigmasight_assets import calendar
from sigmasight_assets.local_runs import materialize_range
from sigmasight_assets.defs.resources import MarketDataResource, WarehouseResource
from sigmasight_assets.ledger import parse_ledger
from sigmasight_assets.warehouse import Warehouse
from sigmasight_assets.warehouse.ledger import store_ledger

FACTOR_ETFS = ("SPY", "TLT", "VTV", "VUG", "MTUM", "QUAL", "IWM", "USMV")
STYLE_ETFS = {"value": "VTV", "growth": "VUG", "momentum": "MTUM", "quality": "QUAL", "size": "IWM",
              "low_volatility": "USMV"}
MARKET_ASSETS = ["symbol_universe", "prices", "symbol_returns", "daily_valuations"]
SYMBOL_ANALYTICS = ["symbol_betas", "ridge_factors", "spread_factors", "factor_model", "factor_covariance",
                    "symbol_metrics"]
SYMBOL_ASSETS = MARKET_ASSETS + SYMBOL_ANALYTICS
PORTFOLIO_ASSETS = ["portfolio_snapshots", "correlations", "aggregated_exposures", "stress_results"]

# Sort keys (the row grain) of every asset table, for order-independent exact comparisons.
TABLE_KEYS = {
    "symbol_universe": ["date", "symbol"],
    "prices": ["date", "symbol"],
    "daily_valuations": ["date", "symbol"],
    "symbol_returns": ["date", "symbol"],
    "symbol_status": ["date", "symbol", "asset"],
    "symbol_betas": ["date", "symbol", "factor"],
    "ridge_factors": ["date", "symbol", "factor"],
    "spread_factors": ["date", "symbol", "factor"],
    "factor_model": ["date", "symbol", "factor"],
    "replay_window_returns": ["date", "symbol", "scenario_id"],
    "factor_covariance": ["date", "factor_1", "factor_2"],
    "symbol_metrics": ["date", "symbol"],
    "portfolio_snapshots": ["date", "portfolio_id"],
    "correlations": ["date", "portfolio_id"],
    "aggregated_exposures": ["date", "portfolio_id", "factor"],
    "stress_results": ["date", "portfolio_id", "scenario_id"],
    "portfolio_risk": ["date", "portfolio_id"],
    "risk_contributions": ["date", "portfolio_id", "component"],
    "var_backtest": ["date", "portfolio_id"],
}
SYMBOL_TABLES = [*SYMBOL_ASSETS, "symbol_status"]

POSITION_COLUMNS = ["portfolio_id", "portfolio_name", "position_id", "symbol", "quantity", "entry_price",
                    "entry_date", "exit_date", "exit_price", "investment_class", "manual_value", "deleted"]
FLOW_COLUMNS = ["portfolio_id", "date", "amount", "description"]


def iso(day) -> str:
    return pd.Timestamp(day).date().isoformat()


# -- warehouses --------------------------------------------------------------------------------------
def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def new_warehouse(directory: Path, name: str = "warehouse") -> tuple[str, Warehouse]:
    """A fresh warehouse (every table created) in ``directory/<name>.sqlite``."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.sqlite"
    assert not path.exists(), f"{path} already exists: warehouses must be unique per test"
    url = sqlite_url(path)
    wh = Warehouse(url)
    wh.create_all()
    return url, wh


def copy_warehouse(src: Warehouse, directory: Path, name: str) -> tuple[str, Warehouse]:
    """A byte-for-byte copy of ``src`` (SQLite online backup, WAL content included)."""
    src_path = src.engine.url.database
    url, _ = new_warehouse(directory, name)
    dst_path = Path(url.removeprefix("sqlite:///"))
    with sqlite3.connect(src_path) as s, sqlite3.connect(dst_path) as d:
        s.backup(d)
    s.close()
    d.close()
    return url, Warehouse(url)


def clear_ledger(wh: Warehouse) -> None:
    with wh.engine.begin() as conn:
        for t in ("capital_flows", "positions", "portfolios"):
            conn.exec_driver_sql(f"DELETE FROM {t}")


# -- ledgers ---------------------------------------------------------------------------------------
def write_ledger_files(directory: Path, positions: Sequence[dict], flows: Sequence[dict] = ()) -> tuple[Path, Path]:
    """Write a positions and a capital-flows CSV in the documented ledger format."""
    directory.mkdir(parents=True, exist_ok=True)
    pos_path, flow_path = directory / "positions.csv", directory / "capital_flows.csv"
    with pos_path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=POSITION_COLUMNS)
        w.writeheader()
        for row in positions:
            w.writerow({k: "" if row.get(k) is None else row.get(k) for k in POSITION_COLUMNS})
    with flow_path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=FLOW_COLUMNS)
        w.writeheader()
        for row in flows:
            w.writerow({k: "" if row.get(k) is None else row.get(k) for k in FLOW_COLUMNS})
    return pos_path, flow_path


def load_ledger(wh: Warehouse, directory: Path, positions: Sequence[dict], flows: Sequence[dict] = ()):
    """Write the ledger CSVs, parse/validate them and store them (like ``load-portfolios``)."""
    pos_path, flow_path = write_ledger_files(directory, positions, flows)
    ledger = parse_ledger(pos_path, flow_path)
    store_ledger(wh, ledger)
    return ledger


# -- runs ------------------------------------------------------------------------------------------
def resources(url: str, spec: str = "synthetic", seed: int = 7) -> dict:
    return {"warehouse": WarehouseResource(url=url), "market_data": MarketDataResource(spec=spec, seed=seed)}


def run_range(url: str, start, end, selection: Sequence[str] | None = None, *, spec: str = "synthetic",
              seed: int = 7, run_config: dict | None = None, instance=None, raise_on_error: bool = True):
    """Materialise ``selection`` over [start, end] as ONE in-process run (a single-run backfill)."""
    return materialize_range(
        iso(start), iso(end),
        instance=instance if instance is not None else DagsterInstance.ephemeral(),
        selection=list(selection) if selection is not None else None,
        resources=resources(url, spec, seed),
        run_config=run_config,
        raise_on_error=raise_on_error,
    )


def run_each_day(url: str, days: Iterable, selection: Sequence[str] | None = None, **kwargs) -> list:
    """One run per partition, in the order given (nightly-style)."""
    results = []
    for d in days:
        res = run_range(url, d, d, selection, **kwargs)
        assert res.success, f"run for {iso(d)} failed"
        results.append(res)
    return results


def failed_checks(result) -> list[tuple[str, str]]:
    return sorted((e.asset_key.to_user_string(), e.check_name)
                  for e in result.get_asset_check_evaluations() if not e.passed)


def check_outcomes(result) -> dict[tuple[str, str], bool]:
    """(asset, check) → passed, for every check evaluated in the run."""
    return {(e.asset_key.to_user_string(), e.check_name): e.passed for e in result.get_asset_check_evaluations()}


def materializations(result, asset: str, node: str | None = None) -> list:
    """The AssetMaterializations of ``asset`` in ``result`` (``node``: the op, for multi-assets)."""
    return [m for m in result.asset_materializations_for_node(node or asset) if m.asset_key.to_user_string() == asset]


def metadata(result, asset: str, node: str | None = None) -> dict:
    """The metadata values of the (last) materialisation of ``asset`` in ``result``."""
    mats = materializations(result, asset, node)
    assert mats, f"no materialisation of {asset}"
    return {k: v.value for k, v in mats[-1].metadata.items()}


# -- tables ----------------------------------------------------------------------------------------
def table(wh: Warehouse, name: str, start=None, end=None) -> pd.DataFrame:
    return wh.read(name, start, end).sort_values(TABLE_KEYS[name], ignore_index=True)


def assert_tables_equal(a: Warehouse, b: Warehouse, names: Iterable[str], start=None, end=None,
                        check_exact: bool = True) -> None:
    for name in names:
        left, right = table(a, name, start, end), table(b, name, start, end)
        assert len(left) > 0, f"{name}: no rows to compare"
        pd.testing.assert_frame_equal(left, right, check_exact=check_exact, obj=name)


# -- stored returns and oracles ---------------------------------------------------------------------
def stored_returns(wh: Warehouse, symbols: Sequence[str], day, n_returns: int) -> pd.DataFrame:
    """Point-in-time total returns of the ``n_returns`` sessions ending at ``day``, from stored prices.

    Computed here independently of ``symbol_returns``: r = split × (close + dividend) / previous close
    − 1 on as-traded rows, close / previous close − 1 where both rows know no actions (adjusted
    basis); a missing price on either side, or rows on different bases, give a missing return.
    """
    sess = calendar.sessions_back(day, n_returns + 1)
    px = wh.read("prices", sess[0], sess[-1], keys=list(symbols),
                 columns=["date", "symbol", "close", "dividend", "split_ratio"])

    def wide(col):
        return px.pivot(index="date", columns="symbol", values=col).reindex(index=sess, columns=list(symbols))

    close, div, split = wide("close"), wide("dividend"), wide("split_ratio")
    known = div.notna() & split.notna()
    r = split.fillna(1.0) * (close + div.fillna(0.0)) / close.shift(1) - 1.0
    return r.where(known == known.shift(1, fill_value=False)).iloc[1:]


def ols_oracle(y: pd.Series, x: pd.Series, min_obs: int = 30) -> dict | None:
    """statsmodels OLS with intercept of y on x over complete cases (None below ``min_obs``)."""
    import statsmodels.api as sm

    ok = y.notna() & x.notna()
    if ok.sum() < min_obs:
        return None
    fit = sm.OLS(y[ok].to_numpy(), sm.add_constant(x[ok].to_numpy())).fit()
    return {"beta": fit.params[1], "intercept": fit.params[0], "r_squared": fit.rsquared,
            "std_error": fit.bse[1], "p_value": fit.pvalues[1], "observations": int(ok.sum())}


def ridge_oracle(y: pd.Series, x: pd.DataFrame, alpha: float = 1.0, min_obs: int = 30) -> dict | None:
    """StandardScaler + Ridge(alpha) on complete cases, coefficients mapped back (β = w / σ)."""
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    ok = y.notna() & x.notna().all(axis=1)
    if ok.sum() < min_obs:
        return None
    model = make_pipeline(StandardScaler(), Ridge(alpha=alpha))
    xv, yv = x[ok].to_numpy(), y[ok].to_numpy()
    model.fit(xv, yv)
    scaler, ridge = model.named_steps["standardscaler"], model.named_steps["ridge"]
    beta = ridge.coef_ / scaler.scale_
    return {"betas": dict(zip(x.columns, beta)), "r_squared": model.score(xv, yv), "observations": int(ok.sum())}


class module_env:
    """Context manager for module-scoped fixtures: the isolation of conftest's ``isolated_env``
    (which is function-scoped) — DAGSTER_HOME and the warehouse URL in ``directory``, result-changing
    settings unset."""

    VARS = ("SIGMASIGHT_START_DATE", "SIGMASIGHT_MARKET_DATA", "SIGMASIGHT_SYNTHETIC_SEED", "SIGMASIGHT_SCENARIOS_FILE")

    def __init__(self, directory: Path):
        import pytest

        self._mp = pytest.MonkeyPatch()
        self.directory = directory

    def __enter__(self):
        home = self.directory / "dagster_home"
        home.mkdir(parents=True, exist_ok=True)
        self._mp.setenv("DAGSTER_HOME", str(home))
        self._mp.setenv("SIGMASIGHT_DATABASE_URL", sqlite_url(self.directory / "default_unused.sqlite"))
        for var in self.VARS:
            self._mp.delenv(var, raising=False)
        return self

    def __exit__(self, *exc):
        self._mp.undo()
        return False
