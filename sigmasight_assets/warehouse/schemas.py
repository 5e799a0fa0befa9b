"""Pandera schemas for the frames each asset writes, and the one validated write path.

:func:`write_validated` / :func:`write_validated_many` validate every frame with its table's schema,
then replace the partitions (``Warehouse.replace_many``: delete-then-insert in one transaction). A
frame that fails its schema is a bug in our code or a provider returning garbage: the write fails
before anything is deleted, so the warehouse keeps the last good data.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from pandera.pandas import Check, Column, DataFrameSchema

from ..calc.factor_model import FACTOR_MODEL_MIN_OBSERVATIONS, FACTOR_NAMES
from .repository import Replacement

_date = Column("datetime64[ns]", nullable=False)
_key = Column(str, Check.str_length(1, 64), nullable=False)
_pos = Column(float, Check.gt(0), nullable=False)
_pos_opt = Column(float, Check.gt(0), nullable=True)
_flt = Column(float, nullable=True)

symbol_universe = DataFrameSchema(
    {
        "date": _date,
        "symbol": _key,
        "asset_class": Column(str, Check.isin(["PUBLIC", "OPTIONS", "PRIVATE"])),
        "status": Column(str, Check.isin(["active", "history", "factor", "private", "expired_option"])),
        "is_factor_etf": Column(bool),
        "fetch": Column(bool),
        "underlying": Column(object, nullable=True),
        "expiration": Column("datetime64[ns]", nullable=True),
        "position_count": Column(int, Check.ge(0)),
    },
    unique=["date", "symbol"],
    strict=True,
    name="symbol_universe",
)

# Prices are as traded; dividend (cash per share going ex that day, ≥ 0) and split_ratio (new shares
# per old, > 0) are both known or both NULL ("actions unknown": close is then an adjusted close).
_finite = Check(lambda s: np.isfinite(s), name="finite")
prices = DataFrameSchema(
    {
        "date": _date,
        "symbol": _key,
        "open": Column(float, [Check.gt(0), _finite], nullable=True),
        "high": Column(float, [Check.gt(0), _finite], nullable=True),
        "low": Column(float, [Check.gt(0), _finite], nullable=True),
        "close": Column(float, [Check.gt(0), _finite], nullable=False),
        "adj_close": Column(float, [Check.gt(0), _finite], nullable=False),
        "volume": Column(float, [Check.ge(0), _finite], nullable=True),
        "dividend": Column(float, [Check.ge(0), _finite], nullable=True),
        "split_ratio": Column(float, [Check.gt(0), _finite], nullable=True),
        "source": Column(str),
    },
    checks=[
        Check(lambda df: (df["high"].isna() | df["low"].isna() | (df["high"] >= df["low"])), name="high_ge_low"),
        Check(lambda df: df["dividend"].isna() == df["split_ratio"].isna(), name="actions_both_or_neither"),
    ],
    unique=["date", "symbol"],
    strict=True,
    name="prices",
)

daily_valuations = DataFrameSchema(
    {
        "date": _date,
        "symbol": _key,
        "pe": _flt,
        "forward_pe": _flt,
        "provider_beta": _flt,
        "week52_high": _pos_opt,
        "week52_low": _pos_opt,
        "market_cap": Column(float, Check.ge(0), nullable=True),
        "dividend_yield": Column(float, Check.in_range(0, 1), nullable=True),
        "source": Column(str),
    },
    unique=["date", "symbol"],
    strict=True,
    name="daily_valuations",
)

# One row per symbol-day with a price; the return and its basis are both known or both NULL, and a
# total return never reaches −100 % (closes are positive).
symbol_returns = DataFrameSchema(
    {
        "date": _date,
        "symbol": _key,
        "total_return": Column(float, [Check.gt(-1.0), _finite], nullable=True),
        "return_basis": Column(object, Check.isin(["total", "adjusted"]), nullable=True),
        "dividend": Column(float, [Check.ge(0), _finite], nullable=True),
        "split_ratio": Column(float, [Check.gt(0), _finite], nullable=True),
    },
    checks=[
        Check(lambda df: df["total_return"].isna() == df["return_basis"].isna(), name="basis_with_return"),
        Check(lambda df: df["dividend"].isna() == df["split_ratio"].isna(), name="actions_both_or_neither"),
    ],
    unique=["date", "symbol"],
    strict=True,
    name="symbol_returns",
)

symbol_status = DataFrameSchema(
    {
        "date": _date,
        "symbol": _key,
        "asset": Column(str),
        "status": Column(str, Check.isin(["ok", "failed", "skipped"])),
        "reason": Column(object, nullable=True),
    },
    unique=["date", "symbol", "asset"],
    strict=True,
    name="symbol_status",
)



def _from_table(table, unique: list[str], column_checks: dict | None = None, checks: list | None = None) -> DataFrameSchema:
    """A schema mirroring a warehouse table: dtypes and nullability from the SQLAlchemy columns."""
    from sqlalchemy.types import Boolean, Date, Float, Integer

    column_checks = column_checks or {}
    cols = {}
    for c in table.columns:
        t = c.type
        if isinstance(t, Date):
            dtype = "datetime64[ns]"
        elif isinstance(t, Float):
            dtype = float
        elif isinstance(t, (Integer, Boolean)):
            dtype = None  # ints may arrive as float when a column has NaN; checked by value below
        else:
            dtype = object
        cols[c.name] = Column(dtype, column_checks.get(c.name, []), nullable=c.nullable, coerce=False)
    return DataFrameSchema(cols, unique=unique, strict=True, checks=checks or [], name=table.name)


def _regression(table):
    return _from_table(
        table,
        ["date", "symbol", "factor"],
        {
            "beta": [Check.in_range(-5.0, 5.0)],
            "r_squared": [Check.in_range(-1e-9, 1 + 1e-9)],
            "observations": [Check.ge(0)],
        },
    )


def _build():
    from . import schema as t

    return {
        "symbol_betas": _regression(t.symbol_betas),
        "ridge_factors": _regression(t.ridge_factors),
        "spread_factors": _regression(t.spread_factors),
        "factor_model": _from_table(
            t.factor_model, ["date", "symbol", "factor"],
            {
                "factor": [Check.isin(list(FACTOR_NAMES))],
                "beta": [_finite],
                "specific_variance": [Check.ge(0), _finite],
                "r_squared": [Check.in_range(-1e-9, 1 + 1e-9)],
                "observations": [Check.ge(FACTOR_MODEL_MIN_OBSERVATIONS)],
            },
        ),
        "replay_window_returns": _from_table(
            t.replay_window_returns, ["date", "symbol", "scenario_id"],
            {"window_return": [Check.gt(-1.0 - 1e-12), _finite], "sessions": [Check.ge(1)]},
            checks=[Check(lambda df: (df["window_start"] < df["date"]).all(), name="start_before_end")],
        ),
        "factor_covariance": _from_table(
            t.factor_covariance, ["date", "factor_1", "factor_2"],
            {"correlation": [Check.in_range(-1 - 1e-12, 1 + 1e-12)], "observations": [Check.ge(30)]},
        ),
        "symbol_metrics": _from_table(
            t.symbol_metrics, ["date", "symbol"],
            {"volatility_21d": [Check.ge(0)], "volatility_63d": [Check.ge(0)], "close": [Check.gt(0)]},
        ),
        "portfolio_snapshots": _from_table(
            t.portfolio_snapshots, ["date", "portfolio_id"],
            {"gross_exposure": [Check.ge(0)], "long_exposure": [Check.ge(0)], "short_exposure": [Check.le(0)],
             "position_count": [Check.ge(0)], "unpriced_count": [Check.ge(0)]},
        ),
        "correlations": _from_table(
            t.correlations, ["date", "portfolio_id"],
            {"avg_correlation": [Check.in_range(-1 - 1e-9, 1 + 1e-9)], "n_symbols": [Check.ge(0)]},
        ),
        "aggregated_exposures": _from_table(
            t.aggregated_exposures, ["date", "portfolio_id", "factor"],
            {"coverage": [Check.in_range(0.0, 1.0 + 1e-9)]},
        ),
        # With its scenario attributes (stored in stress_scenarios): the frame the stress step writes.
        "stress_results": _from_table(
            t.READABLE["stress_results"], ["date", "portfolio_id", "scenario_id"],
            {"coverage": [Check.in_range(0.0, 1.0 + 1e-9)], "replayed_share": [Check.in_range(0.0, 1.0 + 1e-9)],
             "positions_covered": [Check.ge(0)], "positions_missing_beta": [Check.ge(0)]},
        ),
        "portfolio_risk": _from_table(
            t.portfolio_risk, ["date", "portfolio_id"],
            {**{c.name: [Check.ge(0)] for c in t.portfolio_risk.columns
                if c.name.startswith(("volatility", "factor_volatility", "specific_volatility", "tracking_error",
                                      "positions_", "hist_"))},
             "factor_share": [Check.in_range(-1e-9, 1 + 1e-9)], "coverage": [Check.in_range(0.0, 1.0 + 1e-9)]},
        ),
        "risk_contributions": _from_table(
            t.risk_contributions, ["date", "portfolio_id", "component"],
            {"component_type": [Check.isin(["factor", "specific", "position"])],
             "contribution": [_finite], "share": [_finite]},
        ),
        "var_backtest": _from_table(
            t.var_backtest, ["date", "portfolio_id"],
            {"observations": [Check.ge(0)], "exceptions": [Check.ge(0)],
             "kupiec_p_value": [Check.in_range(0.0, 1.0)], "christoffersen_p_value": [Check.in_range(0.0, 1.0)],
             "traffic_light": [Check.isin(["green", "yellow", "red"])]},
        ),
    }


ANALYTICS = _build()
symbol_betas = ANALYTICS["symbol_betas"]
ridge_factors = ANALYTICS["ridge_factors"]
spread_factors = ANALYTICS["spread_factors"]
factor_model = ANALYTICS["factor_model"]
replay_window_returns = ANALYTICS["replay_window_returns"]
factor_covariance = ANALYTICS["factor_covariance"]
symbol_metrics = ANALYTICS["symbol_metrics"]
portfolio_snapshots = ANALYTICS["portfolio_snapshots"]
correlations = ANALYTICS["correlations"]
aggregated_exposures = ANALYTICS["aggregated_exposures"]
stress_results = ANALYTICS["stress_results"]
portfolio_risk = ANALYTICS["portfolio_risk"]
risk_contributions = ANALYTICS["risk_contributions"]
var_backtest = ANALYTICS["var_backtest"]


def validate(table_name: str, frame):
    """Validate ``frame`` against the schema of ``table_name`` (raises ``pandera.errors.SchemaError``)."""
    return SCHEMAS[table_name].validate(frame)


def write_validated(wh, table_name: str, frame, start, end, **kwargs) -> int:
    """Validate ``frame`` with the table's schema, then replace the partitions atomically
    (``Warehouse.replace_many`` of one table). A frame that fails validation raises before anything is
    deleted, so the warehouse keeps the last good data."""
    return write_validated_many(wh, [Replacement(table_name, frame, start, end, **kwargs)])[0]


def write_validated_many(wh, items) -> list[int]:
    """:func:`write_validated` for several tables in one transaction (``Warehouse.replace_many``):
    every frame is validated first, then all are stored or none."""
    items = [replace(it, frame=validate(it.table, it.frame)) if it.table in SCHEMAS else it for it in items]
    return wh.replace_many(items)


SCHEMAS = {
    "symbol_universe": symbol_universe,
    "prices": prices,
    "daily_valuations": daily_valuations,
    "symbol_returns": symbol_returns,
    "symbol_status": symbol_status,
    **ANALYTICS,
}
