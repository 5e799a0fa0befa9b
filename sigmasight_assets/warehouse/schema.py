"""Warehouse tables (SQLAlchemy Core). One table per asset, named after it.

Contract: every asset table has a ``date`` column holding the partition's trading day and ``symbol``
or ``portfolio_id`` as its key; its primary key is (date, key[, factor/scenario…]) and, except on the
largest portfolio tables, a secondary index serves (key, date). Factor tables are long: one row per
key, day and ``factor``.

Attributes that would repeat on every row are stored once in a lookup table (:data:`LOOKUPS`:
``stress_scenarios`` beside ``stress_results``); :func:`readable_columns` gives the columns a reader
sees (the table's plus the lookup's), which ``Warehouse.read`` returns and the SQL view
``<table>_view`` presents (``views.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    text,
)

metadata = MetaData()


def _asset_table(name: str, key: str, *columns: Column, extra_key: str | None = None, key_index: bool = True,
                 clustered: bool = True) -> Table:
    """A partitioned asset table: primary key (date, key[, extra_key]) and, with ``key_index``, a
    secondary index on (key, date).

    ``clustered``: on SQLite the rows are stored in the primary key's b-tree (``WITHOUT ROWID``): no
    rowid and no separate (date, key) index, and a day's rows are appended side by side. Tables of
    rows larger than ~1/4 page (``correlations``) stay rowid tables: a ``WITHOUT ROWID`` row spills
    past ~1 KB into overflow pages. PostgreSQL always stores a heap plus the primary key index.
    ``key_index=False`` for the large portfolio tables read one portfolio at a time: a reader finds
    the portfolio's latest day in ``portfolio_snapshots`` (which keeps its (key, date) index), then
    reads the day through the primary key.
    """
    pk = ["date", key] + ([extra_key] if extra_key else [])
    table = Table(
        name,
        metadata,
        Column("date", Date, nullable=False),
        Column(key, String(64), nullable=False),
        *columns,
        PrimaryKeyConstraint(*pk, name=f"pk_{name}"),
        sqlite_with_rowid=not clustered,
    )
    if key_index:
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

# Dated values of PRIVATE positions (``load-portfolios --marks``); the value on D is the last mark on
# or before D, the entry cost before the first one.
private_marks = Table(
    "private_marks",
    metadata,
    Column("portfolio_id", String(64), primary_key=True),
    Column("position_id", String(64), primary_key=True),
    Column("date", Date, primary_key=True),
    Column("value", Float, nullable=False),  # total USD value of the position, sign as given
    Column("source_file", Text),
)

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
    Column("dividend", Float),  # NULL together with split_ratio: actions unknown (adjusted close)
    Column("split_ratio", Float),
    Column("source", String(32), nullable=False),
)
# The rare rows with a corporate action, read by the snapshots for every holding period: a partial
# index that covers that query (the planners prefer it to the (date, symbol) index only when it
# covers), so a night reads the few action rows, not years of prices. Same text on both backends.
ACTIONS_WHERE = "dividend > 0 OR split_ratio <> 1"
Index("ix_prices_actions", prices.c.date, prices.c.symbol, prices.c.dividend, prices.c.split_ratio,
      sqlite_where=text(ACTIONS_WHERE), postgresql_where=text(ACTIONS_WHERE))

# Point-in-time total return of each symbol-day with a price (DESIGN §5 Returns): a pure function of
# the prices rows of the day and the previous session, so a later split or dividend never changes it.
symbol_returns = _asset_table(
    "symbol_returns",
    "symbol",
    Column("total_return", Float),  # NULL: no price on the previous session, or bases differ
    Column("return_basis", String(16)),  # total | adjusted; NULL with total_return
    Column("dividend", Float),  # the action applied on the day (NULL: actions unknown)
    Column("split_ratio", Float),
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
def _regression_columns(fit_parameter: str) -> list[Column]:
    """Columns of a factor-beta table; ``fit_parameter`` is ``intercept`` (OLS: the fitted daily
    intercept) or ``ridge_penalty`` (ridge: the penalty the fit used)."""
    return [
        Column("beta", Float),  # capped to ±5
        Column("raw_beta", Float),
        Column("capped", Boolean),
        Column(fit_parameter, Float),
        Column("r_squared", Float),
        Column("std_error", Float),
        Column("p_value", Float),
        Column("observations", Integer),
    ]


symbol_betas = _asset_table(
    "symbol_betas",
    "symbol",
    Column("factor", String(32), nullable=False),  # market | ir | provider
    *_regression_columns("intercept"),
    extra_key="factor",
)

ridge_factors = _asset_table(
    "ridge_factors",
    "symbol",
    Column("factor", String(32), nullable=False),  # value | growth | momentum | quality | size | low_volatility
    *_regression_columns("ridge_penalty"),
    extra_key="factor",
)

spread_factors = _asset_table(
    "spread_factors",
    "symbol",
    Column("factor", String(32), nullable=False),  # growth_value | momentum_spread | size_spread | quality_spread
    *_regression_columns("intercept"),
    extra_key="factor",
)

# The joint factor model (DESIGN §5): 8 uncapped loadings per symbol-day, the symbol-day's
# statistics repeated on each of its factor rows.
factor_model = _asset_table(
    "factor_model",
    "symbol",
    Column("factor", String(32), nullable=False),  # market | rates | value_excess | ... | low_volatility_excess
    Column("beta", Float, nullable=False,
           comment="Joint loading: decimal return per unit factor return, not capped (the ridge bounds it)."),
    Column("specific_variance", Float, nullable=False),
    Column("r_squared", Float, nullable=False),
    Column("observations", Integer, nullable=False),
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

# Historical replay windows (DESIGN §5): partition = the window's last day; one row per replay scenario
# ending that day and symbol with a complete window. Computed once, read by stress_results.
replay_window_returns = _asset_table(
    "replay_window_returns",
    "symbol",
    Column("scenario_id", String(64), nullable=False),
    Column("window_start", Date, nullable=False),
    Column("window_return", Float, nullable=False),
    Column("sessions", Integer, nullable=False),
    extra_key="scenario_id",
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
                                 "net_exposure", "daily_pnl", "daily_return", "cumulative_pnl", "cumulative_flows",
                                 "dividends")],
    *[Column(c, Integer, nullable=False) for c in ("position_count", "long_count", "short_count",
                                                   "unpriced_count", "stale_count")],
    Column("is_partial", Boolean, nullable=False),
    Column("has_stale", Boolean, nullable=False),
    *[Column(c, Float) for c in ("hhi", "effective_positions_hhi", "top3_weight", "top10_weight",
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
    Column("effective_positions_corr", Float),
    Column("psd_repaired", Boolean, nullable=False),
    Column("min_eigenvalue", Float),
    clustered=False,
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
    key_index=False,
)

stress_results = _asset_table(
    "stress_results",
    "portfolio_id",
    Column("scenario_id", String(64), nullable=False),
    Column("direct_pnl", Float),
    Column("correlated_pnl", Float),
    Column("correlation_effect", Float),
    Column("direct_pct_equity", Float),
    Column("correlated_pct_equity", Float),
    Column("positions_covered", Integer, nullable=False),
    Column("positions_missing_beta", Integer, nullable=False),
    Column("top_contributors", Text),  # JSON list of [position_id, symbol, pnl]
    Column("coverage", Float, comment="Share of the in-scope gross value priced by the scenario (joint loadings, or "
                                      "for a replay its own window or the factor proxy); NULL when not replayable."),
    Column("replayed_share", Float, comment="Replays only: share of the in-scope gross value replayed from its own "
                                            "compounded window return (the rest of the covered value is proxied)."),
    extra_key="scenario_id",
    key_index=False,
)

# A stress scenario's attributes, stored once instead of on each of its stress_results rows (the
# latest definition written wins). Add an attribute here: readers see it on every stress row.
stress_scenarios = Table(
    "stress_scenarios",
    metadata,
    Column("scenario_id", String(64), primary_key=True),
    Column("scenario_name", String(200), nullable=False),
    Column("category", String(32), nullable=False),
    Column("severity", String(32), nullable=False),
)


@dataclass(frozen=True)
class Lookup:
    """Columns of ``table`` stored once per ``key`` (its primary key) instead of on every row."""

    table: Table
    key: str

    @property
    def columns(self) -> list[Column]:
        return [c for c in self.table.columns if c.name != self.key]


#: Asset table → its lookup: writers hand the asset's frame with the lookup's columns; the repository
#: upserts them into the lookup table and stores the rest; reads join them back.
LOOKUPS: dict[str, Lookup] = {"stress_results": Lookup(stress_scenarios, "scenario_id")}

# Ex-ante risk (issue 18; calc/risk.py, calc/var.py). One row per portfolio-day.
_VAR_COLUMNS = [f"{m}_{c}_{kind}{pct}" for pct in ("", "_pct_equity") for kind in ("parametric", "historical")
                for c in ("95", "99") for m in ("var", "es")]


def _var_doc(name: str) -> str:
    measure, level, kind = name.split("_")[:3]
    what = ("Value at risk: the 1-day loss exceeded with probability " if measure == "var"
            else "Expected shortfall: the mean 1-day loss beyond the VaR at ")
    how = "normal with the ex-ante σ" if kind == "parametric" else "today's holdings on the last 250 days' returns"
    unit = "fraction of equity" if name.endswith("_pct_equity") else "USD, positive = loss"
    return f"{what}{100 - int(level)} % ({level} %), {how} ({unit})."


portfolio_risk = _asset_table(
    "portfolio_risk",
    "portfolio_id",
    *[Column(c, Float) for c in (
        "equity", "volatility_daily", "factor_volatility_daily", "specific_volatility_daily", "volatility_annual",
        "volatility_daily_pct_equity", "volatility_annual_pct_equity", "factor_share", "beta_spy",
        "tracking_error_daily", "tracking_error_annual_pct_equity")],
    *[Column(c, Integer, nullable=False) for c in (
        "positions_covered", "positions_options", "positions_private", "positions_unpriced", "positions_no_loadings")],
    Column("coverage", Float, comment="Share of priced public and option gross value with a factor model."),
    *[Column(c, Float, comment=_var_doc(c)) for c in _VAR_COLUMNS],
    Column("hist_observations", Integer, nullable=False),
    Column("hist_proxied_returns", Integer, nullable=False),
    Column("hypothetical_pnl", Float),
    Column("positions_missing_return", Integer, nullable=False),
    Column("positions_proxied_return", Integer, nullable=False),
)

# The VaR backtest reads 250 days of these two columns for every portfolio each run: a covering index
# serves that read without scanning the wide rows (~8× fewer bytes).
Index("ix_portfolio_risk_backtest", portfolio_risk.c.date, portfolio_risk.c.portfolio_id,
      portfolio_risk.c.var_99_parametric, portfolio_risk.c.hypothetical_pnl)

# Long: 8 factor rows, 1 specific row and 1 row of the largest positions (JSON) per portfolio-day.
risk_contributions = _asset_table(
    "risk_contributions",
    "portfolio_id",
    Column("component_type", String(16), nullable=False),  # factor | specific | position
    Column("component", String(64), nullable=False),  # factor name | specific | top_positions
    Column("contribution", Float, nullable=False),
    Column("share", Float, nullable=False),
    Column("positions", Text),  # JSON list on the position row only
    extra_key="component",
)

var_backtest = _asset_table(
    "var_backtest",
    "portfolio_id",
    Column("var_99_previous", Float),
    Column("hypothetical_pnl", Float),
    Column("exception", Boolean),
    Column("observations", Integer, nullable=False, comment="Observed (VaR, P&L) days in the trailing 250 sessions."),
    Column("exceptions", Integer, nullable=False),
    Column("kupiec_lr", Float),
    Column("kupiec_p_value", Float),
    Column("christoffersen_lr", Float),
    Column("christoffersen_p_value", Float),
    Column("traffic_light", String(8)),  # green | yellow | red | NULL (fewer than 250 observations)
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

# The warehouse's schema version: one row per version the warehouse was created at or upgraded to
# (``warehouse/versions.py``); the current version is the largest. Not an asset table.
schema_version = Table(
    "schema_version",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("applied_at", DateTime(timezone=False), nullable=False),  # UTC
    Column("description", Text, nullable=False),
)


# Column descriptions, shown in the Dagster UI's column schema (``comment`` on each column).
COLUMN_DOCS = {
    "date": "Trading day (NYSE session) the row belongs to: the partition key.",
    "symbol": "Ticker, OCC option symbol or private asset id.",
    "portfolio_id": "Portfolio id from the ledger.",
    "factor": "Factor name (market, ir, provider, value, growth, momentum, quality, size, low_volatility, "
              "growth_value, momentum_spread, size_spread, quality_spread; factor_model: market, rates, "
              "value_excess, growth_excess, momentum_excess, quality_excess, size_excess, low_volatility_excess).",
    "asset_class": "PUBLIC, OPTIONS or PRIVATE.",
    "status": "Row status; see the asset description for its values.",
    "is_factor_etf": "One of the 8 factor ETFs (SPY TLT VTV VUG MTUM QUAL IWM USMV).",
    "fetch": "Sent to the market data provider (false for private assets and expired options).",
    "position_count": "Positions holding the symbol that day.",
    "open": "Opening price (USD).", "high": "High (USD).", "low": "Low (USD).",
    "close": "Closing price (USD) as traded that day, never adjusted for a later split or dividend; when "
             "dividend and split_ratio are NULL the provider knew only an adjusted close, and this is it.",
    "adj_close": "Convenience: the provider's split- and dividend-adjusted close as of its own reference "
                 "date (USD); returns come from close, dividend and split_ratio, never from this column.",
    "volume": "Shares traded that day.",
    "dividend": "Cash dividend per share going ex this day (USD; per post-split share on a split day), 0 "
                "when none; NULL (with split_ratio) when the provider knows no corporate actions: close is "
                "then an adjusted close and returns are on the adjusted basis.",
    "split_ratio": "New shares per old share of a split effective this day (4 for 4:1, 0.1 for 1:10), 1 when "
                   "none; NULL (with dividend) when the provider knows no corporate actions. Total return "
                   "r_D = split_ratio_D × (close_D + dividend_D) / close_(D−1) − 1.",
    "total_return": "Point-in-time simple daily total return (decimal): split_ratio × (close + dividend) / "
                    "previous session's close − 1; a dividend on a split day is per post-split share. NULL when "
                    "either close is missing (never 0, never across a gap) or the two rows are on different bases.",
    "return_basis": "'total' (as-traded closes with corporate actions) or 'adjusted' (the provider knew only an "
                    "adjusted close: the return of that series); NULL when total_return is NULL.",
    "source": "Provider that delivered the row (synthetic, yfinance, csv).",
    "pe": "Trailing price/earnings.", "forward_pe": "Forward price/earnings.",
    "provider_beta": "Beta published by the data provider.",
    "week52_high": "52-week high (USD): provider's, else max over 252 stored sessions (≥ 200 obs).",
    "week52_low": "52-week low (USD): provider's, else min over 252 stored sessions (≥ 200 obs).",
    "market_cap": "Market capitalisation (USD).", "dividend_yield": "Dividend yield (decimal, 0.02 = 2 %).",
    "beta": "Exposure, capped to ±5.", "raw_beta": "Exposure before the cap.", "capped": "The cap applied.",
    "intercept": "Fitted daily intercept α of r = α + β·x (decimal return per day; OLS, unconstrained fit).",
    "ridge_penalty": "Ridge penalty α on the standardised scale that the fit used (not an intercept).",
    "r_squared": "Model r² on the window.", "std_error": "Standard error of the slope (OLS).",
    "p_value": "Two-sided p-value of the slope (OLS, t with n−2 dof).",
    "observations": "Complete cases in the window.",
    "specific_variance": "factor_model: residual variance of the joint regression, SSR / (n − 9) (daily decimal "
                         "return squared).",
    "factor_1": "First ETF of the pair.", "factor_2": "Second ETF of the pair.",
    "covariance": "EWMA covariance of daily simple returns.", "correlation": "EWMA correlation, clipped ±0.95.",
    "equity": "Cash + market value of the active positions (USD); NULL when some active position is unpriced "
              "(is_partial), never cash + the priced part.",
    "cash": "Flows − entry costs + exit proceeds + dividends received − dividends paid on shorts (USD).",
    "dividends": "Dividends of the day (USD): credited to longs, debited from shorts held at the previous close "
                 "(quantity × dividend per share on the ex-date).",
    "value": "Total USD value of the private position on the mark's date.",
    "long_exposure": "Σ MV > 0 (USD).", "short_exposure": "Σ MV < 0 (USD, negative).",
    "gross_exposure": "Σ |MV| (USD).", "net_exposure": "Σ MV (USD).",
    "daily_pnl": "Equity change vs the previous session less the day's flows (USD); NaN when partial.",
    "daily_return": "daily_pnl / previous equity.", "cumulative_pnl": "Equity − cumulative flows (USD); NULL when partial.",
    "cumulative_flows": "Σ capital flows to date (USD).",
    "unpriced_count": "Active positions without a price within 5 sessions (never valued at 0).",
    "is_partial": "Some active position is unpriced.", "has_stale": "Some position priced from an older close.",
    "hhi": "Herfindahl index of gross weights.",
    "effective_positions_hhi": "Effective number of positions by gross weight: 1 / hhi (ignores correlations).",
    "effective_positions_corr": "Correlation-adjusted effective number of positions: (Σ|MV|)² / (|MV|ᵀ R |MV|) over the "
                                "matrix's holdings (= 1/HHI when R = I, 1 when all ρ = 1).",
    "volatility_21d": "Annualised realised volatility over 21 sessions.",
    "volatility_63d": "Annualised realised volatility over 63 sessions.",
    "exposure_dollar": "Σ MV·β over public positions with a β (USD per unit factor return).",
    "exposure_value": "exposure_dollar / equity.", "coverage": "Share of public gross value that had a β.",
    "scenario_id": "Stress scenario id (stress_scenarios.yaml).",
    "direct_pnl": "P&L from the named shocks only (USD).",
    "correlated_pnl": "P&L with unshocked factors at their conditional expectation (USD).",
    "correlation_effect": "correlated_pnl − direct_pnl (USD).",
    "top_contributors": "JSON list of the largest contributing positions, each [position_id, symbol, pnl] "
                        "(USD); stress_results_view presents them as objects.",
    "scenario_name": "Scenario display name.", "category": "Scenario category.",
    "severity": "Scenario severity (mild, base, moderate, severe, extreme).",
    "matrix": "JSON strict upper triangle of the correlation matrix, row by row (null = too little overlap).",
    "avg_correlation": "Value-weighted average pairwise correlation.",
    "reason": "Why the symbol has no row (failure or skip reason).",
    "window_start": "Replay window's base day: the window is the move from its close to the close of `date`.",
    "window_return": "Compounded total return over the window's sessions after window_start up to date (decimal).",
    "sessions": "Daily returns compounded (sessions in the window after its base day).",
    # ledger
    "name": "Portfolio name.", "currency": "Reporting currency (USD).",
    "source_file": "File the portfolio was loaded from.", "loaded_at": "When the ledger was loaded (UTC).",
    "position_id": "Position id, unique within the portfolio.",
    "investment_class": "PUBLIC, OPTIONS or PRIVATE (blank in the file: inferred from the symbol).",
    "quantity": "Shares or contracts as of the entry date (negative = short); later splits are applied on each day.",
    "entry_price": "Price paid per share or contract at entry (USD).", "entry_date": "First day the position is held.",
    "exit_date": "Day the position is closed (not held from that day on); empty while open.",
    "exit_price": "Price received per share or contract at exit (USD).",
    "underlying": "Underlying symbol of an option.", "option_type": "C (call) or P (put).",
    "strike": "Option strike (USD).", "expiration": "Option expiration date.",
    "manual_value": "Manual value of a private asset (USD); private assets are never priced by a provider.",
    "deleted": "Soft-deleted: ignored on every day.",
    "flow_id": "Capital flow id, unique within the portfolio.",
    "amount": "Capital flow (USD; positive = contribution, negative = withdrawal).",
    "capital_flows.description": "Free-text note of the flow.",
    # analytics
    "asset": "Asset whose computation the row describes.",
    "symbol_status.status": "ok, failed or skipped.",
    "symbol_universe.status": "active, history (held within the look-ahead), factor, private or expired_option.",
    "position_count": "Positions holding the symbol that day.",
    "portfolio_snapshots.position_count": "Active positions on the day.",
    "long_count": "Active long positions.", "short_count": "Active short positions.",
    "stale_count": "Positions priced from an older close (≤ 5 sessions).",
    "top3_weight": "Share of gross exposure in the 3 largest positions.",
    "top10_weight": "Share of gross exposure in the 10 largest positions.",
    "symbols": "JSON list of the matrix's symbols, in its order.", "n_symbols": "Holdings in the matrix.",
    "n_pairs": "Pairs in the matrix.", "n_pairs_insufficient": "Pairs with too little overlap (null in the matrix).",
    "psd_repaired": "Negative eigenvalues were clipped to make the matrix positive semi-definite.",
    "min_eigenvalue": "Smallest eigenvalue before the repair.",
    "positions_with_beta": "Public positions with a β for the factor that day.",
    "positions_missing_beta": "Public positions without a β (excluded and counted, never 0); options count here.",
    "positions_covered": "Positions priced by the scenario (with loadings).",
    "scenario_name": "Scenario name.", "category": "Scenario category (market, rates, rotation, volatility, historical).",
    "severity": "Scenario severity (mild, base, moderate, severe, extreme).",
    "direct_pct_equity": "direct_pnl / equity (decimal).", "correlated_pct_equity": "correlated_pnl / equity (decimal).",
    "return_1d": "Total return of the day (decimal).", "return_mtd": "Return month to date (decimal).",
    "return_ytd": "Return year to date (decimal).", "return_1m": "Return over 21 sessions (decimal).",
    "return_3m": "Return over 63 sessions (decimal).", "return_1y": "Return over 252 sessions (decimal).",
    # operations
    "run_id": "Dagster run id.", "kind": "failure or max_runtime.", "job_name": "Dagster job of the run.",
    "partition_range": "The run's partition or range (D or D1...D2).", "step_keys": "Failed steps, comma-separated.",
    "error": "The error message.", "trigger": "Schedule or sensor that launched the run, if any.",
    "runtime_minutes": "Minutes the run had been going.", "occurred_at": "When it happened (UTC).",
    "recorded_at": "When it was recorded (UTC).",
    "version": "Warehouse schema version.", "applied_at": "When the version was applied (UTC).",
    "schema_version.description": "What the version changed.",

    # portfolio_risk, risk_contributions, var_backtest (README: Ex-ante risk)
    "volatility_daily": "Ex-ante 1-day volatility of the covered positions (USD): sqrt(factor² + specific²).",
    "factor_volatility_daily": "Daily volatility from factor moves alone, sqrt(xᵀΣ_f x) (USD).",
    "specific_volatility_daily": "Daily volatility from stock-specific moves alone, sqrt(Σ w_i² D_i) (USD).",
    "volatility_annual": "volatility_daily × √252 (USD).",
    "volatility_daily_pct_equity": "volatility_daily / equity (decimal).",
    "volatility_annual_pct_equity": "volatility_annual / equity (decimal).",
    "factor_share": "Share of the variance explained by factors (decimal, 0..1).",
    "beta_spy": "Ex-ante beta to SPY of the portfolio return (P&L / equity).",
    "tracking_error_daily": "Ex-ante daily volatility of the return relative to holding equity in SPY (USD).",
    "tracking_error_annual_pct_equity": "Tracking error against SPY, annualised, as a fraction of equity.",
    "positions_covered": "Priced PUBLIC positions with a factor model (what the risk measures).",
    "positions_options": "Option positions excluded (no delta model).",
    "positions_private": "Private positions excluded (no market model).",
    "positions_unpriced": "PUBLIC positions without a price, excluded.",
    "positions_no_loadings": "Priced PUBLIC positions whose symbol has no factor model that day, excluded.",
    "hist_observations": "Days of the 250-day historical simulation that had a P&L.",
    "hist_proxied_returns": "(position, day) returns of the simulation filled with the factor proxy L·f.",
    "hypothetical_pnl": "P&L on this day of the previous session's covered holdings (no trading, no flows; USD).",
    "positions_missing_return": "Covered positions of the previous session with neither a return nor a factor "
                                "proxy this day (hypothetical_pnl is then NULL).",
    "positions_proxied_return": "Covered positions of the previous session whose missing return this day was "
                                "replaced by its factor proxy L·f in hypothetical_pnl.",
    "component_type": "factor, specific or position.",
    "component": "Factor name, 'specific', or 'top_positions' (the JSON row of the largest positions).",
    "contribution": "Euler contribution to daily volatility (USD); factors + specific sum to volatility_daily.",
    "share": "contribution / volatility_daily (decimal).",
    "positions": "JSON list of the top 10 positions by |contribution|, each [position_id, symbol, contribution "
                 "(USD), share].",
    "var_99_previous": "Parametric 99 % 1-day VaR of the previous session (USD, positive = loss).",
    "exception": "The hypothetical loss exceeded var_99_previous (NULL: not an observation).",
    "exceptions": "Exceptions in the trailing 250 sessions.",
    "kupiec_lr": "Kupiec proportion-of-failures likelihood ratio (χ²₁) over the trailing window.",
    "kupiec_p_value": "P(χ²₁ > kupiec_lr).",
    "christoffersen_lr": "Christoffersen independence likelihood ratio (χ²₁) over the trailing window.",
    "christoffersen_p_value": "P(χ²₁ > christoffersen_lr).",
    "traffic_light": "Basel zone of the trailing 250 days: green 0–4, yellow 5–9, red ≥ 10 exceptions; NULL "
                     "before 250 observations (unless already red).",
}
COLUMN_DOCS.update({f"beta_{f}": f"The day's {f} beta (capped ±5), as in the factor tables."
                    for f in ("market", "ir", "provider", "value", "growth", "momentum", "quality", "size",
                              "low_volatility", "growth_value", "momentum_spread", "size_spread", "quality_spread")})


def column_doc(table_name: str, column_name: str) -> str | None:
    """The description of a column: ``table.column`` in COLUMN_DOCS, else the column name's."""
    return COLUMN_DOCS.get(f"{table_name}.{column_name}", COLUMN_DOCS.get(column_name))


for _table in metadata.sorted_tables:
    for _col in _table.columns:
        if _col.comment is None:
            _col.comment = column_doc(_table.name, _col.name)

TABLES = {t.name: t for t in metadata.sorted_tables}

_READABLE = MetaData()


def _readable(name: str) -> Table:
    table = TABLES[name]
    lookup = LOOKUPS.get(name)
    if lookup is None:
        return table
    cols = []
    for c in table.columns:
        cols.append(Column(c.name, c.type, nullable=c.nullable, comment=c.comment))
        if c.name == lookup.key:
            cols += [Column(x.name, x.type, nullable=x.nullable, comment=x.comment) for x in lookup.columns]
    return Table(name, _READABLE, *cols)


#: What a reader sees of each asset table: the table itself, or with a lookup its columns plus the
#: lookup's (after the lookup key), the shape writers hand in and ``Warehouse.read`` returns.
READABLE: dict[str, Table] = {name: _readable(name) for name in TABLES}


def readable_columns(name: str) -> list[str]:
    return [c.name for c in READABLE[name].columns]
