"""``sigmasight demo``: the end-to-end run on the embedded default (sample book, synthetic market,
SQLite warehouse, the Dagster instance in ``$DAGSTER_HOME``), in process through click's runner."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
from click.testing import CliRunner
from dagster import DagsterInstance

from sigmasight_assets import calendar
from sigmasight_assets.cli import main
from sigmasight_assets.local_runs import partitioned_assets

END = "2026-11-20"
DAYS = 5  # the range is the property under test, not its length (the warm-up is a year either way)


def test_demo_runs_the_graph_and_fills_the_warehouse(isolated_env, warehouse):
    result = CliRunner().invoke(main, ["demo", "--days", str(DAYS), "--end", END])
    assert result.exit_code == 0, (result.output, result.exception)
    sess = calendar.sessions_back(END, DAYS)
    assert len(sess) == DAYS and sess[-1] == pd.Timestamp(END)
    out = result.stdout
    assert len(out.splitlines()) < 100, out
    assert "loaded 4 portfolio(s), 25 position(s), 9 capital flow(s)" in out
    assert f"range: daily_risk_graph over {DAYS} sessions {sess[0].date()}..{END} (the whole graph)" in out
    warm = re.search(r"warm-up: daily_risk_graph over (\d+) sessions (\S+)\.\.(\S+) ", out)
    assert warm, out
    # The warm-up covers the longest look-back window on prices (factor_covariance, symbol_metrics: 252).
    assert int(warm.group(1)) >= 252 and warm.group(3) == calendar.previous_session(sess[0]).date().isoformat()
    # One progress line per asset of the range run, not Dagster's event stream.
    range_part = out[out.index("range: daily_risk_graph"):]
    done = re.findall(r"^  done  (\S+)\s+[\d.]+s$", range_part, flags=re.M)
    assert sorted(done) == sorted({k.to_user_string() for a in partitioned_assets() for k in a.keys}), out
    assert "DEBUG" not in result.output
    runs_out = re.findall(r"run (\S+) succeeded in \S+; Dagster log: (\S+)", out)
    assert len(runs_out) == 2, out
    for _, log in runs_out:  # the whole Dagster log is in the file, not on the terminal
        text = Path(log).read_text()
        assert "STEP_SUCCESS" in text and "STEP_SUCCESS" not in out
    # With the warm-up history, no check of the range warns for lack of it — except the historical
    # replays, whose dated windows (2008 … 2022) are not in a demo warehouse: reported, never a P&L of 0.
    checks = re.search(r"checks of the range run: (\d+) passed, (\d) warned, 0 failed", out)
    assert checks and 20 < int(checks.group(1)) < 100, out  # one verdict per check, not one per day
    warned = re.findall(r"^\s+warn\s+(\S+ / [a-z_]+)", out, flags=re.M)
    assert len(warned) == int(checks.group(2)) and set(warned) <= {"stress_results / replays_replayable"}, out
    assert "warehouse rows in the range:" in out
    assert "Jobs → daily_risk_graph → Materialize" in out
    # The UI is told where the partitions start: the first day of the range.
    assert (isolated_env / "sigmasight.env").read_text() == f"SIGMASIGHT_START_DATE={sess[0].date()}\n"

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

    # Both runs are runs of the daily_risk_graph job, recorded on the instance in DAGSTER_HOME.
    assert (isolated_env / "dagster.yaml").exists()
    with DagsterInstance.from_config(str(isolated_env)) as instance:
        runs = instance.get_runs()
        assert sorted(r.run_id for r in runs) == sorted(r for r, _ in runs_out)
        assert {r.job_name for r in runs} == {"daily_risk_graph"}
        # Launched through the code location of workspace.yaml: the UI's Overview timeline groups runs
        # by this origin and leaves out runs without one (in-process runs).
        assert [r.remote_job_origin and r.remote_job_origin.location_name for r in runs] == ["sigmasight_assets"] * 2
        rng = instance.get_run_by_id(runs_out[1][0])
        assert rng.tags["dagster/asset_partition_range_start"] == sess[0].date().isoformat()
        assert rng.tags["dagster/asset_partition_range_end"] == END
