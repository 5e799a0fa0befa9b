"""Market-data assets: the ledger source, ``symbol_universe``, ``prices``, ``daily_valuations``."""


import hashlib
import random

import numpy as np
import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetDep,
    AssetKey,
    AssetSpec,
    BackfillPolicy,
    DataVersion,
    Failure,
    MaterializeResult,
    MetadataValue,
    ObserveResult,
    RetryRequested,
    TimeWindowPartitionMapping,
    asset,
    multi_observable_source_asset,
)

from .. import calendar
from ..calc.universe import build_universe
from ..config import FACTOR_ETFS
from ..market_data.base import ProviderUnavailableError
from ..warehouse import schema as tables
from ..warehouse.ledger import read_ledger
from .common import (OWNER, ScopeConfig, md_table, range_metadata, reasons_summary, run_days, scope_symbols,
                     table_metadata, write_partitions)
from .partitions import trading_days
from .resources import MarketDataResource, WarehouseResource

# Sessions of history a symbol needs before a position holds it: 252 returns = 253 prices.
LOOKAHEAD_SESSIONS = 253
WEEK52_SESSIONS = 252
WEEK52_MIN_OBS = 200
FAILURE_RATE_WARN = 0.10
COVERAGE_WARN = 0.95

# A provider outage is retried at step level with exponential backoff (the provider has already
# retried each call); a bug in our code is not retried, since it would fail the same way again.
PROVIDER_STEP_RETRIES = 3
PROVIDER_STEP_BACKOFF_S = 30.0


def _retry_or_fail(context, exc: ProviderUnavailableError):
    attempt = context.retry_number
    if attempt < PROVIDER_STEP_RETRIES:
        wait = PROVIDER_STEP_BACKOFF_S * 2**attempt * (0.75 + 0.5 * random.random())
        context.log.warning(f"{exc}; retrying the step in {wait:.0f}s (attempt {attempt + 1}/{PROVIDER_STEP_RETRIES})")
        raise RetryRequested(max_retries=PROVIDER_STEP_RETRIES, seconds_to_wait=wait) from exc
    raise Failure(description=f"{exc} (gave up after {PROVIDER_STEP_RETRIES} step retries)",
                  metadata={"provider": exc.provider}) from None
GROUP = "market_data"


@multi_observable_source_asset(
    specs=[
        AssetSpec(
            "portfolios",
            group_name=GROUP,
            description=(
                "The portfolio ledger as loaded by `sigmasight load-portfolios`: tables `portfolios`, "
                "`positions` and `capital_flows`. Unpartitioned; its data version changes whenever a "
                "ledger is (re)loaded, which is what the onboarding sensors react to."
            ),
            owners=[OWNER],
            kinds={"sql", "csv"},
            metadata=table_metadata(tables.positions),
        )
    ],
)
def portfolios(warehouse: WarehouseResource):
    wh = warehouse.get()
    books, pos, flows = read_ledger(wh)
    digest = hashlib.sha256()
    for frame in (books.drop(columns=["loaded_at"], errors="ignore"), pos, flows):
        digest.update(pd.util.hash_pandas_object(frame.sort_index(axis=1), index=False).to_numpy().tobytes())
    yield ObserveResult(
        asset_key="portfolios",
        data_version=DataVersion(f"{len(books)}p-{len(pos)}pos-{digest.hexdigest()[:16]}"),
        metadata={"portfolios": len(books), "positions": len(pos), "capital_flows": len(flows)},
    )


def _horizon(days: pd.DatetimeIndex, ahead: int) -> pd.DatetimeIndex:
    future = calendar.sessions(days[0], days[-1] + pd.Timedelta(days=ahead * 2))
    idx = np.minimum(future.searchsorted(days) + ahead - 1, len(future) - 1)
    return future[idx]


@asset(
    partitions_def=trading_days,
    backfill_policy=BackfillPolicy.single_run(),
    deps=[AssetKey("portfolios")],
    group_name=GROUP,
    kinds={"pandas", "sql"},
    owners=[OWNER],
    metadata={**table_metadata(tables.symbol_universe), "grain": "symbol × day"},
    check_specs=[
        AssetCheckSpec("factor_etfs_present", asset="symbol_universe",
                       description="All 8 factor ETFs are in every day's universe."),
        AssetCheckSpec("one_row_per_symbol_day", asset="symbol_universe",
                       description="No duplicate (date, symbol) rows."),
        AssetCheckSpec("private_never_fetched", asset="symbol_universe",
                       description="Private symbols and expired options are never sent to a provider."),
    ],
    description=(
        "Every symbol a trading day needs, one row per symbol × day: symbols held that day (`active`), "
        f"symbols a position will hold within {LOOKAHEAD_SESSIONS} sessions (`history`, so lookback "
        "windows are filled before entry), the 8 factor ETFs, private assets (`private`, never fetched) "
        "and options past expiry (`expired_option`, inactive). A pure function of the ledger."
    ),
)
def symbol_universe(context: AssetExecutionContext, config: ScopeConfig, warehouse: WarehouseResource) -> MaterializeResult:
    days = run_days(context)
    wh = warehouse.get()
    _, pos, _ = read_ledger(wh)
    frame = build_universe(pos, days, _horizon(days, LOOKAHEAD_SESSIONS), FACTOR_ETFS)
    scope = scope_symbols(config)
    if scope is not None:
        frame = frame[frame["symbol"].isin(scope)].reset_index(drop=True)
    written = write_partitions(wh, "symbol_universe", frame, days[0], days[-1], keys=scope)
    per_day = frame.groupby("date")
    etfs_ok = bool((per_day["is_factor_etf"].sum() == len(FACTOR_ETFS)).all()) if scope is None else True
    status_counts = frame["status"].value_counts().to_dict()
    context.log.info(f"symbol_universe: {len(days)} day(s), {frame['symbol'].nunique()} symbols, {written} rows, status {status_counts}")
    return MaterializeResult(
        metadata={
            **range_metadata(days),
            "rows": written,
            "symbols": int(frame["symbol"].nunique()),
            "to_fetch": int(frame.loc[frame["fetch"], "symbol"].nunique()),
            "positions_in_ledger": len(pos),
            "scope": ", ".join(scope) if scope else "all symbols",
            "status_counts": MetadataValue.json({k: int(v) for k, v in status_counts.items()}),
            "preview": md_table(frame[frame["date"] == days[-1]].sort_values("position_count", ascending=False)),
        },
        check_results=[
            AssetCheckResult(check_name="factor_etfs_present", passed=etfs_ok),
            AssetCheckResult(check_name="one_row_per_symbol_day", passed=not frame.duplicated(["date", "symbol"]).any()),
            AssetCheckResult(
                check_name="private_never_fetched",
                passed=not bool((frame["fetch"] & frame["status"].isin(["private", "expired_option"])).any()),
            ),
        ],
    )


def _fetch_scope(wh, days, config: ScopeConfig, *, valuations: bool = False) -> pd.DataFrame:
    """(date, symbol) pairs of the universe to request from the provider."""
    uni = wh.read("symbol_universe", days[0], days[-1], keys=scope_symbols(config),
                  columns=["date", "symbol", "asset_class", "fetch"])
    uni = uni[uni["fetch"].astype(bool)]
    if valuations:
        uni = uni[uni["asset_class"] == "PUBLIC"]
    return uni[["date", "symbol"]].reset_index(drop=True)


def _fetch_universe(context, provider, kind: str, days: pd.DatetimeIndex, expected: pd.DataFrame):
    """Ask the provider for the universe's symbols over the run's range; keep only universe pairs.

    Returns (frame, failures, symbols). A provider-wide outage is retried at step level, then fails
    the step with one clear message naming the provider.
    """
    symbols = sorted(expected["symbol"].unique())
    if not symbols:
        return pd.DataFrame(columns=["date", "symbol"]), {}, symbols
    fetch = provider.fetch_prices if kind == "prices" else provider.fetch_valuations
    context.log.info(f"{kind}: fetching {len(symbols)} symbols over {len(days)} day(s) from {provider.name}")
    try:
        result = fetch(symbols, days[0].date(), days[-1].date())
    except ProviderUnavailableError as exc:
        _retry_or_fail(context, exc)
    frame = result.frame.merge(expected, on=["date", "symbol"], how="inner")
    # Until symbol_status records skips, a provider's deliberate "not served" reads as its reason.
    return frame, {**result.skipped, **result.failures}, symbols


def _failed_symbols(symbols: list[str], frame: pd.DataFrame, failures: dict[str, str]) -> dict[str, str]:
    """Requested symbols that delivered no row at all, with the provider's reason."""
    with_data = set(frame["symbol"])
    return {s: failures.get(s, "no data in range") for s in symbols if s not in with_data}


def _status_rows(asset_name: str, expected: pd.DataFrame, delivered: pd.DataFrame, failures: dict[str, str],
                 default_reason: str) -> pd.DataFrame:
    """symbol_status rows for every expected (date, symbol) without a delivered row."""
    merged = expected.merge(delivered[["date", "symbol"]].assign(_ok=True), on=["date", "symbol"], how="left")
    missing = merged[merged["_ok"].isna()][["date", "symbol"]].copy()
    missing["asset"] = asset_name
    missing["status"] = "failed"
    missing["reason"] = missing["symbol"].map(failures).fillna(default_reason).astype(object)
    return missing.reset_index(drop=True)


def _write_status(wh, asset_name, days, rows: pd.DataFrame, scope) -> None:
    write_partitions(wh, "symbol_status", rows, days[0], days[-1],
                          keys=scope, extra_filter={"asset": asset_name})


@asset(
    partitions_def=trading_days,
    backfill_policy=BackfillPolicy.single_run(),
    deps=[symbol_universe],
    group_name=GROUP,
    kinds={"pandas", "sql"},
    owners=[OWNER],
    metadata={**table_metadata(tables.prices), "grain": "symbol × day"},
    check_specs=[
        AssetCheckSpec("provider_prices_positive", asset="prices",
                       description="The provider returned no zero, negative or missing prices (bad rows are dropped and counted)."),
        AssetCheckSpec("one_row_per_symbol_day", asset="prices", description="No duplicate (date, symbol) rows."),
        AssetCheckSpec("universe_coverage", asset="prices",
                       description=f"Share of fetchable universe symbol-days with a price (warn below {COVERAGE_WARN:.0%})."),
        AssetCheckSpec("failure_rate", asset="prices",
                       description=f"Share of requested symbols that delivered nothing (warn above {FAILURE_RATE_WARN:.0%})."),
    ],
    description=(
        "Daily OHLCV as traded, the day's corporate actions (`dividend` per share going ex, `split_ratio` "
        "new shares per old; both NULL when the provider knows only an adjusted close, which is then the "
        "`close`), the provider's adjusted `adj_close` (convenience) and the delivering `source`, one row "
        "per symbol × day for every fetchable symbol of `symbol_universe`. Missing days stay missing (no "
        "fill); failures are recorded per symbol in `symbol_status`."
    ),
)
def prices(context: AssetExecutionContext, config: ScopeConfig, warehouse: WarehouseResource,
           market_data: MarketDataResource) -> MaterializeResult:
    days = run_days(context)
    wh = warehouse.get()
    provider = market_data.get()
    scope = scope_symbols(config)
    expected = _fetch_scope(wh, days, config)
    raw, failures, symbols = _fetch_universe(context, provider, "prices", days, expected)
    bad = ~((raw["close"] > 0) & (raw["adj_close"] > 0)) | raw[["open", "high", "low"]].le(0).any(axis=1)
    for sym in raw.loc[bad, "symbol"].unique():
        failures.setdefault(sym, "provider returned a zero, negative or missing price")
    frame = raw[~bad].drop_duplicates(["date", "symbol"], keep="last").reset_index(drop=True)
    frame[["volume", "dividend", "split_ratio"]] = frame[["volume", "dividend", "split_ratio"]].astype(float)
    status = _status_rows("prices", expected, frame, failures, "no price for this session")
    with_data = set(frame["symbol"])
    failed_symbols = _failed_symbols(symbols, frame, failures)
    written = write_partitions(wh, "prices", frame, days[0], days[-1], keys=scope)
    _write_status(wh, "prices", days, status, scope)
    coverage = len(frame) / len(expected) if len(expected) else 1.0
    failure_rate = len(failed_symbols) / len(symbols) if symbols else 0.0
    sources = frame["source"].value_counts().to_dict()
    context.log.info(
        f"prices: wrote {written} rows; coverage {coverage:.1%}; {len(failed_symbols)} symbol(s) failed; "
        f"{len(status)} missing symbol-days; {int(bad.sum())} bad rows dropped; sources {sources}"
    )
    last = frame[frame["date"] == frame["date"].max()] if len(frame) else frame
    return MaterializeResult(
        metadata={
            **range_metadata(days),
            "rows": written,
            "symbols": len(with_data),
            "symbols_requested": len(symbols),
            "coverage": float(coverage),
            "missing_symbol_days": len(status),
            "bad_rows_dropped": int(bad.sum()),
            "failed_symbols": len(failed_symbols),
            "failures": reasons_summary(failed_symbols),
            "sources": MetadataValue.json({k: int(v) for k, v in sources.items()}),
            "provider": provider.name,
            "scope": ", ".join(scope) if scope else "all symbols",
            "preview": md_table(last[["date", "symbol", "close", "dividend", "split_ratio", "adj_close", "volume",
                                      "source"]]),
        },
        check_results=[
            AssetCheckResult(check_name="provider_prices_positive", passed=not bool(bad.any()),
                             severity=AssetCheckSeverity.WARN, metadata={"bad_rows": int(bad.sum())}),
            AssetCheckResult(check_name="one_row_per_symbol_day", passed=not frame.duplicated(["date", "symbol"]).any()),
            AssetCheckResult(check_name="universe_coverage", passed=coverage >= COVERAGE_WARN,
                             severity=AssetCheckSeverity.WARN, metadata={"coverage": float(coverage)}),
            AssetCheckResult(check_name="failure_rate", passed=failure_rate <= FAILURE_RATE_WARN,
                             severity=AssetCheckSeverity.WARN,
                             metadata={"failure_rate": float(failure_rate), "failed": len(failed_symbols)}),
        ],
    )


def week52_range(price_rows: pd.DataFrame, days: pd.DatetimeIndex, sessions: pd.DatetimeIndex) -> pd.DataFrame:
    """52-week high/low per symbol and day from stored prices.

    Max of ``high`` (``close`` where high is missing) and min of ``low`` over the 252 sessions ending
    at the day; NaN with fewer than 200 observations, so a short history is reported as missing
    rather than as a truncated range.
    """
    if price_rows.empty:
        return pd.DataFrame(columns=["date", "symbol", "week52_high", "week52_low"])
    hi = price_rows["high"].fillna(price_rows["close"])
    lo = price_rows["low"].fillna(price_rows["close"])
    wide_hi = price_rows.assign(v=hi).pivot(index="date", columns="symbol", values="v").reindex(sessions)
    wide_lo = price_rows.assign(v=lo).pivot(index="date", columns="symbol", values="v").reindex(sessions)
    r_hi = wide_hi.rolling(WEEK52_SESSIONS, min_periods=WEEK52_MIN_OBS).max().reindex(days)
    r_lo = wide_lo.rolling(WEEK52_SESSIONS, min_periods=WEEK52_MIN_OBS).min().reindex(days)
    out = pd.concat({"week52_high": r_hi.stack(), "week52_low": r_lo.stack()}, axis=1)
    out.index.names = ["date", "symbol"]
    return out.reset_index()


def week52_from_extremes(extremes: pd.DataFrame, day, symbols) -> pd.DataFrame:
    """:func:`week52_range` for one day from :meth:`Warehouse.price_extremes` over the day's
    252-session window: the same max/min and the same 200-observation rule."""
    e = extremes[extremes["symbol"].isin(list(symbols))]
    return pd.DataFrame({
        "date": pd.Timestamp(day),
        "symbol": e["symbol"].to_numpy(dtype=object),
        "week52_high": np.where(e["n_high"] >= WEEK52_MIN_OBS, e["high"], np.nan),
        "week52_low": np.where(e["n_low"] >= WEEK52_MIN_OBS, e["low"], np.nan),
    })


@asset(
    partitions_def=trading_days,
    backfill_policy=BackfillPolicy.single_run(),
    deps=[
        symbol_universe,
        # Lineage of the 52-week window: day D reads prices D-251..D.
        AssetDep("prices", partition_mapping=TimeWindowPartitionMapping(start_offset=-(WEEK52_SESSIONS - 1))),
    ],
    group_name=GROUP,
    kinds={"pandas", "sql"},
    owners=[OWNER],
    metadata={**table_metadata(tables.daily_valuations), "grain": "symbol × day"},
    check_specs=[
        AssetCheckSpec("one_row_per_symbol_day", asset="daily_valuations", description="No duplicate (date, symbol) rows."),
        AssetCheckSpec("week52_consistent", asset="daily_valuations",
                       description="52-week low ≤ high wherever both are present."),
        AssetCheckSpec("failure_rate", asset="daily_valuations",
                       description=f"Share of requested symbols without valuations (warn above {FAILURE_RATE_WARN:.0%})."),
    ],
    description=(
        "Valuation fields per public symbol × day: trailing and forward PE, the provider's beta, 52-week "
        "high/low (from stored `prices` over 252 sessions when the provider publishes none; needs ≥ 200 "
        "observations), market cap and dividend yield (decimal)."
    ),
)
def daily_valuations(context: AssetExecutionContext, config: ScopeConfig, warehouse: WarehouseResource,
                     market_data: MarketDataResource) -> MaterializeResult:
    days = run_days(context)
    wh = warehouse.get()
    provider = market_data.get()
    scope = scope_symbols(config)
    expected = _fetch_scope(wh, days, config, valuations=True)
    frame, failures, symbols = _fetch_universe(context, provider, "daily_valuations", days, expected)
    frame = frame.drop_duplicates(["date", "symbol"], keep="last")
    # 52-week range from stored prices wherever the provider gave none.
    window = calendar.sessions(calendar.sessions_back(days[0], WEEK52_SESSIONS)[0], days[-1])
    if len(days) == 1:  # the nightly case: one aggregate query instead of the window's rows
        rng = week52_from_extremes(wh.price_extremes(window[0], window[-1]), days[0], symbols)
    else:
        stored = wh.read("prices", window[0], window[-1], keys=symbols,
                         columns=["date", "symbol", "high", "low", "close"])
        rng = week52_range(stored, days, window)
    frame = frame.merge(rng, on=["date", "symbol"], how="left", suffixes=("", "_stored"))
    for col in ("week52_high", "week52_low"):
        frame[col] = frame[col].astype(float).fillna(frame[f"{col}_stored"])
    frame = frame.drop(columns=["week52_high_stored", "week52_low_stored"])
    for col in ("pe", "forward_pe", "provider_beta", "week52_high", "week52_low", "market_cap", "dividend_yield"):
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype(float)
    frame = frame.reset_index(drop=True)
    status = _status_rows("daily_valuations", expected, frame, failures, "no valuation for this session")
    written = write_partitions(wh, "daily_valuations", frame, days[0], days[-1], keys=scope)
    _write_status(wh, "daily_valuations", days, status, scope)
    with_data = set(frame["symbol"])
    failed = _failed_symbols(symbols, frame, failures)
    failure_rate = len(failed) / len(symbols) if symbols else 0.0
    both = frame[["week52_high", "week52_low"]].dropna()
    w52_missing = int(frame["week52_high"].isna().sum())
    context.log.info(f"daily_valuations: wrote {written} rows for {len(with_data)} symbols; {len(failed)} failed; "
                     f"52w range missing on {w52_missing} rows (short history)")
    last = frame[frame["date"] == frame["date"].max()] if len(frame) else frame
    return MaterializeResult(
        metadata={
            **range_metadata(days),
            "rows": written,
            "symbols": len(with_data),
            "symbols_requested": len(symbols),
            "failed_symbols": len(failed),
            "failures": reasons_summary(failed),
            "week52_missing_rows": w52_missing,
            "week52_window": f"{WEEK52_SESSIONS} sessions, min {WEEK52_MIN_OBS} observations",
            "median_pe": float(frame["pe"].median()) if frame["pe"].notna().any() else float("nan"),
            "provider": provider.name,
            "preview": md_table(last[["date", "symbol", "pe", "provider_beta", "week52_high", "week52_low", "market_cap"]]),
        },
        check_results=[
            AssetCheckResult(check_name="one_row_per_symbol_day", passed=not frame.duplicated(["date", "symbol"]).any()),
            AssetCheckResult(check_name="week52_consistent", passed=bool((both["week52_low"] <= both["week52_high"]).all())),
            AssetCheckResult(check_name="failure_rate", passed=failure_rate <= FAILURE_RATE_WARN,
                             severity=AssetCheckSeverity.WARN, metadata={"failure_rate": float(failure_rate)}),
        ],
    )
