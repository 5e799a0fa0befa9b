"""The portfolio pipeline's bounded batches and atomic writes (``pipelines.portfolio``, no Dagster).

* ``plan``: chunks of days and batches of portfolios that never exceed the portfolio-day budget;
* the budget setting is validated with one line naming it;
* ``Warehouse.replace_staged``: parts inserted one at a time inside one transaction — a part that
  fails leaves every table as it was;
* ``delete_portfolio_rows``: a removed portfolio's rows leave every portfolio table, all days.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sigmasight_assets import calendar, config
from sigmasight_assets.pipelines import portfolio
from sigmasight_assets.warehouse import StagedReplacement, Warehouse


def test_plan_bounds_every_batch_by_the_portfolio_day_budget():
    days = calendar.sessions("2025-01-02", "2025-03-31")
    for n, budget in ((10_000, 30_000), (100_000, 30_000), (4, 30_000), (0, 30_000), (1_000_000, 30_000), (7, 10)):
        chunks, per_batch = portfolio.plan(days, n, budget)
        assert pd.DatetimeIndex(pd.concat([c.to_series() for c in chunks])).equals(days)  # every day once
        assert all(1 <= len(c) <= portfolio.MAX_CHUNK_DAYS for c in chunks)
        batches = -(-max(n, 1) // per_batch)
        assert max(len(c) for c in chunks) * min(per_batch, max(n, 1)) <= budget, (n, budget)  # portfolio-days
        if n > budget:
            assert max(len(c) for c in chunks) == 1 and batches == -(-n // budget)  # one-day chunks, several batches
    assert portfolio.plan(days, 10_000)[1] == 10_000 and len(portfolio.plan(days, 10_000)[0][0]) == 2
    assert portfolio.plan(days, 100_000)[1] == 20_000


def test_the_batch_budget_is_a_validated_setting(monkeypatch):
    monkeypatch.delenv("SIGMASIGHT_BATCH_PORTFOLIO_DAYS", raising=False)
    assert config.batch_portfolio_days(30_000) == 30_000
    monkeypatch.setenv("SIGMASIGHT_BATCH_PORTFOLIO_DAYS", "20000")
    assert config.batch_portfolio_days(30_000) == 20_000
    for bad in ("0", "lots", "-5"):
        monkeypatch.setenv("SIGMASIGHT_BATCH_PORTFOLIO_DAYS", bad)
        with pytest.raises(config.ConfigError, match="SIGMASIGHT_BATCH_PORTFOLIO_DAYS"):
            config.batch_portfolio_days(30_000)


def test_the_book_index_holds_ids_and_symbols_and_batches_partition_the_ids(tmp_path):
    from sigmasight_assets.ledger import parse_ledger
    from sigmasight_assets.warehouse.ledger import store_ledger

    from .conftest import SAMPLE_FLOWS, SAMPLE_POSITIONS

    wh = Warehouse(f"sqlite:///{tmp_path / 'w.sqlite'}")
    wh.create_all()
    store_ledger(wh, parse_ledger(SAMPLE_POSITIONS, SAMPLE_FLOWS))
    index = portfolio.read_book_index(wh)
    books = portfolio.read_book(wh, scenarios=None)
    live = books.positions
    assert index.portfolio_ids == sorted(books.books["portfolio_id"])
    assert index.market_symbols == sorted(set(live.loc[live["investment_class"] != "PRIVATE", "symbol"]))
    assert index.public_symbols == sorted(set(live.loc[live["investment_class"] == "PUBLIC", "symbol"]))
    scoped = portfolio.read_book_index(wh, ["P-LONG", "P-GONE"])
    assert scoped.portfolio_ids == ["P-LONG"]  # an id no longer in the ledger has no book
    assert set(scoped.market_symbols) == set(live.loc[live["portfolio_id"] == "P-LONG", "symbol"])
    ids = portfolio.BookIndex([f"P{i}" for i in range(1, 6)], [], []).batches(2)
    assert ids == [["P1", "P2"], ["P3", "P4"], ["P5"]]
    assert portfolio.BookIndex([], [], []).batches(2) == [[]]


def _snapshot_rows(day, ids, equity):
    n = len(ids)
    return pd.DataFrame({
        "date": pd.Timestamp(day), "portfolio_id": ids, "equity": equity, "cash": 0.0, "long_exposure": 0.0,
        "short_exposure": 0.0, "gross_exposure": 0.0, "net_exposure": 0.0, "daily_pnl": np.nan, "daily_return": np.nan,
        "cumulative_pnl": 0.0, "cumulative_flows": 0.0, "position_count": 0, "long_count": 0, "short_count": 0,
        "unpriced_count": 0, "stale_count": 0, "is_partial": False, "has_stale": False, "hhi": np.nan,
        "effective_positions_hhi": np.nan, "top3_weight": np.nan, "top10_weight": np.nan, "volatility_21d": np.nan,
        "volatility_63d": np.nan,
    }, index=range(n))


def test_staged_parts_are_one_transaction_and_a_bad_part_changes_nothing(tmp_path):
    wh = Warehouse(f"sqlite:///{tmp_path / 'w.sqlite'}")
    wh.create_all()
    day = "2025-03-05"
    old = _snapshot_rows(day, ["A", "B", "C", "D"], 1.0)
    wh.replace_partitions("portfolio_snapshots", old, day, day)
    parts = [lambda: _snapshot_rows(day, ["A", "B"], 2.0), lambda: _snapshot_rows(day, ["C", "D"], 2.0)]
    n = wh.replace_staged([StagedReplacement("portfolio_snapshots", parts, day, day)])
    assert n == [4] and (wh.read("portfolio_snapshots")["equity"] == 2.0).all()
    # The second part lies outside the scoped keys: the first part's rows and the delete roll back.
    bad = [lambda: _snapshot_rows(day, ["A"], 3.0), lambda: _snapshot_rows(day, ["Z"], 3.0)]
    with pytest.raises(ValueError, match="outside the scoped keys"):
        wh.replace_staged([StagedReplacement("portfolio_snapshots", bad, day, day, keys=["A", "B"],
                                             key_column="portfolio_id")])
    after = wh.read("portfolio_snapshots").sort_values("portfolio_id")
    assert list(after["portfolio_id"]) == ["A", "B", "C", "D"] and (after["equity"] == 2.0).all()
    # A scoped replacement touches only its keys.
    wh.replace_staged([StagedReplacement("portfolio_snapshots", [lambda: _snapshot_rows(day, ["B"], 5.0)], day, day,
                                         keys=["B", "C"], key_column="portfolio_id")])
    after = wh.read("portfolio_snapshots").set_index("portfolio_id")["equity"]
    assert after.to_dict() == {"A": 2.0, "B": 5.0, "D": 2.0}  # C's rows were deleted, B's replaced


def test_removed_portfolios_lose_their_rows_in_every_table_on_every_day(tmp_path):
    wh = Warehouse(f"sqlite:///{tmp_path / 'w.sqlite'}")
    wh.create_all()
    days = calendar.sessions("2025-03-03", "2025-03-05")
    for d in days:
        wh.replace_partitions("portfolio_snapshots", _snapshot_rows(d, ["KEEP", "GONE"], 1.0), d, d)
    deleted = portfolio.delete_portfolio_rows(wh, ["GONE"])
    assert deleted["portfolio_snapshots"] == 3 and set(deleted) == set(portfolio.TABLES)
    assert set(wh.read("portfolio_snapshots")["portfolio_id"]) == {"KEEP"}
    assert portfolio.portfolios_with_rows(wh) == {"KEEP"}
