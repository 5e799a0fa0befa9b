"""Chunking and worker settings of the portfolio analytics (``portfolio_batch``, ``config.workers``)."""

from __future__ import annotations

import os
import pickle

import pandas as pd
import pytest

from sigmasight_assets import calendar, config, portfolio_batch
from sigmasight_assets.scenarios import load_scenarios


def test_workers_default_to_the_cores_and_reject_bad_values(monkeypatch):
    monkeypatch.delenv("SIGMASIGHT_WORKERS", raising=False)
    assert config.workers() == (os.cpu_count() or 1)
    monkeypatch.setenv("SIGMASIGHT_WORKERS", "3")
    assert config.workers() == 3
    assert portfolio_batch.worker_count(2) == 2  # never more processes than chunks
    assert portfolio_batch.worker_count(10) == 3
    for bad in ("0", "-1", "two", "1.5"):
        monkeypatch.setenv("SIGMASIGHT_WORKERS", bad)
        with pytest.raises(config.ConfigError, match="SIGMASIGHT_WORKERS"):
            config.workers()


def test_chunks_are_sized_by_portfolio_days_and_cover_the_range_once():
    assert portfolio_batch.chunk_days(10_000) == 3
    assert portfolio_batch.chunk_days(4) == portfolio_batch.MAX_CHUNK_DAYS
    assert portfolio_batch.chunk_days(0) == portfolio_batch.MAX_CHUNK_DAYS
    assert portfolio_batch.chunk_days(1_000_000) == 1


def test_the_chunk_budget_is_configurable_and_validated(monkeypatch):
    monkeypatch.setenv("SIGMASIGHT_CHUNK_PORTFOLIO_DAYS", "20000")
    assert portfolio_batch.chunk_days(10_000) == 2
    for bad in ("0", "lots"):
        monkeypatch.setenv("SIGMASIGHT_CHUNK_PORTFOLIO_DAYS", bad)
        with pytest.raises(config.ConfigError, match="SIGMASIGHT_CHUNK_PORTFOLIO_DAYS"):
            portfolio_batch.chunk_days(10_000)
    days = calendar.sessions("2025-01-02", "2025-03-31")
    chunks = calendar.chunks(days, 7)
    assert [len(c) for c in chunks[:-1]] == [7] * (len(chunks) - 1) and 1 <= len(chunks[-1]) <= 7
    assert pd.DatetimeIndex(pd.concat([c.to_series() for c in chunks])).equals(days)


def test_the_scenario_set_survives_the_trip_to_a_worker():
    s = load_scenarios(None)
    back = pickle.loads(pickle.dumps(s))
    assert back == s and [x.id for x in back.active] == [x.id for x in s.active]
    assert dict(back.scenarios[0].shocks) == dict(s.scenarios[0].shocks)
    with pytest.raises(TypeError):  # still read-only after unpickling
        back.scenarios[0].shocks["Market"] = 1.0


def test_a_process_reuses_its_last_price_window_and_equals_fresh_reads(tmp_path, monkeypatch):
    """Consecutive chunks of a run read only their new sessions; every window equals a fresh read,
    including a window that moves backwards, other symbols and another run's token."""
    import numpy as np

    from sigmasight_assets.warehouse import Warehouse

    wh = Warehouse(f"sqlite:///{tmp_path / 'px.sqlite'}")
    wh.create_all()
    days = calendar.sessions("2025-01-02", "2025-02-28")
    rng = np.random.default_rng(3)
    rows = pd.DataFrame([(d, s) for d in days for s in ("AAA", "BBB", "CCC")], columns=["date", "symbol"])
    rows["close"] = rng.uniform(10, 20, len(rows))
    rows["adj_close"] = rows["close"] * 0.99
    rows = rows.drop(index=[4, 17, 30])  # missing prices stay missing
    rows["source"] = "test"
    wh.replace_partitions("prices", rows, days[0], days[-1])

    reads = []
    real = portfolio_batch._pivot_prices
    monkeypatch.setattr(portfolio_batch, "_pivot_prices", lambda w, s, sess: reads.append(len(sess)) or real(w, s, sess))
    symbols = ["AAA", "BBB", "CCC", "ZZZ"]  # ZZZ has no prices: an all-NaN column
    windows = [(0, 20, symbols, "run1"), (3, 23, symbols, "run1"), (3, 23, symbols, "run1"), (6, 29, symbols, "run1"),
               (1, 25, symbols, "run1"), (2, 26, ["AAA", "BBB"], "run1"), (3, 27, ["AAA", "BBB"], "run2")]
    for a, b, syms, token in windows:
        close, adj = portfolio_batch._read_prices(wh, syms, days[a], days[b], token)
        fresh_close, fresh_adj = real(wh, syms, calendar.sessions(days[a], days[b]))
        pd.testing.assert_frame_equal(close, fresh_close, check_freq=False)
        pd.testing.assert_frame_equal(adj, fresh_adj, check_freq=False)
    # full, +3 new, nothing new, +6 new, backwards → full, other symbols → full, other run → full
    assert reads == [21, 3, 6, 25, 25, 25]


def test_the_daily_executor_adds_the_memory_limit_to_multiprocess_runs_only():
    from sigmasight_assets.defs import jobs

    limit = [{"key": "sigmasight/memory", "value": "heavy", "limit": 1}]
    assert jobs.MEMORY_LIMITS == limit
    assert jobs._memory_limited(None) == {"multiprocess": {"tag_concurrency_limits": limit}}
    assert jobs._memory_limited({"multiprocess": {"max_concurrent": 4}}) == {
        "multiprocess": {"max_concurrent": 4, "tag_concurrency_limits": limit}}
    assert jobs._memory_limited({"in_process": {}}) == {"in_process": {}}  # the sensors' runs
    own = [{"key": "x", "value": "y", "limit": 2}]
    assert jobs._memory_limited({"multiprocess": {"tag_concurrency_limits": own}}) == {
        "multiprocess": {"tag_concurrency_limits": own}}  # an explicit setting wins
    assert jobs.daily_graph_job.executor_def is jobs.daily_executor
