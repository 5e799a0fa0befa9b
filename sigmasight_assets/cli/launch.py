"""Runs launched through the code location, the way the UI launches them, without a daemon.

A run executed in the calling process (``execute_in_process``) carries no code-location origin: the
UI lists it, but cannot place it on the Overview timeline or link it to its job's definition. A run
launched through the code location's server has that origin. :class:`CodeLocation` starts the
location's gRPC server (``dagster api grpc``, the command a deployment runs for user code) for the
duration and launches runs with Dagster's own GraphQL command line (``dagster-graphql``, mutation
``launchRun``) against an instance that shares the storage of ``$DAGSTER_HOME`` but starts each run
at once (``DefaultRunCoordinator``) instead of queueing it for a daemon. The run worker is a child
of that server and writes its events to the shared storage, where the caller follows them.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click
import yaml

LOCATION = "sigmasight_assets"  # the location name of workspace.yaml, so the UI matches the runs to it
REPOSITORY = "__repository__"
MODULE = "sigmasight_assets.definitions"
FINISHED = ("SUCCESS", "FAILURE", "CANCELED")
# Instance settings that belong to the queue and the daemon; the launching instance has neither.
QUEUE_KEYS = ("run_coordinator", "run_queue", "concurrency", "run_monitoring", "run_retries", "auto_materialize")

LAUNCH_RUN = """
mutation($params: ExecutionParams!) { launchRun(executionParams: $params) { __typename
  ... on LaunchRunSuccess { run { runId } }
  ... on PythonError { message }
  ... on RunConfigValidationInvalid { errors { message } }
  ... on InvalidSubsetError { message }
  ... on PipelineNotFoundError { message }
  ... on UnauthorizedError { message } } }
"""


def executable(name: str) -> str:
    """A console script of this environment (``dagster``, ``dagster-graphql``), else from ``PATH``."""
    exe = Path(sys.executable).with_name(name)
    found = str(exe) if exe.exists() else shutil.which(name)
    if not found:
        raise click.ClickException(f"the {name} command is not installed in this environment")
    return found


def graphql(target: list[str], query: str, variables: dict, env: dict | None = None) -> dict:
    """Run one GraphQL operation with ``dagster-graphql`` (no webserver needed) and return its ``data``.

    ``target``: where the code location comes from (``["-w", workspace.yaml]`` or ``["-m", module]``)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "response.json"
        proc = subprocess.run([executable("dagster-graphql"), *target, "-t", query, "-v", json.dumps(variables),
                               "-o", str(out)], capture_output=True, text=True, env=env)
        if not out.exists():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            raise click.ClickException(f"dagster-graphql failed (exit {proc.returncode}): {tail[0]}")
        response = json.loads(out.read_text())
    if response.get("errors"):  # the operation did not run (bad query, unknown location, …)
        raise click.ClickException(f"dagster-graphql: {response['errors'][0].get('message', response['errors'][0])}")
    return response.get("data") or {}


def launching_instance_yaml(home: Path) -> dict:
    """The instance settings of ``home`` with its storage made explicit and runs started at once."""
    path = home / "dagster.yaml"
    settings = (yaml.safe_load(path.read_text()) if path.exists() else None) or {}
    for key in QUEUE_KEYS:
        settings.pop(key, None)
    settings.setdefault("storage", {"sqlite": {"base_dir": str(home)}})
    settings.setdefault("local_artifact_storage", {"module": "dagster.core.storage.root", "class": "LocalArtifactStorage",
                                                   "config": {"base_dir": str(home)}})
    settings["run_coordinator"] = {"module": "dagster.core.run_coordinator", "class": "DefaultRunCoordinator"}
    settings["telemetry"] = {"enabled": False}
    return settings


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class CodeLocation:
    """The code location served for the duration of a ``with`` block; :meth:`launch` starts a run on it.

    ``home``: the Dagster instance whose storage the runs are recorded in; ``log``: where the server's
    own output goes; ``env``: the environment of the server and its runs (default this process's)."""

    def __init__(self, home: Path, log: Path, env: dict[str, str] | None = None, startup_timeout_s: float = 180.0):
        self.home, self.log, self.startup_timeout_s = Path(home), Path(log), startup_timeout_s
        self.base_env = dict(os.environ if env is None else env)
        self.port = _free_port()
        self._tmp: tempfile.TemporaryDirectory | None = None
        self._server: subprocess.Popen | None = None

    def __enter__(self) -> "CodeLocation":
        self._tmp = tempfile.TemporaryDirectory(prefix="sigmasight-launch-")
        tmp = Path(self._tmp.name)
        (tmp / "dagster.yaml").write_text(yaml.safe_dump(launching_instance_yaml(self.home)))
        self.workspace = tmp / "workspace.yaml"
        self.workspace.write_text(yaml.safe_dump({"load_from": [{"grpc_server": {
            "host": "127.0.0.1", "port": self.port, "location_name": LOCATION}}]}))
        self.env = {**self.base_env, "DAGSTER_HOME": str(tmp)}
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self._server = subprocess.Popen(
                [executable("dagster"), "api", "grpc", "-m", MODULE, "--location-name", LOCATION,
                 "-h", "127.0.0.1", "-p", str(self.port)],
                env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            self._wait_ready()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self._server.poll() is not None:
                raise click.ClickException(f"the code location's server exited ({self._server.returncode}) while "
                                           f"loading the definitions; its output: {self.log}")
            with socket.socket() as s:
                s.settimeout(0.5)
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.25)
        raise click.ClickException(f"the code location's server did not start within {self.startup_timeout_s:.0f} s; "
                                   f"its output: {self.log}")

    def __exit__(self, *exc) -> None:
        server, self._server = self._server, None
        if server is not None and server.poll() is None:
            try:
                os.killpg(server.pid, signal.SIGTERM)
                server.wait(timeout=20)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(server.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                server.wait(timeout=10)
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def launch(self, job: str, tags: dict[str, str], run_config: dict | None = None,
               assets: list[str] | None = None, checks: list[tuple[str, str]] | None = None) -> str:
        """Start a run of ``job`` (only ``assets`` and the ``checks`` (asset, check) given, when given);
        returns its run id. The run goes on in the server's child process."""
        selector = {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY, "jobName": job}
        if assets is not None:
            selector["assetSelection"] = [{"path": [a]} for a in assets]
            selector["assetCheckSelection"] = [{"assetKey": {"path": [a]}, "name": c} for a, c in (checks or [])]
        params = {"selector": selector, "runConfigData": run_config or {},
                  "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in tags.items()]}}
        launched = graphql(["-w", str(self.workspace)], LAUNCH_RUN, {"params": params}, env=self.env).get("launchRun") or {}
        if launched.get("__typename") != "LaunchRunSuccess":
            detail = launched.get("message") or launched.get("errors") or launched
            raise click.ClickException(f"the {job} run was not launched: {detail}")
        return launched["run"]["runId"]

    def wait(self, instance, run_id: str, poll_s: float = 0.5) -> str:
        """The run's final status (``SUCCESS``, ``FAILURE`` or ``CANCELED``), once it has one."""
        while True:
            run = instance.get_run_by_id(run_id)
            status = run.status.value if run is not None else "NOT_FOUND"
            if status in FINISHED:
                return status
            if self._server is None or self._server.poll() is not None:
                raise click.ClickException(f"the code location's server stopped while run {run_id} was {status}; "
                                           f"its output: {self.log}")
            time.sleep(poll_s)
