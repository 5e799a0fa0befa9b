"""A failed run leaves a trace in ``run_failures`` whichever way it was launched (issue 13, finding 5):
an in-process run (``sigmasight demo``, a script, a test) has no ``run_failure_sensor`` watching it,
so ``materialize_range`` records it itself — whether it raises or returns the failed result."""

from __future__ import annotations

import pytest
from dagster import DagsterInstance

from sigmasight_assets.defs.resources import MarketDataResource, WarehouseResource
from sigmasight_assets.local_runs import materialize_range
from sigmasight_assets.market_data.synthetic import SyntheticProvider

from .helpers_graph import load_ledger, new_warehouse

POSITIONS = [dict(portfolio_id="P", symbol="AAPL", quantity=1, entry_price=1, entry_date="2026-01-05")]


class BrokenProvider(SyntheticProvider):
    def fetch_prices(self, symbols, start, end, **kwargs):
        raise RuntimeError("boom: a bug in the provider")


class BrokenResource(MarketDataResource):
    def get(self):
        return BrokenProvider(7)


@pytest.mark.parametrize("raise_on_error", [False, True])
def test_a_failed_in_process_run_is_recorded_in_run_failures(raise_on_error, tmp_path):
    url, wh = new_warehouse(tmp_path)
    load_ledger(wh, tmp_path / "ledger", POSITIONS)
    resources = {"warehouse": WarehouseResource(url=url), "market_data": BrokenResource()}
    with DagsterInstance.ephemeral() as instance:
        if raise_on_error:
            with pytest.raises(Exception, match="boom"):
                materialize_range("2026-11-19", "2026-11-20", instance=instance, resources=resources,
                                  selection=["symbol_universe", "prices"], tags={"sigmasight/trigger": "a script"})
            run_id = instance.get_runs(limit=1)[0].run_id
        else:
            result = materialize_range("2026-11-19", "2026-11-20", instance=instance, resources=resources,
                                       selection=["symbol_universe", "prices"], raise_on_error=False)
            assert not result.success
            run_id = result.run_id
    rows = wh.read("run_failures")
    assert len(rows) == 1
    row = rows.iloc[0]
    assert row["run_id"] == run_id and row["kind"] == "failure"
    assert row["partition_range"] == "2026-11-19...2026-11-20"
    assert row["step_keys"] == "prices"
    assert "RuntimeError: boom: a bug in the provider" in row["error"]
    assert row["trigger"] == ("a script" if raise_on_error else "in-process run")
    # The universe step before it was stored; nothing of prices was.
    assert wh.count("symbol_universe") > 0 and wh.count("prices") == 0


def test_a_successful_run_records_nothing(tmp_path):
    url, wh = new_warehouse(tmp_path)
    load_ledger(wh, tmp_path / "ledger", POSITIONS)
    result = materialize_range("2026-11-20", "2026-11-20", resources={
        "warehouse": WarehouseResource(url=url), "market_data": MarketDataResource(spec="synthetic")},
        selection=["symbol_universe", "prices"])
    assert result.success and wh.count("run_failures") == 0
