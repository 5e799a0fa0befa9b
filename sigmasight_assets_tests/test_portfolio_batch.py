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
