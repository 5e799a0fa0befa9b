"""YFinanceProvider against recorded yfinance 1.7 responses; the network is blocked throughout."""

from __future__ import annotations

import json
import logging
import random
import socket
import threading
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sigmasight_assets.market_data.base import (
    PRICE_COLUMNS,
    VALUATION_COLUMNS,
    MarketDataProvider,
    ProviderUnavailableError,
)
from sigmasight_assets.market_data.yfinance_provider import (
    YFinanceProvider,
    classify_error,
    normalise_dividend_yield,
    normalise_download,
    parse_logged_errors,
)
from sigmasight_assets_tests.fixtures import make_yfinance_fixtures as rec

FIX = Path(__file__).parent / "fixtures" / "yfinance"
START, END = date(2024, 1, 2), date(2024, 1, 12)


# ------------------------------------------------------------------------------------------------
# No network: every way out is blocked and any attempt fails the test (yfinance swallows errors,
# so raising alone would not be noticed).
# ------------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    attempts: list[str] = []

    def blocked(*args, **kwargs):
        attempts.append(repr(args[:2]))
        raise RuntimeError("network access attempted in a test")

    monkeypatch.setattr(socket.socket, "connect", blocked)
    monkeypatch.setattr(socket.socket, "connect_ex", blocked)
    monkeypatch.setattr(socket, "create_connection", blocked)
    monkeypatch.setattr(socket, "getaddrinfo", blocked)
    import curl_cffi.requests.session as curl_session
    import requests.sessions

    monkeypatch.setattr(curl_session.Session, "request", blocked)
    monkeypatch.setattr(requests.sessions.Session, "request", blocked)
    yield attempts
    assert attempts == [], f"test tried to reach the network: {attempts}"


def test_network_guard_is_active(no_network):
    with pytest.raises(RuntimeError, match="network access"):
        socket.create_connection(("query2.finance.yahoo.com", 443))
    import curl_cffi.requests

    with pytest.raises(RuntimeError, match="network access"):
        curl_cffi.requests.Session().get("https://query2.finance.yahoo.com/")
    assert len(no_network) == 2
    no_network.clear()  # the attempts above were deliberate


# ------------------------------------------------------------------------------------------------
# Replaying recorded responses
# ------------------------------------------------------------------------------------------------


def load_case(case: str) -> tuple[pd.DataFrame, list[str]]:
    frame = pd.read_pickle(FIX / f"{case}.pkl")
    messages = json.loads((FIX / f"{case}.log.json").read_text())
    return frame, messages


class Replay:
    """A ``yfinance.download`` stand-in that replays recorded cases in order (the last repeats)."""

    def __init__(self, *cases: str):
        self.cases = list(cases)
        self.calls: list[dict] = []
        self.lock = threading.Lock()

    def __call__(self, tickers, **kwargs):
        with self.lock:
            self.calls.append({"tickers": list(tickers), **kwargs})
            case = self.cases.pop(0) if len(self.cases) > 1 else self.cases[0]
        frame, messages = load_case(case)
        for msg in messages:  # download logs failed tickers; it does not raise
            logging.getLogger("yfinance").error(msg)
        return frame


class Sleeps(list):
    def __call__(self, seconds):
        self.append(seconds)


def provider(downloader, ticker_factory=None, **kwargs) -> tuple[YFinanceProvider, Sleeps]:
    """A provider replaying ``downloader``; its fetch date is the fixtures' last session unless given."""
    sleeps = Sleeps()
    kwargs.setdefault("today", lambda: END)
    p = YFinanceProvider(
        downloader=downloader,
        ticker_factory=ticker_factory or (lambda s: pytest.fail("Ticker must not be used")),
        sleep=sleeps,
        rng=random.Random(0),
        **kwargs,
    )
    return p, sleeps


# ------------------------------------------------------------------------------------------------
# The recorded fixtures are what the installed yfinance really produces
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", sorted(rec.CASES))
def test_fixtures_match_what_installed_yfinance_download_returns(case):
    """Re-run the real ``yfinance.download`` (offline, fake per-ticker history) and compare."""
    fresh, messages = rec.record(case)
    recorded, recorded_messages = load_case(case)
    # download orders tickers through a set, so compare with sorted columns
    pd.testing.assert_frame_equal(fresh.sort_index(axis=1), recorded.sort_index(axis=1))
    assert list(fresh.columns.names) == list(recorded.columns.names)
    assert parse_logged_errors(messages).keys() == parse_logged_errors(recorded_messages).keys()


def test_recorded_layouts_are_yfinance_17_layouts():
    frame, _ = load_case("multi_column")
    assert list(frame.columns.names) == ["Price", "Ticker"]
    assert set(frame.columns.get_level_values(0)) == {
        "Open", "High", "Low", "Close", "Adj Close", "Volume", "Dividends", "Stock Splits", "Capital Gains"}
    assert frame[("Capital Gains", "SPY")].eq(0).all()  # an ETF's history also has capital gains
    assert frame.index.name == "Date" and frame.index.tz is None  # daily bars: ignore_tz → naive
    by_ticker, _ = load_case("multi_ticker")
    assert list(by_ticker.columns.names) == ["Ticker", "Price"]


# ------------------------------------------------------------------------------------------------
# Prices
# ------------------------------------------------------------------------------------------------


def test_multi_ticker_batch_is_normalised_to_the_price_contract():
    replay = Replay("multi_column")
    p, sleeps = provider(replay)
    result = p.fetch_prices(["AAPL", "MSFT", "SPY"], START, END)
    f = result.frame
    assert list(f.columns) == PRICE_COLUMNS
    assert result.failures == {}
    assert (f["source"] == "yfinance").all()
    assert f["date"].dtype == "datetime64[ns]"
    assert f.groupby("symbol").size().to_dict() == {"AAPL": 9, "MSFT": 8, "SPY": 9}
    # MSFT had no bar on 2024-01-08: the row is absent, not filled
    msft = f[f["symbol"] == "MSFT"].set_index("date")
    assert pd.Timestamp("2024-01-08") not in msft.index
    raw, _ = load_case("multi_column")
    aapl = f[f["symbol"] == "AAPL"].set_index("date")
    np.testing.assert_allclose(aapl["close"], raw[("Close", "AAPL")])
    np.testing.assert_allclose(aapl["adj_close"], raw[("Adj Close", "AAPL")])
    np.testing.assert_allclose(aapl["volume"], raw[("Volume", "AAPL")])
    assert (f["dividend"] == 0).all() and (f["split_ratio"] == 1).all()  # no action in these days
    assert sleeps == []
    # one call for the whole batch and date range, with the documented arguments
    assert len(replay.calls) == 1
    call = replay.calls[0]
    assert sorted(call["tickers"]) == ["AAPL", "MSFT", "SPY"]
    assert call["start"] == "2024-01-02" and call["end"] == "2024-01-13"  # end exclusive → +1 day
    assert call["auto_adjust"] is False and call["actions"] is True
    assert call["threads"] is False and call["progress"] is False and call["group_by"] == "column"


def test_ticker_first_column_order_gives_the_same_frame():
    a = provider(Replay("multi_column"))[0].fetch_prices(["AAPL", "MSFT", "SPY"], START, END).frame
    b = provider(Replay("multi_ticker"), group_by="ticker")[0].fetch_prices(["AAPL", "MSFT", "SPY"], START, END).frame
    pd.testing.assert_frame_equal(a, b)


def test_single_ticker_batch_multiindex_and_flat():
    result = provider(Replay("single"))[0].fetch_prices(["SPY"], START, END)
    assert result.failures == {} and len(result.frame) == 9
    raw, _ = load_case("single")
    flat = raw.droplevel("Ticker", axis=1)  # multi_level_index=False layout
    flat_frame = normalise_download(flat, ["SPY"])
    pd.testing.assert_frame_equal(flat_frame, result.frame)


def test_partly_failing_batch_records_the_missing_symbol_and_keeps_the_rest():
    p, sleeps = provider(Replay("partial"))
    result = p.fetch_prices(["AAPL", "XXXX", "MSFT"], START, END)
    assert set(result.frame["symbol"]) == {"AAPL", "MSFT"}
    assert list(result.failures) == ["XXXX"]
    assert result.failures["XXXX"].startswith("no data returned")
    assert "no price data found" in result.failures["XXXX"]
    assert sleeps == []  # a missing symbol is permanent: no retry


def test_all_nan_ticker_without_a_log_line_is_no_data_returned():
    raw, _ = load_case("partial")
    p, _ = provider(lambda tickers, **kw: raw)
    result = p.fetch_prices(["AAPL", "XXXX", "MSFT"], START, END)
    assert result.failures == {"XXXX": "no data returned"}


def test_rate_limit_then_success_retries_with_backoff():
    replay = Replay("rate_limited", "multi_column")
    p, sleeps = provider(replay, backoff_base=1.0)
    result = p.fetch_prices(["AAPL", "MSFT", "SPY"], START, END)
    assert result.failures == {}
    assert set(result.frame["symbol"]) == {"AAPL", "MSFT", "SPY"}
    assert len(replay.calls) == 2
    assert len(sleeps) == 1
    # first retry: base 1 s, doubled for a rate limit, plus jitter in [0, 2]
    assert 2.0 <= sleeps[0] <= 4.0


def test_retry_asks_again_only_for_the_transiently_failed_tickers():
    """Real ``yfinance.download`` (offline): AAPL is rate limited once, XXXX does not exist."""
    import yfinance

    calls: list[list[str]] = []
    state = {"n": 0}

    class Flaky(rec.FakeYahooTicker):
        behaviour = {"XXXX": "missing"}

        def history(self, *args, **kwargs):
            if self.ticker == "AAPL" and state["n"] == 0:
                state["n"] += 1
                from yfinance.exceptions import YFRateLimitError

                raise YFRateLimitError()
            return super().history(*args, **kwargs)

    def downloader(tickers, **kwargs):
        calls.append(sorted(tickers))
        return yfinance.download(tickers=tickers, **kwargs)

    import yfinance.multi
    from unittest import mock

    with mock.patch.object(yfinance.multi, "Ticker", Flaky):
        p, sleeps = provider(downloader)
        result = p.fetch_prices(["AAPL", "MSFT", "XXXX"], START, END)
    assert calls == [["AAPL", "MSFT", "XXXX"], ["AAPL"]]
    assert set(result.frame["symbol"]) == {"AAPL", "MSFT"}
    assert list(result.failures) == ["XXXX"] and "no data returned" in result.failures["XXXX"]
    assert len(sleeps) == 1


def test_empty_response_is_per_symbol_failure_not_an_outage():
    p, sleeps = provider(Replay("empty"))
    result = p.fetch_prices(["NOPE1", "NOPE2"], START, END)
    assert result.frame.empty and list(result.frame.columns) == PRICE_COLUMNS
    assert set(result.failures) == {"NOPE1", "NOPE2"}
    assert all(r.startswith("no data returned") for r in result.failures.values())
    assert sleeps == []


def test_unreachable_yahoo_raises_one_provider_unavailable_error():
    replay = Replay("unreachable")
    p, sleeps = provider(replay, max_retries=3, backoff_base=0.5)
    with pytest.raises(ProviderUnavailableError) as info:
        p.fetch_prices(["AAPL", "MSFT"], START, END)
    err = info.value
    assert err.provider == "yfinance"
    assert "unreachable" in err.reason and "Could not resolve host" in err.reason
    assert len(replay.calls) == 4  # 1 + max_retries
    assert len(sleeps) == 3
    for n, s in enumerate(sleeps):  # exponential with jitter: base·2ⁿ ≤ wait ≤ 2·base·2ⁿ
        assert 0.5 * 2**n <= s <= 2 * 0.5 * 2**n


def test_every_batch_unreachable_raises_even_with_many_batches():
    def down(tickers, **kwargs):
        from curl_cffi.requests.exceptions import ConnectionError as CurlConnectionError

        raise CurlConnectionError("Failed to perform, curl: (7) Couldn't connect to server")

    p, _ = provider(down, batch_size=2, max_retries=1)
    with pytest.raises(ProviderUnavailableError, match="in 3 batch"):
        p.fetch_prices(["A", "B", "C", "D", "E"], START, END)


def test_rate_limit_exception_from_downloader_is_retried():
    from yfinance.exceptions import YFRateLimitError

    replay = Replay("multi_column")
    state = {"n": 0}

    def down(tickers, **kwargs):
        state["n"] += 1
        if state["n"] == 1:
            raise YFRateLimitError()
        return replay(tickers, **kwargs)

    p, sleeps = provider(down)
    result = p.fetch_prices(["AAPL", "MSFT", "SPY"], START, END)
    assert result.failures == {} and state["n"] == 2 and len(sleeps) == 1


def test_rate_limit_exhausted_is_an_outage():
    p, sleeps = provider(Replay("rate_limited"), max_retries=2)
    with pytest.raises(ProviderUnavailableError, match="rate limited"):
        p.fetch_prices(["AAPL", "MSFT", "SPY"], START, END)
    assert len(sleeps) == 2


def test_a_failing_batch_does_not_sink_the_others():
    raw, _ = load_case("multi_column")

    def down(tickers, **kwargs):
        if "BAD" in tickers:
            raise KeyError("chart")  # a permanent error inside yfinance
        return raw

    p, sleeps = provider(down, batch_size=2)
    result = p.fetch_prices(["AAPL", "MSFT", "BAD", "SPY"], START, END)
    assert set(result.frame["symbol"]) == {"AAPL", "MSFT"}
    # SPY shared the failing batch with BAD
    assert set(result.failures) == {"BAD", "SPY"}
    assert result.failures["BAD"].startswith("download failed: KeyError")
    assert sleeps == []


def test_one_symbol_transient_others_fine_is_not_an_outage():
    raw, _ = load_case("partial")

    def down(tickers, **kwargs):
        logging.getLogger("yfinance").error(
            "['XXXX']: DNSError('Failed to perform, curl: (6) Could not resolve host: x')"
        )
        return raw

    p, sleeps = provider(down, max_retries=1)
    result = p.fetch_prices(["AAPL", "XXXX", "MSFT"], START, END)
    assert set(result.frame["symbol"]) == {"AAPL", "MSFT"}
    assert result.failures["XXXX"].startswith("connection error after 2 attempt(s)")


def frame_like_yfinance(tickers, start, end) -> pd.DataFrame:
    """Assemble per-ticker history frames the way ``yfinance.download`` does (group_by='column')."""
    dfs = {t: rec.history_frame(t, start, end) for t in tickers}
    for df in dfs.values():
        df.index = df.index.tz_localize(None)
    data = pd.concat(dfs.values(), axis=1, sort=True, keys=dfs.keys(), names=["Ticker", "Price"])
    data.columns = data.columns.swaplevel(0, 1)
    return data.sort_index(level=0, axis=1)


def test_batches_and_bounded_concurrency():
    symbols = [f"S{i:03d}" for i in range(250)]
    in_flight, peak, calls = [0], [0], []
    lock = threading.Lock()

    def down(tickers, start, end, **kwargs):
        with lock:
            calls.append(list(tickers))
            in_flight[0] += 1
            peak[0] = max(peak[0], in_flight[0])
        time.sleep(0.05)
        try:
            return frame_like_yfinance(tickers, start, end)
        finally:
            with lock:
                in_flight[0] -= 1

    p, _ = provider(down, batch_size=50, max_workers=2)
    result = p.fetch_prices(symbols, START, END)
    assert sorted(len(c) for c in calls) == [50] * 5
    assert sorted(s for c in calls for s in c) == symbols  # each symbol asked exactly once
    assert peak[0] == 2
    assert result.failures == {} and result.frame["symbol"].nunique() == 250


def test_duplicates_tz_aware_index_zero_prices_and_missing_adj_close():
    idx = pd.DatetimeIndex(
        ["2024-01-02", "2024-01-03", "2024-01-03", "2024-01-04"], name="Date"
    ).tz_localize("America/New_York")
    raw = pd.DataFrame(
        {"Open": [10.0, np.nan, 11.0, 12.0], "High": [10.5, 11.6, np.nan, 12.5],
         "Low": [9.5, 10.4, 10.5, 11.5], "Close": [10.0, 11.0, 11.2, 0.0],
         "Volume": [100, 200, 300, 400]},
        index=idx,
    )
    raw.columns = pd.MultiIndex.from_product([raw.columns, ["ABC"]], names=["Price", "Ticker"])
    f = normalise_download(raw, ["ABC"])
    assert list(f["date"]) == list(pd.to_datetime(["2024-01-02", "2024-01-03", "2024-01-04"]))
    jan3 = f.iloc[1]
    # duplicates collapse keeping the last non-missing value per column
    assert (jan3["open"], jan3["high"], jan3["close"], jan3["volume"]) == (11.0, 11.6, 11.2, 300.0)
    # no Adj Close column (auto-adjusted data): adj_close is the close
    np.testing.assert_array_equal(f["adj_close"], f["close"])
    # a zero price is bad data: NaN, never a zero price
    assert np.isnan(f.iloc[2]["close"]) and f.iloc[2]["open"] == 12.0


@pytest.mark.parametrize("names", [["Ticker", "Price"], [None, None]])
def test_tickers_that_look_like_field_names(names):
    """Lowe's trades as LOW and Opendoor as OPEN: the ticker level must not be read as fields."""
    idx = pd.DatetimeIndex(["2024-01-02", "2024-01-03"], name="Date")
    fields = ["Open", "Close", "Adj Close", "Dividends", "Stock Splits"]
    cols = pd.MultiIndex.from_product([["LOW", "OPEN"], fields], names=names)
    values = np.zeros((2, 10))
    values[:, [0, 1, 2, 5, 6, 7]] = np.arange(1.0, 13.0).reshape(2, 6)
    raw = pd.DataFrame(values, index=idx, columns=cols)
    f = normalise_download(raw, ["LOW", "OPEN"])
    low = f[f["symbol"] == "LOW"]
    assert list(low["open"]) == [1.0, 7.0] and list(low["close"]) == [2.0, 8.0]
    assert list(low["adj_close"]) == [3.0, 9.0] and list(low["split_ratio"]) == [1.0, 1.0]


def test_utc_stamped_index_keeps_the_session_date():
    idx = pd.DatetimeIndex(["2024-01-02 05:00", "2024-01-03 05:00"], tz="UTC", name="Date")
    raw = pd.DataFrame({("Close", "ABC"): [1.0, 2.0], ("Adj Close", "ABC"): [1.0, 2.0]}, index=idx)
    f = normalise_download(raw, ["ABC"])
    assert list(f["date"]) == list(pd.to_datetime(["2024-01-02", "2024-01-03"]))


def test_flat_columns_for_several_symbols_is_an_unrecognised_layout():
    raw, _ = load_case("single")
    flat = raw.droplevel("Ticker", axis=1)
    p, _ = provider(lambda tickers, **kw: flat)
    result = p.fetch_prices(["SPY", "TLT"], START, END)
    assert result.frame.empty
    assert result.failures["TLT"].startswith("unrecognised yfinance response")


def test_requested_spelling_and_date_range_filter():
    raw, _ = load_case("multi_column")
    p, _ = provider(lambda tickers, **kw: raw)
    result = p.fetch_prices(["aapl"], date(2024, 1, 3), date(2024, 1, 5))
    assert set(result.frame["symbol"]) == {"aapl"}
    assert result.frame["date"].min() == pd.Timestamp("2024-01-03")
    assert result.frame["date"].max() == pd.Timestamp("2024-01-05")


# ------------------------------------------------------------------------------------------------
# Corporate actions: Yahoo's split-adjusted history turned back into prices as traded
# ------------------------------------------------------------------------------------------------

HISTORY_FETCH = date(2021, 7, 23)
H_START, H_END = (pd.Timestamp(d).date() for d in rec.HISTORY_RANGE)
TRADED = ["open", "high", "low", "close", "volume", "dividend", "split_ratio"]


def traded(ticker: str, start, end) -> pd.DataFrame:
    """The fixture's history as traded (before Yahoo adjusts it), in the provider's columns."""
    t = rec.traded_history(ticker)
    t = t[(t.index >= pd.Timestamp(start)) & (t.index <= pd.Timestamp(end))]
    return pd.DataFrame({
        "date": t.index.to_numpy(), "open": t["Open"].to_numpy(), "high": t["High"].to_numpy(),
        "low": t["Low"].to_numpy(), "close": t["Close"].to_numpy(), "volume": t["Volume"].to_numpy(dtype=float),
        "dividend": t["dividend"].to_numpy(), "split_ratio": t["split"].where(t["split"] > 0, 1.0).to_numpy(),
    })


def test_recorded_history_is_split_adjusted_like_yahoo():
    raw, _ = load_case("actions_history")
    # AAPL traded at 499.23 the day before its 4:1 split; Yahoo, a year later, says about 124.81
    assert raw.loc["2020-08-28", ("Close", "AAPL")] == pytest.approx(499.23 / 4, abs=1e-4)
    assert raw.loc["2020-08-31", ("Stock Splits", "AAPL")] == 4.0
    # NVDA's dividend of 0.16 (2020-08-27) is per current share after its 2021 split: 0.04
    assert raw.loc["2020-08-27", ("Dividends", "NVDA")] == pytest.approx(0.04, abs=1e-7)
    assert raw.loc["2021-07-20", ("Stock Splits", "NVDA")] == 4.0
    assert raw.index.max() == pd.Timestamp(HISTORY_FETCH)  # the request ran up to the fetch date


def test_history_fetch_stores_prices_as_traded():
    """A history fetch of 2020-08-17..09-04 made on 2021-07-23: every row equals what traded that
    day: AAPL's 4:1 split inside the range, NVDA's dividend inside and its split after the range end
    (known only because the request runs to the fetch date), AMZN with no action at all."""
    replay = Replay("actions_history")
    p, _ = provider(replay, today=lambda: HISTORY_FETCH)
    result = p.fetch_prices(["AAPL", "NVDA", "AMZN"], H_START, H_END)
    assert result.failures == {}
    call = replay.calls[0]
    assert (call["start"], call["end"]) == ("2020-08-17", "2021-07-24")  # extended to the fetch date
    assert call["actions"] is True and call["auto_adjust"] is False
    f = result.frame
    assert f["date"].min() == pd.Timestamp(H_START) and f["date"].max() == pd.Timestamp(H_END)
    for ticker in ("AAPL", "NVDA", "AMZN"):
        got = f[f["symbol"] == ticker].reset_index(drop=True)
        want = traded(ticker, H_START, H_END)
        pd.testing.assert_frame_equal(got[["date", *TRADED]], want, check_exact=True, check_dtype=False)
    aapl = f[f["symbol"] == "AAPL"].set_index("date")
    assert (aapl.loc["2020-08-28", "close"], aapl.loc["2020-08-31", "close"]) == (499.23, 129.04)
    assert aapl.loc["2020-08-31", "split_ratio"] == 4.0
    nvda = f[f["symbol"] == "NVDA"].set_index("date")
    assert nvda.loc["2020-08-27", "dividend"] == 0.16
    assert (f.loc[f["symbol"] == "AMZN", ["dividend", "split_ratio"]] == [0.0, 1.0]).all().all()
    # adj_close is Yahoo's, adjusted as of the fetch (a convenience column)
    raw, _ = load_case("actions_history")
    np.testing.assert_allclose(aapl["adj_close"], raw.loc[H_START.isoformat():H_END.isoformat(), ("Adj Close", "AAPL")],
                               atol=5e-5)


@pytest.mark.parametrize("case, day", [("actions_nightly_0827", date(2020, 8, 27)),
                                       ("actions_nightly_0831", date(2020, 8, 31))])
def test_nightly_fetch_equals_a_later_history_fetch(case, day):
    """Day D fetched on the night of D (as traded) and fetched again in a history a year later, after
    NVDA's 4:1 split: the same raw open/high/low/close, volume, dividend and split ratio."""
    nightly = provider(Replay(case), today=lambda: day)[0].fetch_prices(["AAPL", "NVDA", "AMZN"], day, day)
    history = provider(Replay("actions_history"), today=lambda: HISTORY_FETCH)[0].fetch_prices(
        ["AAPL", "NVDA", "AMZN"], H_START, H_END)
    later = history.frame[history.frame["date"] == pd.Timestamp(day)].reset_index(drop=True)
    assert len(nightly.frame) == 3
    pd.testing.assert_frame_equal(nightly.frame[["date", "symbol", *TRADED]], later[["date", "symbol", *TRADED]],
                                  check_exact=True)
    raw_night, _ = load_case(case)
    raw_later, _ = load_case("actions_history")
    # ...although Yahoo sent different numbers for NVDA that day
    assert raw_night.loc[day.isoformat(), ("Close", "NVDA")] != raw_later.loc[day.isoformat(), ("Close", "NVDA")]


def test_a_split_after_the_last_bar_is_not_applied():
    """yfinance adds an event-only row for a split dated after the last bar (announced, not yet in
    Yahoo's prices): it must not scale the history."""
    idx = pd.DatetimeIndex(["2024-06-06", "2024-06-07", "2024-06-10"], name="Date")
    raw = pd.DataFrame({"Open": [1200.0, 1210.0, np.nan], "High": [1210.0, 1215.0, np.nan],
                        "Low": [1190.0, 1200.0, np.nan], "Close": [1209.0, 1208.9, np.nan],
                        "Adj Close": [1209.0, 1208.9, np.nan], "Volume": [400_000, 410_000, 0],
                        "Dividends": [0.0, 0.0, 0.0], "Stock Splits": [0.0, 0.0, 10.0]}, index=idx)
    raw.columns = pd.MultiIndex.from_product([raw.columns, ["NVDA"]], names=["Price", "Ticker"])
    f = normalise_download(raw, ["NVDA"])
    assert list(f["close"]) == [1209.0, 1208.9] and list(f["split_ratio"]) == [1.0, 1.0]
    assert list(f["volume"]) == [400_000.0, 410_000.0]


def test_without_actions_the_row_is_on_the_adjusted_basis():
    """A downloader that returns no Dividends/Stock Splits: actions unknown (NaN), close = Adj Close and
    open/high/low scaled alike, so returns are on the adjusted basis."""
    idx = pd.DatetimeIndex(["2024-01-02", "2024-01-03"], name="Date")
    raw = pd.DataFrame({"Open": [100.0, 102.0], "High": [101.0, 103.0], "Low": [99.0, 100.0],
                        "Close": [100.0, 102.0], "Adj Close": [98.0, 99.96], "Volume": [10, 20]}, index=idx)
    raw.columns = pd.MultiIndex.from_product([raw.columns, ["ABC"]], names=["Price", "Ticker"])
    f = normalise_download(raw, ["ABC"])
    assert f["dividend"].isna().all() and f["split_ratio"].isna().all()
    assert list(f["close"]) == [98.0, 99.96] and list(f["adj_close"]) == [98.0, 99.96]
    assert list(f["open"]) == [98.0, 99.96] and list(f["high"]) == [98.98, 100.94]


# ------------------------------------------------------------------------------------------------
# Error classification and log parsing
# ------------------------------------------------------------------------------------------------


def _curl(name):
    import curl_cffi.requests.exceptions as e

    return getattr(e, name)("boom")


@pytest.mark.parametrize(
    "error, kind",
    [
        (lambda: __import__("yfinance.exceptions").exceptions.YFRateLimitError(), "rate_limit"),
        (lambda: Exception("429 Client Error: Too Many Requests for url"), "rate_limit"),
        (lambda: RuntimeError("Rate limited. Try after a while."), "rate_limit"),
        (lambda: _curl("DNSError"), "connection"),
        (lambda: _curl("Timeout"), "connection"),
        (lambda: __import__("requests").exceptions.ConnectionError("refused"), "connection"),
        (lambda: TimeoutError("read timed out"), "connection"),
        (lambda: ConnectionResetError(104, "Connection reset by peer"), "connection"),
        (lambda: __import__("yfinance.exceptions").exceptions.YFPricesMissingError("X", ""), None),
        (lambda: ValueError("bad"), None),
        (lambda: KeyError("chart"), None),
        (lambda: FileNotFoundError("x.csv"), None),
    ],
)
def test_classify_error_exceptions(error, kind):
    assert classify_error(error()) == kind


def test_classify_error_http_status():
    class Resp:
        def __init__(self, code):
            self.status_code = code

    class HTTPError(OSError):
        def __init__(self, code):
            super().__init__(f"HTTP {code}")
            self.response = Resp(code)

    assert classify_error(HTTPError(429)) == "rate_limit"
    assert classify_error(HTTPError(503)) == "connection"
    assert classify_error(HTTPError(404)) is None


@pytest.mark.parametrize(
    "text, kind",
    [
        ("YFRateLimitError('Too Many Requests. Rate limited. Try after a while.')", "rate_limit"),
        ("DNSError('Failed to perform, curl: (6) Could not resolve host: query2.finance.yahoo.com')", "connection"),
        ("ReadTimeout('timed out')", "connection"),
        ("YFPricesMissingError('possibly delisted; no price data found')", None),
        ("YFTzMissingError('possibly delisted; no timezone found')", None),
    ],
)
def test_classify_error_logged_text(text, kind):
    assert classify_error(text) == kind


def test_parse_logged_errors():
    msgs = [
        "Failed to get ticker 'MSFT' reason: Failed to perform, curl: (6) Could not resolve host",
        "\n2 Failed downloads:",
        "['AAPL', 'XXXX']: YFPricesMissingError('possibly delisted; no price data found')",
    ]
    out = parse_logged_errors(msgs)
    assert set(out) == {"MSFT", "AAPL", "XXXX"}
    assert out["AAPL"].startswith("YFPricesMissingError")
    assert "Could not resolve host" in out["MSFT"]


# ------------------------------------------------------------------------------------------------
# Valuations
# ------------------------------------------------------------------------------------------------


def info_of(symbol: str) -> dict:
    return json.loads((FIX / f"info_{symbol}.json").read_text())


class FakeTicker:
    calls: list[str] = []

    def __init__(self, symbol):
        FakeTicker.calls.append(symbol)
        self.symbol = symbol

    @property
    def info(self):
        return info_of(self.symbol)


@pytest.fixture
def fake_ticker():
    FakeTicker.calls = []
    return FakeTicker


def test_valuations_snapshot_for_the_latest_session(fake_ticker):
    p, _ = provider(lambda **kw: pytest.fail("no download"), fake_ticker, today=lambda: date(2024, 1, 12))
    result = p.fetch_valuations(["AAPL", "SPY", "XXXX"], START, END)
    f = result.frame.set_index("symbol")
    assert list(result.frame.columns) == VALUATION_COLUMNS
    assert (f["date"] == pd.Timestamp("2024-01-12")).all() and (f["source"] == "yfinance").all()
    assert f.loc["AAPL", "pe"] == 30.12 and f.loc["AAPL", "forward_pe"] == 28.4
    assert f.loc["AAPL", "provider_beta"] == 1.29 and f.loc["AAPL", "market_cap"] == 2.875e12
    assert f.loc["AAPL", "week52_high"] == 199.62 and f.loc["AAPL", "week52_low"] == 124.17
    assert f.loc["AAPL", "dividend_yield"] == pytest.approx(0.0052)  # 0.52 % points → fraction
    assert f.loc["SPY", "provider_beta"] == 1.0  # ETF: beta3Year
    assert f.loc["SPY", "dividend_yield"] == pytest.approx(0.0136)
    assert np.isnan(f.loc["SPY", "market_cap"]) and np.isnan(f.loc["SPY", "forward_pe"])  # NaN, not 0
    assert result.failures == {"XXXX": "no valuation data returned"}


def test_valuations_on_a_weekend_use_the_last_session(fake_ticker):
    p, _ = provider(lambda **kw: None, fake_ticker, today=lambda: date(2024, 1, 13))
    result = p.fetch_valuations(["AAPL"], date(2024, 1, 8), date(2024, 1, 14))
    assert list(result.frame["date"]) == [pd.Timestamp("2024-01-12")]


def test_yesterdays_partition_still_gets_the_snapshot(fake_ticker):
    p, _ = provider(lambda **kw: None, fake_ticker, today=lambda: date(2024, 1, 16))  # Tue after MLK day
    result = p.fetch_valuations(["AAPL"], date(2024, 1, 12), date(2024, 1, 12))
    assert list(result.frame["date"]) == [pd.Timestamp("2024-01-12")]


def test_historical_valuation_backfill_is_skipped_not_faked(fake_ticker):
    p, _ = provider(lambda **kw: None, fake_ticker, today=lambda: date(2024, 6, 3))
    result = p.fetch_valuations(["AAPL", "SPY"], START, END)
    assert result.frame.empty and list(result.frame.columns) == VALUATION_COLUMNS
    assert result.failures == {} and set(result.skipped) == {"AAPL", "SPY"}  # not an error
    assert "current valuation snapshot" in result.skipped["AAPL"]
    assert fake_ticker.calls == []  # nothing fetched for a past date


def test_valuation_rate_limit_is_retried_and_outage_raises():
    from yfinance.exceptions import YFRateLimitError

    state = {"n": 0}

    class Flaky:
        def __init__(self, symbol):
            self.symbol = symbol

        @property
        def info(self):
            state["n"] += 1
            if state["n"] == 1:
                raise YFRateLimitError()
            return info_of("AAPL")

    p, sleeps = provider(lambda **kw: None, Flaky, today=lambda: date(2024, 1, 12))
    result = p.fetch_valuations(["AAPL"], START, END)
    assert len(result.frame) == 1 and len(sleeps) == 1

    class Down:
        def __init__(self, symbol):
            pass

        @property
        def info(self):
            from curl_cffi.requests.exceptions import DNSError

            raise DNSError("Could not resolve host: query2.finance.yahoo.com")

    p, sleeps = provider(lambda **kw: None, Down, today=lambda: date(2024, 1, 12), max_retries=1)
    with pytest.raises(ProviderUnavailableError, match="yfinance"):
        p.fetch_valuations(["AAPL", "SPY"], START, END)


def test_valuation_permanent_error_is_a_per_symbol_failure():
    class Broken:
        def __init__(self, symbol):
            self.symbol = symbol

        @property
        def info(self):
            if self.symbol == "BAD":
                raise KeyError("quoteSummary")
            return info_of("AAPL")

    p, sleeps = provider(lambda **kw: None, Broken, today=lambda: date(2024, 1, 12))
    result = p.fetch_valuations(["AAPL", "BAD"], START, END)
    assert list(result.frame["symbol"]) == ["AAPL"]
    assert result.failures["BAD"].startswith("info failed: KeyError") and sleeps == []


@pytest.mark.parametrize(
    "info, expected",
    [
        ({"dividendYield": 0.52}, 0.0052),  # yfinance ≥ 0.2.54 / 1.7: percent points
        ({"dividendYield": 0.35, "dividendRate": 0.96, "currentPrice": 274.0}, 0.0035),
        ({"dividendYield": 0.0035, "dividendRate": 0.96, "currentPrice": 274.0}, 0.0035),  # old unit
        ({"dividendYield": 2.59, "trailingAnnualDividendYield": 0.0262}, 0.0259),
        ({"dividendYield": 0.0259, "trailingAnnualDividendYield": 0.0262}, 0.0259),
        ({"yield": 0.0136}, 0.0136),  # funds
        ({"dividendYield": 0}, 0.0),
        ({}, float("nan")),
        ({"dividendYield": "Infinity"}, float("nan")),
    ],
)
def test_dividend_yield_is_a_decimal_fraction(info, expected):
    got = normalise_dividend_yield(info)
    if np.isnan(expected):
        assert np.isnan(got)
    else:
        assert got == pytest.approx(expected)


# ------------------------------------------------------------------------------------------------
# Wiring
# ------------------------------------------------------------------------------------------------


def test_defaults_are_yfinance_functions_and_protocol_is_met():
    import yfinance

    p = YFinanceProvider()
    assert p.downloader is yfinance.download and p.ticker_factory is yfinance.Ticker
    assert p.sleep is time.sleep
    assert (p.batch_size, p.max_workers, p.max_retries, p.backoff_base) == (100, 4, 4, 1.0)
    assert isinstance(p, MarketDataProvider) and p.name == "yfinance"


def test_real_download_offline_end_to_end():
    """The default code path: the real ``yfinance.download`` with the per-ticker fetch faked."""
    import yfinance

    with rec.fake_yahoo({"XXXX": "missing"}):
        p, sleeps = provider(yfinance.download)
        result = p.fetch_prices(["AAPL", "XXXX", "SPY"], START, END)
    assert set(result.frame["symbol"]) == {"AAPL", "SPY"}
    assert "no price data found" in result.failures["XXXX"]
    with rec.fake_yahoo({"AAPL": "dns", "SPY": "dns"}):
        p, sleeps = provider(yfinance.download, max_retries=1)
        with pytest.raises(ProviderUnavailableError, match="Could not resolve host"):
            p.fetch_prices(["AAPL", "SPY"], START, END)


def test_symbol_returns_of_the_recorded_real_path(warehouse):
    """The real-data path end to end, offline: the recorded history fetch (made a year later, after
    NVDA's split) stored as prices gives point-in-time total returns — AAPL's 4:1 split day is
    4 × 129.04 / 499.23 − 1, not −74 %; NVDA's ex-dividend day includes its 0.16 — and replacing the
    split and dividend days by the rows fetched on their own nights changes no return."""
    from sigmasight_assets import calendar
    from sigmasight_assets.pipelines.io import write_partitions
    from sigmasight_assets.pipelines.returns import returns_frame

    history = provider(Replay("actions_history"), today=lambda: HISTORY_FETCH)[0].fetch_prices(
        ["AAPL", "NVDA", "AMZN"], H_START, H_END).frame
    days = calendar.sessions(H_START, H_END)
    write_partitions(warehouse, "prices", history, days[0], days[-1])
    got = returns_frame(warehouse, days[1:], None).set_index(["date", "symbol"])
    assert got.loc[(pd.Timestamp("2020-08-31"), "AAPL"), "total_return"] == pytest.approx(4 * 129.04 / 499.23 - 1,
                                                                                           abs=1e-12)
    nvda = traded("NVDA", H_START, H_END).set_index("date")["close"]
    want = (nvda.loc["2020-08-27"] + 0.16) / nvda.loc["2020-08-26"] - 1
    assert got.loc[(pd.Timestamp("2020-08-27"), "NVDA"), "total_return"] == pytest.approx(want, abs=1e-12)
    assert (got["return_basis"] == "total").all() and got["total_return"].notna().all()
    for case, day in (("actions_nightly_0827", date(2020, 8, 27)), ("actions_nightly_0831", date(2020, 8, 31))):
        nightly = provider(Replay(case), today=lambda d=day: d)[0].fetch_prices(["AAPL", "NVDA", "AMZN"], day, day)
        write_partitions(warehouse, "prices", nightly.frame, day, day)
    again = returns_frame(warehouse, days[1:], None).set_index(["date", "symbol"])
    pd.testing.assert_series_equal(again["total_return"], got["total_return"], check_exact=True)
