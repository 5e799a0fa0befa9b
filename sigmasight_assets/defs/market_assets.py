"""Market-data assets: the ledger source, ``symbol_universe``, ``prices``, ``daily_valuations``,
``symbol_returns``."""


import hashlib
import random
from dataclasses import dataclass
from typing import Callable

import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetDep,
    AssetKey,
    AssetSpec,
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

from ..calc.factors import FACTOR_ETFS
from ..calc.universe import LOOKAHEAD_SESSIONS
from ..calc.week52 import WEEK52_MIN_OBS, WEEK52_SESSIONS
from ..market_data.base import ProviderUnavailableError
from ..pipelines import market
from ..pipelines import returns as returns_pipeline
from ..warehouse import schema as tables
from ..warehouse.ledger import read_ledger
from .common import (BACKFILL_POLICY, OWNER, ScopeConfig, checks_by_day, day_rows, lookback, md_table, percent,
                     range_metadata, reasons_summary, run_days, scope_symbols, table_metadata)
from .partitions import trading_days
from .resources import MarketDataResource, WarehouseResource

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


def quarantine_check(rejected: pd.DataFrame) -> AssetCheckResult:
    """Warn when provider rows were quarantined (``rejected``: the range's, or one day's); the worst
    offenders are in the check's metadata."""
    worst = market.worst_offenders(rejected, limit=5)
    bad_rows = len(rejected)
    return AssetCheckResult(
        check_name="provider_rows_valid", passed=bad_rows == 0, severity=AssetCheckSeverity.WARN,
        metadata={"bad_rows": bad_rows, "symbols": int(rejected["symbol"].nunique()),
                  "worst_offenders": md_table(worst)},
        description=(None if bad_rows == 0 else
                     f"{bad_rows} row(s) of {rejected['symbol'].nunique()} symbol(s) quarantined; "
                     f"e.g. {rejected['reason'].iloc[0]}"),
    )


@dataclass
class MarketDay:
    """One day of a market asset's result: its stored rows, its missing symbol-days (``symbol_status``)
    and its quarantined rows."""

    day: pd.Timestamp
    frame: pd.DataFrame
    status: pd.DataFrame
    rejected: pd.DataFrame

    @property
    def expected(self) -> int:
        """Fetchable universe symbol-days of the day: each is stored or has a status row (never both)."""
        return len(self.frame) + len(self.status)

    @property
    def failed(self) -> dict[str, str]:
        """Symbols without a row on the day for a reason other than "not served" (skipped), with it."""
        failed = self.status[self.status["status"] == "failed"]
        return dict(zip(failed["symbol"], failed["reason"].astype(str)))


def market_days(res: market.MarketResult) -> Callable[[pd.Timestamp], MarketDay]:
    """``day → MarketDay`` of ``res``, split once (one ``groupby`` per frame). A quarantined row without
    a readable date belongs to no day: it is judged over the range only (see ``_undated``)."""
    rejected = res.rejected[res.rejected["date"].notna()] if len(res.rejected) else res.rejected
    parts = [day_rows(f) for f in (res.frame, res.status, rejected)]

    def on(day: pd.Timestamp) -> MarketDay:
        return MarketDay(pd.Timestamp(day).normalize(), *(rows(day) for rows in parts))

    return on


def _undated(res: market.MarketResult) -> bool:
    """Whether some quarantined row has no readable date (then no day can tell its own row validity)."""
    return bool(len(res.rejected) and res.rejected["date"].isna().any())


def coverage_check(stored: int, expected: int) -> AssetCheckResult:
    """``universe_coverage`` of prices: stored symbol-days / fetchable universe symbol-days (1 when none
    is expected); warn below ``COVERAGE_WARN``."""
    coverage = stored / expected if expected else 1.0
    return AssetCheckResult(check_name="universe_coverage", passed=coverage >= COVERAGE_WARN,
                            severity=AssetCheckSeverity.WARN, metadata={"coverage_pct": percent(coverage)},
                            description=f"{coverage:.1%} of {expected:,} fetchable universe symbol-days have a price")


def failure_check(failed: dict[str, str], requested: int, what: str, on: str = "") -> AssetCheckResult:
    """``failure_rate``: requested symbols that delivered nothing (over the range, or ``on`` a day: a
    requested symbol-day without a row) / requested (0 when none); the reasons name the symbols."""
    rate = len(failed) / requested if requested else 0.0
    return AssetCheckResult(check_name="failure_rate", passed=rate <= FAILURE_RATE_WARN,
                            severity=AssetCheckSeverity.WARN,
                            description=f"{len(failed)} of {requested} requested symbol(s) {what}{on}",
                            metadata={"failure_rate_pct": percent(rate), "failed": len(failed),
                                      "failures": reasons_summary(failed)})


def one_row_check(frame: pd.DataFrame) -> AssetCheckResult:
    return AssetCheckResult(check_name="one_row_per_symbol_day", passed=not frame.duplicated(["date", "symbol"]).any())


def log_quarantine(context, asset_name: str, res: market.MarketResult) -> None:
    """One warning line per quarantined symbol (at most 20; the rest are counted), naming the reason."""
    if res.bad_rows == 0:
        return
    worst = market.worst_offenders(res.rejected, limit=20)
    for row in worst.itertuples():
        context.log.warning(f"{asset_name}: quarantined {row.rows} row(s) of {row.symbol}: {row.first_reason}")
    more = int(res.rejected["symbol"].nunique()) - len(worst)
    if more > 0:
        context.log.warning(f"{asset_name}: … and {more} more symbol(s) with quarantined rows (see symbol_status)")


LEDGER_GROUP = "ledger"


def ledger_observation(wh) -> tuple[str, dict]:
    """The ledger's data version (changes whenever a ledger is (re)loaded) and its counts."""
    books, pos, flows = read_ledger(wh)
    marks = wh.read("private_marks", key_column="portfolio_id")
    digest = hashlib.sha256()
    for frame in (books.drop(columns=["loaded_at"], errors="ignore"), pos, flows, marks):
        digest.update(pd.util.hash_pandas_object(frame.sort_index(axis=1), index=False).to_numpy().tobytes())
    version = f"{len(books)}p-{len(pos)}pos-{digest.hexdigest()[:16]}"
    return version, {"portfolios": len(books), "positions": len(pos), "capital_flows": len(flows),
                     "private_marks": len(marks)}


@multi_observable_source_asset(
    specs=[
        AssetSpec(
            "portfolios",
            group_name=LEDGER_GROUP,
            description=(
                "The portfolio ledger as loaded by `sigmasight load-portfolios`: tables `portfolios`, "
                "`positions`, `capital_flows` and `private_marks`. Unpartitioned; its data version changes whenever a "
                "ledger is (re)loaded, which is what the onboarding sensors react to. `sigmasight "
                "load-portfolios` records an observation here each time it loads a ledger."
            ),
            owners=[OWNER],
            kinds={"sql", "csv"},
            metadata=table_metadata(tables.positions),
        )
    ],
)
def portfolios(warehouse: WarehouseResource):
    version, counts = ledger_observation(warehouse.get())
    yield ObserveResult(asset_key="portfolios", data_version=DataVersion(version), metadata=counts)


@asset(
    partitions_def=trading_days,
    backfill_policy=BACKFILL_POLICY,
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
    days, scope = run_days(context), scope_symbols(config)
    res = market.store_universe(warehouse.get(), days, scope)
    frame = res.frame
    status_counts = frame["status"].value_counts().to_dict()
    context.log.info(f"symbol_universe: {len(days)} day(s), {frame['symbol'].nunique()} symbols, {res.written} rows, "
                     f"status {status_counts}")
    return checks_by_day(context, MaterializeResult(
        metadata={
            **range_metadata(days),
            "rows": res.written,
            "symbols": int(frame["symbol"].nunique()),
            "to_fetch": int(frame.loc[frame["fetch"], "symbol"].nunique()),
            "positions_in_ledger": res.positions_in_ledger,
            "scope": ", ".join(scope) if scope else "all symbols",
            "status_counts": MetadataValue.json({k: int(v) for k, v in status_counts.items()}),
            "preview": md_table(frame[frame["date"] == days[-1]].sort_values("position_count", ascending=False)),
        },
        check_results=_universe_checks(frame, scope),
    ), lambda day, rows=day_rows(frame): _universe_checks(rows(day), scope))


def _universe_checks(frame: pd.DataFrame, scope) -> list[AssetCheckResult]:
    """The universe's checks on ``frame`` (the range's rows or one day's): every day in it holds the 8
    factor ETFs (not judged in a scoped run, which writes only its symbols), no duplicate, no private
    symbol or expired option fetched."""
    etfs_ok = bool((frame.groupby("date")["is_factor_etf"].sum() == len(FACTOR_ETFS)).all()) if scope is None else True
    return [
        AssetCheckResult(check_name="factor_etfs_present", passed=etfs_ok),
        one_row_check(frame),
        AssetCheckResult(
            check_name="private_never_fetched",
            passed=not bool((frame["fetch"] & frame["status"].isin(["private", "expired_option"])).any()),
        ),
    ]


@asset(
    partitions_def=trading_days,
    backfill_policy=BACKFILL_POLICY,
    deps=[symbol_universe],
    group_name=GROUP,
    kinds={"pandas", "sql"},
    owners=[OWNER],
    metadata={**table_metadata(tables.prices), "grain": "symbol × day"},
    check_specs=[
        AssetCheckSpec("provider_rows_valid", asset="prices",
                       description="No provider row was quarantined (bad rows, bad files and rows breaking a schema rule "
                                   "are dropped per symbol-day, counted and recorded in symbol_status)."),
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
    days, scope = run_days(context), scope_symbols(config)
    provider = market_data.get()
    try:
        res = market.store_prices(warehouse.get(), provider, days, scope)
    except ProviderUnavailableError as exc:
        _retry_or_fail(context, exc)
    frame, written, status, symbols, failed_symbols = res.frame, res.written, res.status, res.symbols, res.failed
    with_data = set(frame["symbol"])
    coverage = len(frame) / res.expected if res.expected else 1.0
    sources = frame["source"].value_counts().to_dict()
    context.log.info(
        f"prices: wrote {written} rows; coverage {coverage:.1%}; {len(failed_symbols)} symbol(s) failed; "
        f"{len(status)} missing symbol-days; {res.bad_rows} bad rows dropped; sources {sources}"
    )
    log_quarantine(context, "prices", res)
    problems = market.provider_problems(provider)
    if len(problems):
        context.log.warning(f"prices: the provider's files have {len(problems)} problem(s) (listed in the metadata, "
                            f"requested symbols or not); e.g. {problems['reason'].iloc[0]}")
    last = frame[frame["date"] == frame["date"].max()] if len(frame) else frame
    return checks_by_day(context, MaterializeResult(
        metadata={
            **range_metadata(days),
            "rows": written,
            "symbols": len(with_data),
            "symbols_requested": len(symbols),
            "coverage_pct": percent(coverage),
            "newest_day_rows": int((frame["date"] == days[-1]).sum()) if len(frame) else 0,
            "provider_file_problems": len(problems),
            "provider_file_problem_list": md_table(problems[["file", "row", "field", "reason"]], max_rows=25),
            "missing_symbol_days": len(status),
            "bad_rows_dropped": res.bad_rows,
            "quarantined_symbols": int(res.rejected["symbol"].nunique()),
            "worst_offenders": md_table(market.worst_offenders(res.rejected)),
            "failed_symbols": len(failed_symbols),
            "failures": reasons_summary(failed_symbols),
            "skipped_symbols": len(res.skipped),
            "sources": MetadataValue.json({k: int(v) for k, v in sources.items()}),
            "provider": provider.name,
            "scope": ", ".join(scope) if scope else "all symbols",
            "preview": md_table(last[["date", "symbol", "close", "dividend", "split_ratio", "adj_close", "volume",
                                      "source"]]),
        },
        check_results=[
            quarantine_check(res.rejected),
            one_row_check(frame),
            coverage_check(len(frame), res.expected),
            failure_check(failed_symbols, len(symbols), "delivered nothing"),
        ],
    ), lambda day, on=market_days(res), undated=_undated(res): _prices_day_checks(on(day), undated))


def _prices_day_checks(d: MarketDay, undated: bool) -> list[AssetCheckResult]:
    """The checks of ``prices`` on one day's rows (``provider_rows_valid`` is left to the range's
    verdict when a quarantined row had no readable date: it may be this day's)."""
    checks = [one_row_check(d.frame), coverage_check(len(d.frame), d.expected),
              failure_check(d.failed, d.expected, "delivered nothing", f" on {d.day.date()}")]
    return checks if undated else [quarantine_check(d.rejected), *checks]


@asset(
    partitions_def=trading_days,
    backfill_policy=BACKFILL_POLICY,
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
        AssetCheckSpec("provider_rows_valid", asset="daily_valuations",
                       description="No provider row was quarantined (bad rows and rows breaking a schema rule are "
                                   "dropped per symbol-day, counted and recorded in symbol_status)."),
        AssetCheckSpec("week52_consistent", asset="daily_valuations",
                       description="52-week low ≤ high wherever both are present."),
        AssetCheckSpec("failure_rate", asset="daily_valuations",
                       description=f"Share of requested symbols without valuations (warn above {FAILURE_RATE_WARN:.0%}); "
                                   "symbols the provider does not serve by design (a CSV directory without "
                                   "valuations.csv) are skipped, not failed."),
    ],
    description=(
        "Valuation fields per public symbol × day: trailing and forward PE, the provider's beta, 52-week "
        "high/low (from stored `prices` over 252 sessions when the provider publishes none; needs ≥ 200 "
        "observations), market cap and dividend yield (decimal)."
    ),
)
def daily_valuations(context: AssetExecutionContext, config: ScopeConfig, warehouse: WarehouseResource,
                     market_data: MarketDataResource) -> MaterializeResult:
    days, scope = run_days(context), scope_symbols(config)
    provider = market_data.get()
    try:
        res = market.store_valuations(warehouse.get(), provider, days, scope)
    except ProviderUnavailableError as exc:
        _retry_or_fail(context, exc)
    frame, written, symbols, failed = res.frame, res.written, res.symbols, res.failed
    with_data = set(frame["symbol"])
    w52_missing = int(frame["week52_high"].isna().sum())
    context.log.info(f"daily_valuations: wrote {written} rows for {len(with_data)} symbols; {len(failed)} failed; "
                     f"52w range missing on {w52_missing} rows (short history)")
    log_quarantine(context, "daily_valuations", res)
    last = frame[frame["date"] == frame["date"].max()] if len(frame) else frame
    return checks_by_day(context, MaterializeResult(
        metadata={
            **range_metadata(days),
            "rows": written,
            "symbols": len(with_data),
            "symbols_requested": len(symbols),
            "failed_symbols": len(failed),
            "failures": reasons_summary(failed),
            "skipped_symbols": len(res.skipped),
            "skipped": reasons_summary(res.skipped),
            "bad_rows_dropped": res.bad_rows,
            "worst_offenders": md_table(market.worst_offenders(res.rejected)),
            "week52_missing_rows": w52_missing,
            "week52_window": f"{WEEK52_SESSIONS} sessions, min {WEEK52_MIN_OBS} observations",
            "median_pe": round(float(frame["pe"].median()), 2) if frame["pe"].notna().any() else float("nan"),
            "provider": provider.name,
            "preview": md_table(last[["date", "symbol", "pe", "provider_beta", "week52_high", "week52_low", "market_cap"]]),
        },
        check_results=_valuation_checks(frame, res.rejected, failed, len(symbols)),
    ), lambda day, on=market_days(res), undated=_undated(res): _valuation_day_checks(on(day), undated))


def _valuation_checks(frame: pd.DataFrame, rejected: pd.DataFrame, failed: dict[str, str], requested: int,
                      on: str = "") -> list[AssetCheckResult]:
    """The checks of ``daily_valuations`` on the range's rows or one day's (``on``)."""
    both = frame[["week52_high", "week52_low"]].dropna()
    return [
        one_row_check(frame),
        quarantine_check(rejected),
        AssetCheckResult(check_name="week52_consistent", passed=bool((both["week52_low"] <= both["week52_high"]).all())),
        failure_check(failed, requested, "without valuations", on),
    ]


def _valuation_day_checks(d: MarketDay, undated: bool) -> list[AssetCheckResult]:
    """One day's checks; requested = the day's public universe symbols (each stored or with a status row)."""
    checks = _valuation_checks(d.frame, d.rejected, d.failed, d.expected, f" on {d.day.date()}")
    return [c for c in checks if not (undated and c.check_name == "provider_rows_valid")]


@asset(
    partitions_def=trading_days,
    backfill_policy=BACKFILL_POLICY,
    # Day D reads prices of the previous session and D (one return needs two closes).
    deps=[lookback(prices, 1)],
    group_name=GROUP,
    kinds={"pandas", "sql"},
    owners=[OWNER],
    metadata={**table_metadata(tables.symbol_returns), "grain": "symbol × day"},
    check_specs=[
        AssetCheckSpec("one_row_per_symbol_day", asset="symbol_returns", description="No duplicate (date, symbol) rows."),
        AssetCheckSpec("return_coverage", asset="symbol_returns",
                       description=f"Share of symbol-days with a price that have a return (warn below {COVERAGE_WARN:.0%}); "
                                   "a missing previous close leaves the return missing, never 0."),
        AssetCheckSpec("one_basis_per_symbol", asset="symbol_returns",
                       description="No symbol mixes total and adjusted returns within the run (a provider that "
                                   "switched between as-traded and adjusted closes; warn)."),
    ],
    description=(
        "Point-in-time daily total return per symbol × day with a price: r_D = split_ratio_D × (close_D + "
        "dividend_D) / close_(D−1) − 1 on the as-traded close of `prices` (D−1 the previous trading day; a "
        "dividend on a split day is per post-split share). Computed from the two days' rows only, so a "
        "nightly run and a backfill agree and a later corporate action never changes a stored day. "
        "`return_basis` is `total`, or `adjusted` when the provider knew only an adjusted close; a missing "
        "price on either day leaves `total_return` NULL (counted), never 0. Every return-based analytic "
        "reads this table."
    ),
)
def symbol_returns(context: AssetExecutionContext, config: ScopeConfig, warehouse: WarehouseResource) -> MaterializeResult:
    days, scope = run_days(context), scope_symbols(config)
    res = returns_pipeline.store_symbol_returns(warehouse.get(), days, scope)
    judged = res.written - res.no_history  # the first stored day's returns cannot exist yet (not counted)
    coverage = 1.0 - (res.missing - res.no_history) / judged if judged else 1.0
    mixed = res.mixed_basis
    context.log.info(f"symbol_returns: {res.written} rows for {len(res.symbols)} symbols; {res.missing} without a "
                     f"return; basis {res.basis}; {res.splits} split(s), {res.dividends} dividend(s)")
    return checks_by_day(context, MaterializeResult(
        metadata={
            **range_metadata(days),
            "rows": res.written,
            "symbols": len(res.symbols),
            "missing_returns": res.missing,
            "not_enough_history_yet": res.no_history,
            "coverage_pct": percent(coverage),
            "basis": MetadataValue.json(res.basis),
            "splits": res.splits,
            "dividends": res.dividends,
            "scope": ", ".join(scope) if scope else "all symbols",
            "preview": md_table(res.last.sort_values("symbol")),
        },
        check_results=[*_return_checks(res.duplicated, res.written, res.missing, res.no_history),
                       AssetCheckResult(check_name="one_basis_per_symbol", passed=not mixed,
                                        severity=AssetCheckSeverity.WARN, metadata={"mixed": ", ".join(mixed[:20])})],
        # one_basis_per_symbol compares a symbol's days with each other: it has no verdict of one day,
        # so each day keeps the range's (saying so)
    ), lambda day, d=res.by_day: _return_checks(d.get(day, "duplicated") > 0, d.get(day, "written"),
                                                d.get(day, "missing"), d.get(day, "no_history")))


def _return_checks(duplicated: bool, written: int, missing: int, no_history: int = 0) -> list[AssetCheckResult]:
    """Row uniqueness and ``return_coverage`` of the range or of one day: 1 − (missing − no_history) /
    (written − no_history), 1 when nothing is left. ``no_history``: missing returns on the warehouse's
    first day of prices (no previous close can exist yet) — expected, reported, not counted."""
    judged = written - no_history
    coverage = 1.0 - (missing - no_history) / judged if judged else 1.0
    text = f"{coverage:.1%} of the symbol-days with a price have a return"
    if no_history:
        text += f"; {no_history:,} on the first day of stored prices have no previous close yet (expected, not counted)"
    return [
        AssetCheckResult(check_name="one_row_per_symbol_day", passed=not duplicated),
        AssetCheckResult(check_name="return_coverage", passed=coverage >= COVERAGE_WARN,
                         severity=AssetCheckSeverity.WARN, description=text,
                         metadata={"coverage_pct": percent(coverage), "missing": missing,
                                   "not_enough_history_yet": no_history}),
    ]
