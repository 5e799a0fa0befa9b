"""A run whose worker is killed does not stay STARTED forever (issue 13, finding 5).

``dagster-daemon run`` against a temporary DAGSTER_HOME holding the repository's ``dagster.yaml``
with only two numbers shortened so the test does not wait two hours: the runtime backstop
(``max_runtime_seconds``, 7200 in the file) and the poll interval. A run of the whole graph is queued
with ``dagster job launch``; once a step has started, SIGKILL (what an OOM kill or ``kill -9`` does)
goes to

* its worker process: the code server that started it sees it die and fails the run at once;
* the worker and its code server together (nobody left to notice, as when the machine goes down):
  run monitoring's runtime backstop fails the run.

Either way the daemon's ``run_failure_sensor`` records it in ``run_failures``. Every process started
here (the daemon, its code server and run workers share one process group) is killed at the end.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from . import ui_helpers as ui

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
TIMEOUT_S = 180
BACKSTOP_S = 20
IN_PROCESS = {"execution": {"config": {"in_process": {}}}}
START, END = "2025-01-02", "2025-03-31"  # long enough that the worker is still running when killed


def parent_pid(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


@pytest.mark.slow
@pytest.mark.timeout(TIMEOUT_S + 60)
@pytest.mark.parametrize("victims", ["worker", "worker_and_code_server"])
def test_a_killed_run_is_marked_failed_and_recorded(victims, tmp_path, monkeypatch):
    from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus, RunsFilter

    from sigmasight_assets.ledger import parse_ledger
    from sigmasight_assets.warehouse import Warehouse
    from sigmasight_assets.warehouse.ledger import store_ledger

    from .conftest import SAMPLE_FLOWS, SAMPLE_POSITIONS

    home = tmp_path / "dagster_home"
    home.mkdir(exist_ok=True)  # the autouse fixture made it
    config = yaml.safe_load((REPO / "dagster.yaml").read_text())
    assert config["run_monitoring"]["enabled"] and config["run_monitoring"]["max_runtime_seconds"] == 7200
    config["run_monitoring"].update(max_runtime_seconds=BACKSTOP_S, poll_interval_seconds=1)
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    url = f"sqlite:///{tmp_path / 'warehouse.sqlite'}"
    wh = Warehouse(url)
    wh.create_all()
    store_ledger(wh, parse_ledger(SAMPLE_POSITIONS, SAMPLE_FLOWS))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIGMASIGHT_", "DAGSTER_"))}
    env.update(DAGSTER_HOME=str(home), SIGMASIGHT_DATABASE_URL=url, PYTHONUNBUFFERED="1")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with DagsterInstance.get() as instance:  # create the SQLite storage once, before the daemon races for it
        instance.get_runs(limit=1)
        instance.all_instigator_state()

    deadline = time.time() + TIMEOUT_S
    procs: list[subprocess.Popen] = []
    try:
        procs.append(subprocess.Popen([str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"], cwd=REPO,
                                      env=env, stdout=(tmp_path / "daemon.log").open("w"), stderr=subprocess.STDOUT,
                                      start_new_session=True))
        with DagsterInstance.get() as instance:
            def sensor_ticked():
                states = [s for s in instance.all_instigator_state() if s.instigator_name == "run_failure_sensor"]
                return states and instance.get_ticks(states[0].instigator_origin_id, states[0].selector_id, limit=1)

            ui.wait_until(sensor_ticked, "the daemon's first run_failure_sensor tick", deadline)
            tags = {"dagster/asset_partition_range_start": START, "dagster/asset_partition_range_end": END,
                    "e2e": "killed"}
            procs.append(subprocess.Popen(
                [str(BIN / "dagster"), "job", "launch", "-j", "daily_risk_graph", "-w", "workspace.yaml",
                 "--tags", json.dumps(tags), "--config-json", json.dumps(IN_PROCESS)],
                cwd=REPO, env=env, stdout=(tmp_path / "launch.log").open("w"), stderr=subprocess.STDOUT,
                start_new_session=True))

            def worker_pid():
                runs = instance.get_runs(filters=RunsFilter(tags={"e2e": "killed"}))
                if not runs or not instance.all_logs(runs[0].run_id, of_type=DagsterEventType.STEP_START):
                    return None  # kill it mid-step, once STARTED (a worker dying while STARTING is start_timeout's)
                for entry in instance.all_logs(runs[0].run_id, of_type=DagsterEventType.ENGINE_EVENT):
                    found = re.search(r"Started process for run \(pid: (\d+)\)", entry.message or "")
                    if found:
                        return runs[0].run_id, int(found.group(1))
                return None

            run_id, pid = ui.wait_until(worker_pid, "the run's worker process", deadline, poll=0.2)
            if victims == "worker_and_code_server":  # nobody left to notice: only run monitoring can
                os.kill(parent_pid(pid), signal.SIGKILL)
            os.kill(pid, signal.SIGKILL)
            killed_at = time.time()
            assert instance.get_run_by_id(run_id).status == DagsterRunStatus.STARTED

            def failed():
                run = instance.get_run_by_id(run_id)
                return run if run.status == DagsterRunStatus.FAILURE else None

            run = ui.wait_until(failed, "run monitoring to mark the killed run failed", deadline)
            assert run.status == DagsterRunStatus.FAILURE
            assert time.time() - killed_at < TIMEOUT_S
            messages = [e.message or "" for e in instance.all_logs(run_id)]
            if victims == "worker":  # the code server saw its worker die and failed the run at once
                assert any("was terminated by signal 9 (SIGKILL)" in m for m in messages), messages[-5:]
            else:  # run monitoring's runtime backstop
                assert any("maximum runtime" in m for m in messages), messages[-5:]
            row = ui.wait_until(lambda: [r for r in wh.read("run_failures").to_dict("records") if r["run_id"] == run_id],
                        "run_failure_sensor to record the killed run", deadline)[0]
            assert row["kind"] == "failure" and row["partition_range"] == f"{START}...{END}"
    finally:
        for proc in procs:
            ui.kill_group(proc)
        wh.engine.dispose()
