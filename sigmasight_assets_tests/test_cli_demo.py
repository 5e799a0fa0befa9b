"""``sigmasight demo``: the end-to-end run on the embedded default (sample book, synthetic market,
SQLite warehouse, the Dagster instance in ``$DAGSTER_HOME``), in process through click's runner."""

from __future__ import annotations

import re

import pandas as pd
from click.testing import CliRunner
from dagster import DagsterInstance

from sigmasight_assets import calendar
from sigmasight_assets.cli import main

END = "2026-11-20"
DAYS = 25


def test_demo_runs_the_graph_and_fills_the_warehouse(isolated_env, warehouse):
    result = CliRunner().invoke(main, ["demo", "--days", str(DAYS), "--end", END])
    assert result.exit_code == 0, (result.output, result.exception)
    sess = calendar.sessions_back(END, DAYS)
    assert len(sess) == DAYS and sess[-1] == pd.Timestamp(END)
    out = result.stdout
    assert "loaded 4 portfolio(s), 25 position(s), 9 capital flow(s)" in out
    assert f"backfilling {DAYS} trading days {sess[0].date()}..{END} of the whole graph in one run" in out
    m = re.search(r"run (\S+) succeeded in", out)
    assert m, out
    assert "warehouse rows in the range:" in out

    # The summary's row counts are the warehouse's.
    counts = dict(re.findall(r"^\s+(\w+)\s+([\d,]+)$", out, flags=re.M))
    assert {"symbol_universe", "prices", "daily_valuations"} <= set(counts)
    for table, n in counts.items():
        assert int(n.replace(",", "")) == warehouse.count(table, sess[0], sess[-1]), table

    # Every session of the range has prices, and the factor ETFs on every one.
    prices = warehouse.read("prices", sess[0], sess[-1])
    assert sorted(prices["date"].unique()) == list(sess)
    spy = prices[prices["symbol"] == "SPY"]
    assert len(spy) == DAYS
    assert prices["source"].eq("synthetic").all()

    # The run is recorded on the instance in DAGSTER_HOME (visible in the UI afterwards), as one run.
    assert (isolated_env / "dagster.yaml").exists()
    with DagsterInstance.from_config(str(isolated_env)) as instance:
        runs = instance.get_runs()
        assert [r.run_id for r in runs] == [m.group(1)]
        assert runs[0].tags["dagster/asset_partition_range_start"] == sess[0].date().isoformat()
        assert runs[0].tags["dagster/asset_partition_range_end"] == END
