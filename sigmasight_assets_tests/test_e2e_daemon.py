"""End to end through the real daemon: ``dagster-daemon run`` against a temporary DAGSTER_HOME (the
repository's dagster.yaml: queued run coordinator) and a temporary SQLite warehouse.

Two runs are submitted to the run queue with ``dagster job launch`` (queued, not executed by the
CLI): the whole graph over three sessions as one single-run range, and a run whose provider does not
exist. The daemon's queue launches both; the first succeeds and fills the warehouse, the second fails
and the daemon's ``run_failure_sensor`` records it in ``run_failures``. Then a portfolio holding a
symbol nobody held is loaded and the daemon's onboarding sensors get it betas through exactly one
scoped run (the load-to-betas time is printed). Every process started here
(the daemon, its code server and run workers share one process group) is killed at the end.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from . import ui_helpers as ui

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
START, END = "2025-03-03", "2025-03-05"
FAIL_DAY = "2025-03-06"
TIMEOUT_S = 180
IN_PROCESS = {"execution": {"config": {"in_process": {}}}}  # one worker process per run: fast to start


def _env(home: Path, url: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIGMASIGHT_", "DAGSTER_"))}
    env.update(DAGSTER_HOME=str(home), SIGMASIGHT_DATABASE_URL=url, PYTHONUNBUFFERED="1")
    return env


def _launch(env, tags: dict, config: dict, log: Path) -> subprocess.Popen:
    cmd = [str(BIN / "dagster"), "job", "launch", "-j", "daily_risk_graph", "-w", "workspace.yaml",
           "--tags", json.dumps(tags), "--config-json", json.dumps(config)]
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
                            start_new_session=True)


@pytest.mark.slow
@pytest.mark.timeout(TIMEOUT_S + 60)
def test_daemon_runs_queued_runs_records_the_failure_and_onboards_a_symbol(tmp_path, monkeypatch, capsys):
    from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus, RunsFilter

    from sigmasight_assets.ledger import parse_ledger
    from sigmasight_assets.warehouse import Warehouse
    from sigmasight_assets.warehouse.ledger import store_ledger

    from .conftest import SAMPLE_FLOWS, SAMPLE_POSITIONS
    from .helpers_graph import load_ledger

    home = tmp_path / "dagster_home"
    home.mkdir(exist_ok=True)
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    url = f"sqlite:///{tmp_path / 'warehouse.sqlite'}"
    wh = Warehouse(url)
    wh.create_all()
    store_ledger(wh, parse_ledger(SAMPLE_POSITIONS, SAMPLE_FLOWS))
    env = _env(home, url)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    # Create the instance's SQLite storage once, here: the daemon and the CLI creating it at the same
    # moment race on its schema ("table alembic_version already exists").
    with DagsterInstance.get() as instance:
        instance.get_runs(limit=1)
        instance.all_instigator_state()
        instance.get_event_records  # noqa: B018 - event log storage is created with the instance

    deadline = time.time() + TIMEOUT_S
    procs: list[subprocess.Popen] = []
    daemon_log = tmp_path / "daemon.log"
    try:
        daemon = subprocess.Popen([str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"], cwd=REPO, env=env,
                                  stdout=daemon_log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
        procs.append(daemon)
        # Queue the good run right away (the daemon dequeues it once it is up).
        ok_tags = {"dagster/asset_partition_range_start": START, "dagster/asset_partition_range_end": END,
                   "e2e": "ok"}
        procs.append(_launch(env, ok_tags, IN_PROCESS, tmp_path / "launch_ok.log"))

        with DagsterInstance.get() as instance:
            def sensor_ticked():
                states = [s for s in instance.all_instigator_state() if s.instigator_name == "run_failure_sensor"]
                return states and instance.get_ticks(states[0].instigator_origin_id, states[0].selector_id, limit=1)

            # The failure sensor only sees failures after its first tick: queue the bad run after it.
            ui.wait_until(sensor_ticked, "the daemon's first run_failure_sensor tick", deadline)
            bad_config = {**IN_PROCESS, "resources": {"market_data": {"config": {"spec": "no-such-provider"}}}}
            procs.append(_launch(env, {"dagster/partition": FAIL_DAY, "e2e": "bad"}, bad_config,
                                 tmp_path / "launch_bad.log"))

            def finished(tag):
                runs = instance.get_runs(filters=RunsFilter(tags={"e2e": tag}))
                return runs[0] if runs and runs[0].is_finished else None

            good = ui.wait_until(lambda: finished("ok"), "the good run to finish", deadline)
            bad = ui.wait_until(lambda: finished("bad"), "the bad run to finish", deadline)
            assert good.status == DagsterRunStatus.SUCCESS, (tmp_path / "daemon.log").read_text()[-3000:]
            assert bad.status == DagsterRunStatus.FAILURE
            # Queued by the CLI, launched by the daemon's run queue.
            for run in (good, bad):
                types = [e.dagster_event.event_type for e in instance.all_logs(run.run_id) if e.dagster_event]
                assert types.index(DagsterEventType.RUN_ENQUEUED) < types.index(DagsterEventType.RUN_STARTING)

            # The warehouse holds the graph for the range (three sessions: too short for a regression
            # window, so symbol_betas has the provider's betas only and factor_covariance no row).
            for table in ("symbol_universe", "prices", "daily_valuations", "symbol_betas", "portfolio_snapshots"):
                assert wh.count(table, START, END) > 0, table
            snaps = wh.read("portfolio_snapshots", START, END)
            assert len(snaps) == 3 * 4
            assert wh.count("prices", FAIL_DAY, FAIL_DAY) == 0

            # A portfolio with a symbol nobody held is loaded: the daemon's sensors onboard it with one
            # scoped run (whichever sensor ticks first; the other sees it in flight) and its betas appear.
            loaded = time.time()
            load_ledger(wh, tmp_path / "ledger", [{"portfolio_id": "P-NEW", "portfolio_name": "New",
                                                   "symbol": "ZNEWCO", "quantity": 100, "entry_price": 50.0,
                                                   "entry_date": END}])
            ui.wait_until(lambda: len(wh.read("symbol_betas", keys=["ZNEWCO"])) > 0, "the new symbol's betas", deadline)
            latency = time.time() - loaded
            onboarding = [r for r in instance.get_runs(filters=RunsFilter(tags={"sigmasight/onboarding": "symbols"}))
                          if "ZNEWCO" in r.run_config["ops"]["symbol_universe"]["config"]["symbols"]]
            assert len(onboarding) == 1, [r.tags for r in onboarding]
            with capsys.disabled():
                print(f"\n[e2e] daemon: new symbol loaded → betas in {latency:.1f}s "
                      f"(run {onboarding[0].tags['sigmasight/trigger']}, "
                      f"{onboarding[0].tags['dagster/asset_partition_range_start']}.."
                      f"{onboarding[0].tags['dagster/asset_partition_range_end']})")

            row = ui.wait_until(lambda: [r for r in wh.read("run_failures").to_dict("records") if r["run_id"] == bad.run_id],
                        "run_failure_sensor to record the failed run", deadline)[0]
            assert row["kind"] == "failure" and row["partition_range"] == FAIL_DAY
            assert row["step_keys"] == "prices" and "no-such-provider" in row["error"]
            assert good.run_id not in set(wh.read("run_failures")["run_id"])
    finally:
        for proc in procs:
            ui.kill_group(proc)
        wh.engine.dispose()
    for proc in procs:
        assert proc.poll() is not None
