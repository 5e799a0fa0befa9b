"""Warehouse tables (SQLAlchemy Core). One table per asset, named after it.

Contract: every asset table has a ``date`` column holding the partition's trading day and ``symbol``
or ``portfolio_id`` as its key, with indexes on (date, key) and (key, date). Factor tables are long:
one row per key, day and ``factor``.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()


def _asset_table(name: str, key: str, *columns: Column, extra_key: str | None = None) -> Table:
    """A partitioned asset table with the standard (date, key) and (key, date) indexes."""
    table = Table(
        name,
        metadata,
        Column("date", Date, nullable=False),
        Column(key, String(64), nullable=False),
        *columns,
    )
    idx_cols = ["date", key] + ([extra_key] if extra_key else [])
    Index(f"ix_{name}_date_key", *[table.c[c] for c in idx_cols], unique=True)
    Index(f"ix_{name}_key_date", table.c[key], table.c["date"])
    return table


# --- inputs: the portfolio ledger -----------------------------------------------------------------
portfolios = Table(
    "portfolios",
    metadata,
    Column("portfolio_id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("currency", String(8), nullable=False, default="USD"),
    Column("source_file", Text),
    Column("loaded_at", DateTime(timezone=False), nullable=False),
)

positions = Table(
    "positions",
    metadata,
    Column("portfolio_id", String(64), primary_key=True),
    Column("position_id", String(64), primary_key=True),
    Column("symbol", String(64), nullable=False),
    Column("investment_class", String(16), nullable=False),
    Column("quantity", Float, nullable=False),
    Column("entry_price", Float, nullable=False),
    Column("entry_date", Date, nullable=False),
    Column("exit_date", Date),
    Column("exit_price", Float),
    Column("underlying", String(32)),
    Column("option_type", String(1)),
    Column("strike", Float),
    Column("expiration", Date),
    Column("manual_value", Float),
    Column("deleted", Boolean, nullable=False, default=False),
)
Index("ix_positions_symbol", positions.c.symbol)

capital_flows = Table(
    "capital_flows",
    metadata,
    Column("portfolio_id", String(64), primary_key=True),
    Column("flow_id", String(64), primary_key=True),
    Column("date", Date, nullable=False),
    Column("amount", Float, nullable=False),
    Column("description", Text),
)
Index("ix_capital_flows_portfolio_date", capital_flows.c.portfolio_id, capital_flows.c.date)

# --- market data assets ---------------------------------------------------------------------------
symbol_universe = _asset_table(
    "symbol_universe",
    "symbol",
    Column("asset_class", String(16), nullable=False),  # PUBLIC | OPTIONS | PRIVATE
    Column("status", String(32), nullable=False),  # active | history | factor | private | expired_option
    Column("is_factor_etf", Boolean, nullable=False),
    Column("fetch", Boolean, nullable=False),  # goes to a market data provider
    Column("underlying", String(32)),
    Column("expiration", Date),
    Column("position_count", Integer, nullable=False),  # positions holding it that day
)

prices = _asset_table(
    "prices",
    "symbol",
    Column("open", Float),
    Column("high", Float),
    Column("low", Float),
    Column("close", Float, nullable=False),
    Column("adj_close", Float, nullable=False),
    Column("volume", Float),
    Column("source", String(32), nullable=False),
)

daily_valuations = _asset_table(
    "daily_valuations",
    "symbol",
    Column("pe", Float),
    Column("forward_pe", Float),
    Column("provider_beta", Float),
    Column("week52_high", Float),
    Column("week52_low", Float),
    Column("market_cap", Float),
    Column("dividend_yield", Float),
    Column("source", String(32), nullable=False),
)

# Per-symbol outcome of each asset's computation: why a symbol has no row on a day.
symbol_status = _asset_table(
    "symbol_status",
    "symbol",
    Column("asset", String(64), nullable=False),
    Column("status", String(16), nullable=False),  # ok | failed | skipped
    Column("reason", Text),
    extra_key="asset",
)


# --- symbol analytics -----------------------------------------------------------------------------
def _regression_columns() -> list[Column]:
    return [
        Column("beta", Float),  # capped to ±5
        Column("raw_beta", Float),
        Column("capped", Boolean),
        Column("alpha", Float),  # OLS intercept (daily return) or, for ridge, the penalty
        Column("r_squared", Float),
        Column("std_error", Float),
        Column("p_value", Float),
        Column("observations", Integer),
    ]


symbol_betas = _asset_table(
    "symbol_betas",
    "symbol",
    Column("factor", String(32), nullable=False),  # market | ir | provider
    *_regression_columns(),
    extra_key="factor",
)

ridge_factors = _asset_table(
    "ridge_factors",
    "symbol",
    Column("factor", String(32), nullable=False),  # value | growth | momentum | quality | size | low_volatility
    *_regression_columns(),
    extra_key="factor",
)

spread_factors = _asset_table(
    "spread_factors",
    "symbol",
    Column("factor", String(32), nullable=False),  # growth_value | momentum_spread | size_spread | quality_spread
    *_regression_columns(),
    extra_key="factor",
)

factor_covariance = _asset_table(
    "factor_covariance",
    "factor_1",
    Column("factor_2", String(16), nullable=False),
    Column("covariance", Float, nullable=False),  # daily return units squared
    Column("correlation", Float, nullable=False),
    Column("observations", Integer, nullable=False),
    extra_key="factor_2",
)

symbol_metrics = _asset_table(
    "symbol_metrics",
    "symbol",
    Column("close", Float),
    Column("adj_close", Float),
    Column("return_1d", Float),
    Column("return_mtd", Float),
    Column("return_ytd", Float),
    Column("return_1m", Float),
    Column("return_3m", Float),
    Column("return_1y", Float),
    Column("volatility_21d", Float),
    Column("volatility_63d", Float),
    Column("pe", Float),
    Column("forward_pe", Float),
    Column("market_cap", Float),
    Column("dividend_yield", Float),
    Column("week52_high", Float),
    Column("week52_low", Float),
    *[Column(f"beta_{f}", Float) for f in (
        "market", "ir", "provider", "value", "growth", "momentum", "quality", "size", "low_volatility",
        "growth_value", "momentum_spread", "size_spread", "quality_spread")],
)

# --- portfolio analytics --------------------------------------------------------------------------
portfolio_snapshots = _asset_table(
    "portfolio_snapshots",
    "portfolio_id",
    *[Column(c, Float) for c in ("equity", "cash", "long_exposure", "short_exposure", "gross_exposure",
                                 "net_exposure", "daily_pnl", "daily_return", "cumulative_pnl", "cumulative_flows")],
    *[Column(c, Integer, nullable=False) for c in ("position_count", "long_count", "short_count",
                                                   "unpriced_count", "stale_count")],
    Column("is_partial", Boolean, nullable=False),
    Column("has_stale", Boolean, nullable=False),
    *[Column(c, Float) for c in ("hhi", "effective_positions", "top3_weight", "top10_weight",
                                 "volatility_21d", "volatility_63d")],
)

correlations = _asset_table(
    "correlations",
    "portfolio_id",
    Column("symbols", Text, nullable=False),  # JSON list, the matrix's order
    Column("matrix", Text, nullable=False),  # JSON strict upper triangle, row by row, null = too little overlap
    Column("n_symbols", Integer, nullable=False),
    Column("n_pairs", Integer, nullable=False),
    Column("n_pairs_insufficient", Integer, nullable=False),
    Column("avg_correlation", Float),
    Column("effective_positions", Float),
    Column("psd_repaired", Boolean, nullable=False),
    Column("min_eigenvalue", Float),
)

aggregated_exposures = _asset_table(
    "aggregated_exposures",
    "portfolio_id",
    Column("factor", String(32), nullable=False),
    Column("exposure_dollar", Float),
    Column("exposure_value", Float),
    Column("coverage", Float),
    Column("positions_with_beta", Integer, nullable=False),
    Column("positions_missing_beta", Integer, nullable=False),
    extra_key="factor",
)

stress_results = _asset_table(
    "stress_results",
    "portfolio_id",
    Column("scenario_id", String(64), nullable=False),
    Column("scenario_name", String(200), nullable=False),
    Column("category", String(32), nullable=False),
    Column("severity", String(32), nullable=False),
    Column("direct_pnl", Float),
    Column("correlated_pnl", Float),
    Column("correlation_effect", Float),
    Column("direct_pct_equity", Float),
    Column("correlated_pct_equity", Float),
    Column("positions_covered", Integer, nullable=False),
    Column("positions_missing_beta", Integer, nullable=False),
    Column("top_contributors", Text),  # JSON list of {position_id, symbol, pnl}
    extra_key="scenario_id",
)

# --- operations -----------------------------------------------------------------------------------
# One row per problem run: a failed run (``kind = failure``, written by ``run_failure_sensor``) or a
# run still going past the configured maximum runtime (``kind = max_runtime``). Not an asset table.
run_failures = Table(
    "run_failures",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("kind", String(16), primary_key=True),  # failure | max_runtime
    Column("job_name", String(200), nullable=False),
    Column("partition_range", String(64)),  # "2025-01-02" or "2025-01-02...2025-03-31"
    Column("step_keys", Text),  # comma-separated failed steps
    Column("error", Text),
    Column("trigger", String(64)),  # schedule / sensor that launched it, if any
    Column("runtime_minutes", Float),
    Column("occurred_at", DateTime(timezone=False), nullable=False),  # UTC
    Column("recorded_at", DateTime(timezone=False), nullable=False),  # UTC
)
Index("ix_run_failures_occurred_at", run_failures.c.occurred_at)

TABLES = {t.name: t for t in metadata.sorted_tables}
