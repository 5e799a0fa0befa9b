"""Pandera schemas for the frames each asset writes (validated before every warehouse write).

A frame that fails its schema is a bug in our code or a provider returning garbage: the run fails
before anything is written, so the warehouse keeps the last good data.
"""

from __future__ import annotations

import pandera.pandas as pa
from pandera.pandas import Check, Column, DataFrameSchema

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

prices = DataFrameSchema(
    {
        "date": _date,
        "symbol": _key,
        "open": _pos_opt,
        "high": _pos_opt,
        "low": _pos_opt,
        "close": _pos,
        "adj_close": _pos,
        "volume": Column(float, Check.ge(0), nullable=True),
        "source": Column(str),
    },
    checks=[Check(lambda df: (df["high"].isna() | df["low"].isna() | (df["high"] >= df["low"])), name="high_ge_low")],
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

__all__ = ["pa", "symbol_universe", "prices", "daily_valuations", "symbol_status"]
