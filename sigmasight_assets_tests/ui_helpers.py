"""Helpers for the end-to-end UI tests: a real ``dagster-webserver`` (and ``dagster-daemon``) on a free
local port, with their own ``DAGSTER_HOME`` and SQLite warehouse, the GraphQL API the UI uses, and
headless Chromium from the system package.

Every process is started in its own session (``start_new_session``), so it leads a process group
that holds everything it spawns (Dagster's code servers and run workers do not leave the group);
:meth:`DagsterProcess.stop` ends the whole group — SIGTERM, then SIGKILL — and reports any survivor.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
WORKSPACE = REPO_ROOT / "workspace.yaml"
BIN = Path(sys.executable).parent  # the virtualenv's bin: dagster-webserver, dagster-daemon, sigmasight

# Every partitioned asset of the code location (DESIGN.md §3), and the one unpartitioned source.
PARTITIONED_ASSETS = (
    "symbol_universe", "prices", "daily_valuations", "symbol_betas", "ridge_factors", "spread_factors",
    "factor_covariance", "symbol_metrics", "portfolio_snapshots", "correlations", "aggregated_exposures",
    "stress_results",
)
SOURCE_ASSETS = ("portfolios",)

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")


def executable(name: str) -> str:
    """``name`` from the running interpreter's virtualenv, else from ``PATH``."""
    local = BIN / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if not found:
        raise FileNotFoundError(f"{name} is neither in {BIN} nor on PATH")
    return found


def free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_dagster_home(path: Path) -> Path:
    """A fresh Dagster home: SQLite storage (the default) and telemetry off."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return path


def init_instance(home: Path) -> None:
    """Create the instance's SQLite storages up front.

    The webserver and the daemon would otherwise both migrate a fresh home at start-up and race
    (alembic: "more than one head present").
    """
    from dagster import DagsterInstance

    with DagsterInstance.from_config(str(home)) as instance:
        instance.get_runs(limit=1)
        instance.get_event_records  # noqa: B018 - event storage is created with the instance
        instance.schedule_storage and instance.all_instigator_state()


def dagster_env(home: Path, database_url: str, **extra: str) -> dict[str, str]:
    """The environment of the Dagster processes: their home, the warehouse, the offline market."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIGMASIGHT_", "DAGSTER_"))}
    env.update(
        DAGSTER_HOME=str(home),
        SIGMASIGHT_DATABASE_URL=database_url,
        SIGMASIGHT_MARKET_DATA="synthetic",
        SIGMASIGHT_SYNTHETIC_SEED="7",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def load_sample_portfolios(env: dict[str, str], timeout: float = 120) -> str:
    """``sigmasight load-portfolios --sample`` into the warehouse of ``env`` (a real subprocess)."""
    out = subprocess.run([executable("sigmasight"), "load-portfolios", "--sample"], env=env, cwd=REPO_ROOT,
                         capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"load-portfolios failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    return out.stdout


def _group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of process group ``pgid`` (Linux /proc)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid pgrp ... ; comm may contain spaces or parentheses
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


@dataclass
class DagsterProcess:
    """A long-running command in its own process group, its output in ``log``."""

    name: str
    args: list[str]
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen | None = None
    _log_file: object = field(default=None, repr=False)

    def start(self) -> "DagsterProcess":
        self._log_file = open(self.log, "wb")
        self.proc = subprocess.Popen(self.args, env=self.env, cwd=REPO_ROOT, stdout=self._log_file,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        return self

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def tail(self, chars: int = 4000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self, grace: float = 15.0) -> list[int]:
        """End the whole process group; returns the pids still alive afterwards (should be none)."""
        if self.proc is None:
            return []
        pgid = self.proc.pid
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(timeout=0.2)
                if self.proc.poll() is not None and not _group_members(pgid):
                    break
            if self.proc.poll() is not None and not _group_members(pgid):
                break
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=1)
        if self._log_file is not None:
            self._log_file.close()
        return _group_members(pgid)


def start_webserver(home: Path, env: dict[str, str], log_dir: Path, port: int | None = None) -> tuple[DagsterProcess, str]:
    port = port or free_port()
    args = [executable("dagster-webserver"), "-w", str(WORKSPACE), "-h", "127.0.0.1", "-p", str(port)]
    proc = DagsterProcess("dagster-webserver", args, env, log_dir / "webserver.log").start()
    return proc, f"http://127.0.0.1:{port}"


def start_daemon(env: dict[str, str], log_dir: Path) -> DagsterProcess:
    args = [executable("dagster-daemon"), "run", "-w", str(WORKSPACE)]
    return DagsterProcess("dagster-daemon", args, env, log_dir / "daemon.log").start()


class GraphQLError(RuntimeError):
    pass


def graphql(base_url: str, query: str, variables: dict | None = None, timeout: float = 60) -> dict:
    """POST /graphql (what the UI does); returns ``data`` or raises with the server's errors."""
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    req = urllib.request.Request(f"{base_url}/graphql", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        payload = json.load(resp)
    if payload.get("errors"):
        raise GraphQLError(json.dumps(payload["errors"], indent=1)[:4000])
    return payload["data"]


LOCATION_QUERY = """
{ workspaceOrError { __typename ... on Workspace { locationEntries { name loadStatus
    locationOrLoadError { __typename ... on PythonError { message } } } } } }
"""


def wait_for_webserver(base_url: str, proc: DagsterProcess, timeout: float = 120) -> float:
    """Until the server answers and the code location is loaded; returns the seconds waited."""
    start = time.monotonic()
    last = ""
    while time.monotonic() - start < timeout:
        if not proc.alive:
            raise RuntimeError(f"{proc.name} exited with {proc.proc.returncode}:\n{proc.tail()}")
        try:
            data = graphql(base_url, LOCATION_QUERY, timeout=10)
            entries = data["workspaceOrError"].get("locationEntries") or []
            if entries and all(e["loadStatus"] == "LOADED" for e in entries):
                errors = [e for e in entries if e["locationOrLoadError"]["__typename"] == "PythonError"]
                if errors:
                    raise RuntimeError(f"code location failed to load: {errors[0]['locationOrLoadError']['message']}")
                return time.monotonic() - start
            last = json.dumps(entries)
        except (urllib.error.URLError, ConnectionError, TimeoutError, socket.timeout) as exc:
            last = repr(exc)
        time.sleep(0.5)
    raise TimeoutError(f"{proc.name} not ready at {base_url} after {timeout:.0f}s (last: {last})\n{proc.tail()}")


def http_get(url: str, timeout: float = 30) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


# -- headless Chromium (Debian's ``chromium`` package; never a downloaded browser) -----------------
def find_chromium() -> str | None:
    for path in CHROMIUM_CANDIDATES:
        if os.access(path, os.X_OK):
            return path
    return None


def chromium_args(chromium: str, profile: Path, budget_ms: int) -> list[str]:
    return [
        chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
        "--no-first-run", "--no-default-browser-check", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--disable-extensions", "--mute-audio",
        "--hide-scrollbars", f"--user-data-dir={profile}", f"--virtual-time-budget={budget_ms}",
        "--run-all-compositor-stages-before-draw", "--window-size=1600,1000",
    ]


def run_chromium(chromium: str, url: str, profile: Path, *, dump_dom: bool = False, screenshot: Path | None = None,
                 budget_ms: int = 20000, timeout: float = 120, log: Path | None = None) -> str:
    """One headless Chromium process: load ``url``, let it render, dump the DOM or take a screenshot.

    Runs in its own process group, ended in any case (Chromium leaves helper processes behind when
    killed alone).
    """
    args = chromium_args(chromium, profile, budget_ms)
    if dump_dom:
        args.append("--dump-dom")
    if screenshot is not None:
        args.append(f"--screenshot={screenshot}")
    args.append(url)
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
    if log is not None:
        log.write_bytes(err)
    if proc.returncode != 0:
        raise RuntimeError(f"chromium exited {proc.returncode} on {url}:\n{err.decode(errors='replace')[-3000:]}")
    return out.decode(errors="replace")
