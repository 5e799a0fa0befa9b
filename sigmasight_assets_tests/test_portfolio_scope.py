"""Portfolio-scoped runs driven by the ledger sensor, on a book of 300 portfolios.

After the whole graph has been computed over a short range, one book is edited: the ledger sensor
requests runs scoped to that book alone (run config ``portfolio_ids``) and, executed, they replace
exactly its rows — counted through a marker: before the run every row's count column is set to −1
(a value no computation writes); a replaced row is re-inserted with its computed count, every other
book's rows keep the marker. Then a book is removed from the ledger
(``sigmasight remove-portfolios``): the sensor requests ``remove_portfolio_rows`` and the book's
rows leave every portfolio table on every day, nothing else changes.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
from click.testing import CliRunner
from dagster import DagsterInstance, build_sensor_context, materialize

from sigmasight_assets import calendar
from sigmasight_assets.cli import main
from sigmasight_assets.defs.resources import WarehouseResource
from sigmasight_assets.defs.sensors import portfolio_ledger_sensor

from .helpers_graph import PORTFOLIO_ASSETS, iso, load_ledger, new_warehouse, resources, run_range

RANGE = calendar.sessions("2025-11-03", "2025-11-07")
BOOKS = 300
SYMBOLS = ["AAPL", "MSFT", "NVDA", "AMZN", "GOOG", "JPM", "XOM", "KO", "PFE", "WMT", "SPY", "TLT"]
EDITED, REMOVED = "B-0123", "B-0250"


def book_rows(edited_qty: int = 10) -> tuple[list[dict], list[dict]]:
    positions, flows = [], []
    entry = iso(RANGE[0] - pd.Timedelta(days=7))
    for i in range(BOOKS):
        pid = f"B-{i:04d}"
        for j in range(3):
            qty = edited_qty if (pid == EDITED and j == 0) else 10 + (i + j) % 7
            positions.append({"portfolio_id": pid, "portfolio_name": pid, "position_id": f"{pid}-{j}",
                              "symbol": SYMBOLS[(i + 3 * j) % len(SYMBOLS)], "quantity": qty,
                              "entry_price": 100.0, "entry_date": entry})
        flows.append({"portfolio_id": pid, "date": entry, "amount": 10_000.0})
    return positions, flows


# A count column of each table (never negative when computed), set to −1 as the marker.
MARKED = {"portfolio_snapshots": "position_count", "correlations": "n_symbols",
          "aggregated_exposures": "positions_with_beta", "stress_results": "positions_covered"}


def mark(wh, table: str) -> pd.DataFrame:
    with wh.engine.begin() as conn:
        conn.exec_driver_sql(f"UPDATE {table} SET {MARKED[table]} = -1")
    return marked(wh, table)


def marked(wh, table: str) -> pd.DataFrame:
    return wh.query(f"SELECT date, portfolio_id, {MARKED[table]} = -1 AS kept FROM {table}")


def tick(wh, instance, cursor=None):
    from sigmasight_assets.definitions import defs

    ctx = build_sensor_context(instance=instance, cursor=cursor, definitions=defs,
                               resources={"warehouse": WarehouseResource(url=wh.url)})
    return portfolio_ledger_sensor.evaluate_tick(ctx)


def execute(request, wh, instance):
    from sigmasight_assets.definitions import defs

    if request.job_name == "remove_portfolio_rows":
        job = defs.resolve_job_def("remove_portfolio_rows")
        return job.execute_in_process(run_config=request.run_config, instance=instance,
                                      resources={"warehouse": WarehouseResource(url=wh.url)})
    assets = [a for a in defs.assets if getattr(a, "partitions_def", None) is not None]
    kwargs = {"partition_key": request.partition_key} if request.partition_key else {}
    return materialize(assets, selection=request.asset_selection, run_config=request.run_config,
                       resources=resources(wh.url), tags=dict(request.tags), instance=instance, **kwargs)


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    directory = tmp_path_factory.mktemp("scope")
    url, wh = new_warehouse(directory)
    positions, flows = book_rows()
    load_ledger(wh, directory / "ledger", positions, flows)
    assert run_range(url, RANGE[0], RANGE[-1]).success
    yield directory, wh
    wh.engine.dispose()


def test_editing_one_of_300_books_replaces_only_its_rows(book):
    directory, wh = book
    before = {t: mark(wh, t) for t in PORTFOLIO_ASSETS}
    assert before["portfolio_snapshots"]["portfolio_id"].nunique() == BOOKS
    with DagsterInstance.ephemeral() as instance:
        cursor = tick(wh, instance).cursor  # baseline: every book has analytics
        assert tick(wh, instance, cursor).run_requests == []
        positions, flows = book_rows(edited_qty=25)
        load_ledger(wh, directory / "ledger2", [p for p in positions if p["portfolio_id"] == EDITED],
                    [f for f in flows if f["portfolio_id"] == EDITED])
        res = tick(wh, instance, cursor)
        assert res.run_requests, res.skip_message
        for request in res.run_requests:
            assert request.run_config["ops"]["portfolio_analytics"]["config"]["portfolio_ids"] == [EDITED]
            result = execute(request, wh, instance)
            assert result.success
        assert tick(wh, instance, res.cursor).run_requests == []
    per_day = {"portfolio_snapshots": 1, "correlations": 1, "aggregated_exposures": 13, "stress_results": 24}
    for table, rows_per_day in per_day.items():
        after = marked(wh, table)
        assert len(after) == len(before[table]), table
        replaced = after[after["kept"] == 0]
        assert set(replaced["portfolio_id"]) == {EDITED}, table
        assert len(replaced) == rows_per_day * len(RANGE), table  # only that book, every day of its history
        others = after[after["portfolio_id"] != EDITED]
        assert len(others) == (before[table]["portfolio_id"] != EDITED).sum(), table
        assert (others["kept"] == 1).all(), table  # nobody else's row was rewritten
    snaps = wh.read("portfolio_snapshots", RANGE[-1], RANGE[-1], keys=[EDITED, "B-0124"])
    eq = snaps.set_index("portfolio_id")["gross_exposure"]
    assert eq[EDITED] > 0 and eq["B-0124"] > 0


def test_a_book_removed_from_the_ledger_loses_its_rows_everywhere(book):
    _directory, wh = book
    before = {t: wh.read(t) for t in PORTFOLIO_ASSETS}
    assert all((f["portfolio_id"] == REMOVED).any() for f in before.values())
    with DagsterInstance.ephemeral() as instance:
        cursor = tick(wh, instance).cursor
        out = CliRunner().invoke(main, ["remove-portfolios", REMOVED, "--database-url", wh.url])
        assert out.exit_code == 0, out.output
        res = tick(wh, instance, cursor)
        [request] = res.run_requests
        assert request.job_name == "remove_portfolio_rows"
        assert request.run_config["ops"]["delete_portfolio_analytics"]["config"]["portfolio_ids"] == [REMOVED]
        assert REMOVED not in json.loads(res.cursor)["fingerprints"]
        assert execute(request, wh, instance).success
        assert tick(wh, instance, res.cursor).run_requests == []
    for table, frame in before.items():
        after = wh.read(table)
        assert not (after["portfolio_id"] == REMOVED).any(), table
        assert len(after) == len(frame) - int((frame["portfolio_id"] == REMOVED).sum()), table
