"""FallbackChain semantics and the SIGMASIGHT_MARKET_DATA spec parser."""

from __future__ import annotations

import json
import logging
import random
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from sigmasight_assets.config import ConfigError, market_data_spec
from sigmasight_assets.market_data.base import (
    PRICE_COLUMNS,
    VALUATION_COLUMNS,
    FetchResult,
    MarketDataProvider,
    ProviderUnavailableError,
    empty_frame,
)
from sigmasight_assets.market_data.chain import FallbackChain, build_provider
from sigmasight_assets.market_data.csv_provider import CSVDirectoryProvider
from sigmasight_assets.market_data.yfinance_provider import YFinanceProvider

FIX = Path(__file__).parent / "fixtures"
START, END = date(2024, 1, 2), date(2024, 1, 12)


class FakeProvider:
    """Delivers a fixed set of symbols; reports a reason for a few others; silent about the rest."""

    def __init__(self, name, delivers=(), reasons=None, unavailable=None, source=None):
        self.name = name
        self.delivers = set(delivers)
        self.reasons = dict(reasons or {})
        self.unavailable = unavailable
        self.source = source if source is not None else name
        self.calls: list[list[str]] = []

    def _rows(self, symbols, columns, start, end):
        self.calls.append(list(symbols))
        if self.unavailable:
            raise ProviderUnavailableError(self.name, self.unavailable)
        days = pd.bdate_range(start, end)
        syms = [s for s in symbols if s in self.delivers]
        if not syms:
            frame = empty_frame(columns)
        else:
            idx = pd.MultiIndex.from_product([days, syms], names=["date", "symbol"])
            frame = pd.DataFrame(index=idx).reset_index()
            for c in columns[2:-1]:
                frame[c] = 1.0
            frame["source"] = self.source
            frame = frame[columns]
        failures = {s: self.reasons[s] for s in symbols if s in self.reasons and s not in self.delivers}
        return FetchResult(frame, failures)

    def fetch_prices(self, symbols, start, end):
        return self._rows(symbols, PRICE_COLUMNS, start, end)

    def fetch_valuations(self, symbols, start, end):
        return self._rows(symbols, VALUATION_COLUMNS, start, end)


def test_first_provider_serves_everything_and_the_next_is_not_asked():
    a, b = FakeProvider("a", {"X", "Y"}), FakeProvider("b", {"X", "Y"})
    chain = FallbackChain([a, b])
    result = chain.fetch_prices(["X", "Y"], START, END)
    assert result.failures == {} and set(result.frame["source"]) == {"a"}
    assert b.calls == []
    assert isinstance(chain, MarketDataProvider) and chain.name == "a,b"


def test_only_undelivered_symbols_go_to_the_next_provider_and_sources_are_kept():
    a = FakeProvider("yfinance", {"X"}, reasons={"Y": "no data returned", "Z": "no data returned"})
    b = FakeProvider("csv", {"Y", "W"}, reasons={"Z": "no file"})
    result = FallbackChain([a, b]).fetch_prices(["X", "Y", "Z", "W"], START, END)
    assert a.calls == [["X", "Y", "Z", "W"]]
    assert b.calls == [["Y", "Z", "W"]]  # W was absent from a's result: asked of b too
    src = result.frame.groupby("symbol")["source"].unique().map(list).to_dict()
    assert src == {"X": ["yfinance"], "Y": ["csv"], "W": ["csv"]}
    assert result.failures == {"Z": "yfinance: no data returned; csv: no file"}
    assert list(result.frame.columns) == PRICE_COLUMNS
    assert result.frame["date"].is_monotonic_increasing


def test_absent_symbol_without_a_reason_is_recorded_as_not_returned():
    result = FallbackChain([FakeProvider("a"), FakeProvider("b")]).fetch_prices(["Q"], START, END)
    assert result.failures == {"Q": "a: not returned; b: not returned"}


def test_unavailable_provider_is_skipped_and_recorded():
    a = FakeProvider("yfinance", unavailable="Yahoo Finance unreachable")
    b = FakeProvider("csv", {"X"}, reasons={"Y": "no file"})
    chain = FallbackChain([a, b])
    result = chain.fetch_prices(["X", "Y"], START, END)
    assert set(result.frame["symbol"]) == {"X"}
    assert result.failures == {"Y": "yfinance: unavailable (Yahoo Finance unreachable); csv: no file"}
    assert chain.last_unavailable == {"yfinance": "Yahoo Finance unreachable"}


def test_all_providers_unavailable_raises_once():
    chain = FallbackChain([FakeProvider("a", unavailable="down"), FakeProvider("b", unavailable="gone")])
    with pytest.raises(ProviderUnavailableError) as info:
        chain.fetch_prices(["X"], START, END)
    assert info.value.provider == "a,b"
    assert "a: down" in info.value.reason and "b: gone" in info.value.reason


def test_unavailable_then_nothing_delivered_by_an_available_provider_does_not_raise():
    chain = FallbackChain([FakeProvider("a", unavailable="down"), FakeProvider("b", reasons={"X": "no file"})])
    result = chain.fetch_prices(["X"], START, END)
    assert result.frame.empty and result.failures == {"X": "a: unavailable (down); b: no file"}


def test_missing_source_is_filled_with_the_provider_name():
    a = FakeProvider("a", {"X"}, source=None)
    a.source = None
    result = FallbackChain([a]).fetch_prices(["X"], START, END)
    assert set(result.frame["source"]) == {"a"}


def test_valuations_fall_back_the_same_way():
    a = FakeProvider("yfinance", {"X"}, reasons={"Y": "no current snapshot"})
    b = FakeProvider("csv", {"Y"})
    result = FallbackChain([a, b]).fetch_valuations(["X", "Y"], START, END)
    assert list(result.frame.columns) == VALUATION_COLUMNS
    assert result.frame.groupby("symbol")["source"].first().to_dict() == {"X": "yfinance", "Y": "csv"}


class Scripted:
    """A provider answering with a fixed FetchResult (filtered to the symbols asked)."""

    def __init__(self, name, rows=(), failures=None, skipped=None, rejected=()):
        self.name = name
        self.rows = list(rows)  # (symbol, day)
        self.failures, self.skipped = dict(failures or {}), dict(skipped or {})
        self.rejected = list(rejected)  # (day, symbol, reason)
        self.calls = []

    def fetch_prices(self, symbols, start, end):
        self.calls.append(list(symbols))
        rows = [(s, d) for s, d in self.rows if s in symbols]
        frame = empty_frame(PRICE_COLUMNS) if not rows else pd.DataFrame(
            [{"date": pd.Timestamp(d), "symbol": s, "open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0,
              "adj_close": 1.0, "volume": 1.0, "dividend": 0.0, "split_ratio": 1.0, "source": self.name}
             for s, d in rows])[PRICE_COLUMNS]
        rejected = pd.DataFrame(self.rejected, columns=["date", "symbol", "reason"])
        rejected["date"] = pd.to_datetime(rejected["date"])
        return FetchResult(frame, {s: r for s, r in self.failures.items() if s in symbols},
                           {s: r for s, r in self.skipped.items() if s in symbols},
                           rejected[rejected["symbol"].isin(symbols)])

    fetch_valuations = fetch_prices


def test_skipped_everywhere_is_a_skip_and_skipped_then_failed_is_a_failure():
    a = Scripted("yfinance", skipped={"X": "no valuation history", "Y": "no valuation history"})
    b = Scripted("csv", skipped={"X": "no valuations"}, failures={"Y": "valuations.csv: unreadable"})
    result = FallbackChain([a, b]).fetch_valuations(["X", "Y"], START, END)
    assert result.skipped == {"X": "yfinance: no valuation history; csv: no valuations"}
    assert result.failures == {"Y": "yfinance: no valuation history; csv: valuations.csv: unreadable"}
    assert b.calls == [["X", "Y"]]  # a skip is asked of the next provider


def test_rejected_rows_follow_the_provider_that_owns_the_symbol():
    bad = "SPY.csv, row 4, field 'close': must be positive (-1.0)"
    a = Scripted("csv", rows=[("SPY", "2024-01-02")], failures={"QQQ": "no file"},
                 rejected=[("2024-01-03", "SPY", bad), ("2024-01-03", "QQQ", "QQQ.csv, row 3, field 'date': x")])
    b = Scripted("yfinance", rows=[("QQQ", "2024-01-02"), ("QQQ", "2024-01-03")],
                 rejected=[("2024-01-04", "QQQ", "high: below low (1.0 vs 2.0)")])
    result = FallbackChain([a, b]).fetch_prices(["SPY", "QQQ"], START, END)
    # SPY belongs to csv: its rejected row stands; QQQ was delivered by yfinance, so csv's rejection
    # of a QQQ row is dropped with the rest of csv's answer for QQQ
    assert result.rejected.to_dict("records") == [
        {"date": pd.Timestamp("2024-01-03"), "symbol": "SPY", "reason": f"csv: {bad}"},
        {"date": pd.Timestamp("2024-01-04"), "symbol": "QQQ", "reason": "yfinance: high: below low (1.0 vs 2.0)"},
    ]
    assert result.failures == {} and result.skipped == {}


def test_empty_request_and_empty_chain():
    assert FallbackChain([FakeProvider("a")]).fetch_prices([], START, END).frame.empty
    with pytest.raises(ValueError):
        FallbackChain([])


# ------------------------------------------------------------------------------------------------
# Real providers: recorded yfinance responses, then the CSV fixture directory
# ------------------------------------------------------------------------------------------------


def replaying(case):
    def download(tickers, **kwargs):
        for msg in json.loads((FIX / "yfinance" / f"{case}.log.json").read_text()):
            logging.getLogger("yfinance").error(msg)
        return pd.read_pickle(FIX / "yfinance" / f"{case}.pkl")

    return download


def unreachable(tickers, **kwargs):
    """What yfinance.download does offline: log a DNS error for every ticker, return no rows."""
    logging.getLogger("yfinance").error(
        f"{sorted(tickers)!r}: DNSError('Failed to perform, curl: (6) Could not resolve host: "
        "query2.finance.yahoo.com')"
    )
    return pd.read_pickle(FIX / "yfinance" / "unreachable.pkl")


def yf(case, **kwargs):
    return YFinanceProvider(
        downloader=unreachable if case == "unreachable" else replaying(case), ticker_factory=lambda s: None, sleep=lambda s: None,
        rng=random.Random(0), **kwargs,
    )


def test_yfinance_partial_then_csv():
    chain = FallbackChain([yf("partial"), CSVDirectoryProvider(FIX / "csv_prices")])
    result = chain.fetch_prices(["AAPL", "XXXX", "MSFT"], START, END)
    assert result.frame.groupby("symbol")["source"].unique().map(list).to_dict() == {
        "AAPL": ["yfinance"], "MSFT": ["yfinance"]
    }
    reason = result.failures["XXXX"]
    assert reason.startswith("yfinance: no data returned") and reason.endswith("; csv: no file")


def test_yfinance_unreachable_falls_back_to_csv():
    chain = FallbackChain([yf("unreachable", max_retries=1), CSVDirectoryProvider(FIX / "csv_prices")])
    result = chain.fetch_prices(["AAPL", "MSFT", "SPY", "NOPE"], START, END)
    assert set(result.frame["symbol"]) == {"AAPL", "MSFT", "SPY"}
    assert set(result.frame["source"]) == {"csv"}
    assert result.failures["NOPE"].startswith("yfinance: unavailable (Yahoo Finance unreachable")
    assert result.failures["NOPE"].endswith("csv: no file")


# ------------------------------------------------------------------------------------------------
# build_provider
# ------------------------------------------------------------------------------------------------


def test_build_synthetic():
    synthetic = pytest.importorskip("sigmasight_assets.market_data.synthetic")
    p = build_provider("synthetic", seed=11)
    assert isinstance(p, synthetic.SyntheticProvider) and p.seed == 11
    assert build_provider(" Synthetic ").seed == 7


def test_build_yfinance_and_csv(tmp_path):
    p = build_provider("yfinance")
    assert isinstance(p, YFinanceProvider)
    c = build_provider(f"csv:{tmp_path}")
    assert isinstance(c, CSVDirectoryProvider) and c.directory == tmp_path


def test_build_chain(tmp_path):
    chain = build_provider(f"yfinance, csv:{tmp_path}")
    assert isinstance(chain, FallbackChain)
    assert [p.name for p in chain.providers] == ["yfinance", "csv"]
    assert chain.providers[1].directory == tmp_path


@pytest.mark.parametrize("spec, real", [("yfinance,synthetic", "yfinance"), ("csv:{dir},synthetic", "csv"),
                                        ("synthetic, yfinance", "yfinance"),
                                        ("yfinance,csv:{dir},synthetic", "yfinance, csv")])
def test_a_chain_mixing_real_and_synthetic_prices_is_refused(monkeypatch, tmp_path, spec, real):
    """Issue 13: real and synthetic market data never mix silently in one warehouse."""
    monkeypatch.delenv("SIGMASIGHT_ALLOW_SYNTHETIC_FALLBACK", raising=False)
    spec = spec.format(dir=tmp_path)
    with pytest.raises(ConfigError) as info:
        build_provider(spec)
    assert str(info.value) == (
        f"SIGMASIGHT_MARKET_DATA={spec!r} would mix real ({real}) and synthetic prices in one warehouse; "
        "set SIGMASIGHT_ALLOW_SYNTHETIC_FALLBACK=1 to allow it"
    )
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("value", ["1", "true", "YES", "on"])
def test_the_opt_in_allows_a_synthetic_fallback(monkeypatch, value):
    monkeypatch.setenv("SIGMASIGHT_ALLOW_SYNTHETIC_FALLBACK", value)
    chain = build_provider("yfinance,synthetic", seed=3)
    assert [p.name for p in chain.providers] == ["yfinance", "synthetic"]
    assert chain.providers[1].seed == 3


def test_the_opt_in_can_be_given_explicitly_and_a_bad_value_is_named(monkeypatch):
    monkeypatch.setenv("SIGMASIGHT_ALLOW_SYNTHETIC_FALLBACK", "0")
    with pytest.raises(ConfigError, match="would mix real"):
        build_provider("yfinance,synthetic")
    assert isinstance(build_provider("yfinance,synthetic", allow_synthetic_fallback=True), FallbackChain)
    monkeypatch.setenv("SIGMASIGHT_ALLOW_SYNTHETIC_FALLBACK", "maybe")
    with pytest.raises(ConfigError) as info:
        build_provider("yfinance,synthetic")
    assert str(info.value) == ("SIGMASIGHT_ALLOW_SYNTHETIC_FALLBACK='maybe' is not a yes/no value "
                               "(expected 1 or 0, true or false)")
    # synthetic alone (the default) and real providers alone need no opt-in
    assert build_provider("synthetic").name == "synthetic"
    assert build_provider("yfinance").name == "yfinance"


def test_build_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("SIGMASIGHT_MARKET_DATA", f"csv:{tmp_path}")
    assert isinstance(build_provider(market_data_spec()), CSVDirectoryProvider)


@pytest.mark.parametrize(
    "spec, token",
    [
        ("bogus", "'bogus'"),
        ("yfinance,bloomberg", "'bloomberg'"),
        ("yfinance,,synthetic", "empty provider"),
        ("csv", "'csv'"),
        ("csv:", "'csv:'"),
        ("csv:/definitely/not/here", "'csv:/definitely/not/here'"),
        ("synthetic:3", "'synthetic:3'"),
        ("", "is empty"),
    ],
)
def test_bad_specs_raise_config_error_naming_variable_and_token(spec, token):
    with pytest.raises(ConfigError) as info:
        build_provider(spec)
    message = str(info.value)
    assert "SIGMASIGHT_MARKET_DATA" in message and token in message
