"""Helpers for the end-to-end UI tests: a real ``dagster-webserver`` (and ``dagster-daemon``) on a free
local port, with their own ``DAGSTER_HOME`` and SQLite warehouse, the GraphQL API the UI uses, and
headless Chromium from Debian's ``chromium`` package driven over the DevTools protocol (a small
stdlib WebSocket client: no browser download, no Selenium/Playwright).

Every process is started in its own session (``start_new_session``), so it leads a process group
that holds everything it spawns (Dagster's code servers and run workers do not leave the group);
:meth:`DagsterProcess.stop` ends the whole group — SIGTERM, then SIGKILL — and reports any survivor.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

REPO_ROOT = Path(__file__).resolve().parent.parent
WORKSPACE = REPO_ROOT / "workspace.yaml"
BIN = Path(sys.executable).parent  # the virtualenv's bin: dagster-webserver, dagster-daemon, sigmasight

# Every partitioned asset of the code location (DESIGN.md §3), and the one unpartitioned source.
PARTITIONED_ASSETS = (
    "symbol_universe", "prices", "symbol_returns", "daily_valuations", "symbol_betas", "ridge_factors", "spread_factors",
    "factor_model", "factor_covariance", "replay_window_returns", "symbol_metrics", "portfolio_snapshots", "correlations",
    "aggregated_exposures", "stress_results", "portfolio_risk", "risk_contributions", "var_backtest",
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


def wait_group_gone(pgid: int, timeout: float = 10.0) -> list[int]:
    """Poll until process group ``pgid`` has no live member; returns the members left after ``timeout``."""
    deadline = time.monotonic() + timeout
    members = _group_members(pgid)
    while members and time.monotonic() < deadline:
        time.sleep(0.1)
        members = _group_members(pgid)
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
        return wait_group_gone(pgid, timeout=5.0)


def start_webserver(home: Path, env: dict[str, str], log_dir: Path, port: int | None = None) -> tuple[DagsterProcess, str]:
    port = port or free_port()
    args = [executable("dagster-webserver"), "-w", str(WORKSPACE), "-h", "127.0.0.1", "-p", str(port)]
    proc = DagsterProcess("dagster-webserver", args, env, log_dir / "webserver.log").start()
    return proc, f"http://127.0.0.1:{port}"


# Seconds between the daemon's backfill iterations in the tests. Dagster fixes it at 30 s
# (``dagster._daemon.controller.DEFAULT_DAEMON_INTERVAL_SECONDS``, read by the backfill loop on every
# iteration; dagster.yaml has no setting for it), so a backfill whose runs take seconds spends most of
# its time waiting for the next iteration. The tests start the very same ``dagster-daemon run`` with
# that one constant lowered: the backfill, run queue and sensor daemons are otherwise Dagster's own.
TEST_BACKFILL_INTERVAL_S = 3
# The run queue's dequeue interval (Dagster's default 5 s), set the supported way: the run
# coordinator's ``dequeue_interval_seconds`` next to the repository's ``concurrency`` block.
TEST_DEQUEUE_INTERVAL_S = 1
TEST_RUN_COORDINATOR = f"""
# (tests) the run queue polled every {TEST_DEQUEUE_INTERVAL_S} s instead of 5 s; concurrency above unchanged
run_coordinator:
  module: dagster._core.run_coordinator
  class: QueuedRunCoordinator
  config:
    dequeue_interval_seconds: {TEST_DEQUEUE_INTERVAL_S}
"""


def install_repo_dagster_yaml(home: Path) -> Path:
    """The repository's dagster.yaml in ``home`` (queued runs, its concurrency limits, run monitoring),
    with the run queue polled every ``TEST_DEQUEUE_INTERVAL_S`` seconds."""
    text = (REPO_ROOT / "dagster.yaml").read_text()
    assert "run_coordinator:" not in text, "dagster.yaml now configures the run coordinator: merge, do not append"
    path = home / "dagster.yaml"
    path.write_text(text.rstrip("\n") + "\n" + TEST_RUN_COORDINATOR)
    return path
_DAEMON_MAIN = (
    "import sys; import dagster._daemon.controller as c; c.DEFAULT_DAEMON_INTERVAL_SECONDS = {interval}; "
    "from dagster._daemon.cli import main; sys.argv[0] = 'dagster-daemon'; sys.exit(main())"
)


def daemon_command(workspace: Path | str = WORKSPACE, backfill_interval_s: int = TEST_BACKFILL_INTERVAL_S) -> list[str]:
    """``dagster-daemon run -w workspace`` of this virtualenv, its backfill loop every ``backfill_interval_s``."""
    python = BIN / "python"
    return [str(python if python.exists() else sys.executable), "-c",
            _DAEMON_MAIN.format(interval=int(backfill_interval_s)), "run", "-w", str(workspace)]


def start_daemon(env: dict[str, str], log_dir: Path) -> DagsterProcess:
    return DagsterProcess("dagster-daemon", daemon_command(), env, log_dir / "daemon.log").start()


class GraphQLError(RuntimeError):
    pass


def graphql(base_url: str, query: str, variables: dict | None = None, timeout: float = 60) -> dict:
    """POST /graphql (what the UI does); returns ``data`` or raises with the server's errors."""
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    req = urllib.request.Request(f"{base_url}/graphql", data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            payload = json.load(resp)
    except urllib.error.HTTPError as exc:  # the server's own account of a 500 is in the body
        raise GraphQLError(f"HTTP {exc.code}: {exc.read().decode(errors='replace')[:4000]}") from None
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


# -- a minimal Chrome DevTools Protocol client (stdlib only: RFC 6455 client frames over a socket) --
class CDPError(RuntimeError):
    pass


class _WebSocket:
    """Just enough of a WebSocket client for the DevTools protocol on 127.0.0.1 (text frames)."""

    def __init__(self, url: str, timeout: float = 30):
        rest = url.split("://", 1)[1]
        hostport, path = rest.split("/", 1)
        host, port = hostport.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET /{path} HTTP/1.1\r\nHost: {hostport}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise CDPError("DevTools closed the connection during the handshake")
            head += chunk
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise CDPError(f"DevTools refused the WebSocket: {head[:200]!r}")
        self._buf = head.split(b"\r\n\r\n", 1)[1]

    def _read(self, n: int) -> bytes:
        while len(self._buf) < n:
            chunk = self.sock.recv(max(65536, n - len(self._buf)))
            if not chunk:
                raise CDPError("DevTools closed the connection")
            self._buf += chunk
        out, self._buf = self._buf[:n], self._buf[n:]
        return out

    def send(self, text: str) -> None:
        payload = text.encode()
        header = bytearray([0x81])
        n = len(payload)
        if n < 126:
            header.append(0x80 | n)
        elif n < 1 << 16:
            header += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            header += bytes([0x80 | 127]) + struct.pack(">Q", n)
        mask = os.urandom(4)
        header += mask
        self.sock.sendall(bytes(header) + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def recv(self) -> str:
        parts = []
        while True:
            b0, b1 = self._read(2)
            opcode, n = b0 & 0x0F, b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._read(8))[0]
            data = self._read(n)  # server frames are not masked
            if opcode == 0x8:
                raise CDPError("DevTools closed the WebSocket")
            if opcode in (0x9, 0xA):  # ping / pong: ignore (DevTools does not ping)
                continue
            parts.append(data)
            if b0 & 0x80:
                return b"".join(parts).decode()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


class HeadlessChromium:
    """Debian's ``chromium`` in headless mode, driven over the DevTools protocol.

    ``open`` waits for what a person would wait for (texts in the rendered page), not for a fixed
    time; ``screenshot`` saves a PNG of the viewport. The browser runs in its own process group and
    is ended with it.
    """

    def __init__(self, chromium: str, profile: Path, width: int = 1600, height: int = 1000, log: Path | None = None):
        self.chromium, self.profile, self.width, self.height = chromium, profile, width, height
        self.log = log or profile.parent / "chromium.log"
        self.proc: subprocess.Popen | None = None
        self.ws: _WebSocket | None = None
        self._id = 0

    def __enter__(self) -> "HeadlessChromium":
        self.profile.mkdir(parents=True, exist_ok=True)
        (self.profile / "DevToolsActivePort").unlink(missing_ok=True)  # a previous browser's port
        args = [
            self.chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
            "--no-first-run", "--no-default-browser-check", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--disable-extensions", "--mute-audio", "--hide-scrollbars",
            f"--user-data-dir={self.profile}", f"--window-size={self.width},{self.height}",
            "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0", "about:blank",
        ]
        self._log_file = open(self.log, "wb")
        self.proc = subprocess.Popen(args, stdout=self._log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        try:
            port = self._devtools_port()
            page = self._page_target(port)
            self.ws = _WebSocket(page["webSocketDebuggerUrl"])
            self.call("Page.enable")
            self.call("Runtime.enable")
            self.call("Emulation.setDeviceMetricsOverride",
                      {"width": self.width, "height": self.height, "deviceScaleFactor": 1, "mobile": False})
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _devtools_port(self, timeout: float = 60) -> int:
        marker = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"chromium exited with {self.proc.returncode}: {self.log.read_text(errors='replace')[-3000:]}")
            with contextlib.suppress(OSError, ValueError, IndexError):
                return int(marker.read_text().splitlines()[0])
            time.sleep(0.1)
        raise TimeoutError(f"chromium did not open its DevTools port within {timeout:.0f}s")

    def _page_target(self, port: int, timeout: float = 30) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, ValueError):
                targets = json.loads(http_get(f"http://127.0.0.1:{port}/json/list", timeout=5)[1])
                pages = [t for t in targets if t.get("type") == "page" and t.get("webSocketDebuggerUrl")]
                if pages:
                    return pages[0]
            time.sleep(0.1)
        raise TimeoutError("chromium exposed no page target")

    def __exit__(self, *exc) -> None:
        if self.ws is not None:
            self.ws.close()
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=10)
            self._log_file.close()
            leftovers = wait_group_gone(self.proc.pid)
            if leftovers:
                raise RuntimeError(f"chromium processes left running: {leftovers}")

    def call(self, method: str, params: dict | None = None, timeout: float = 60) -> dict:
        self._id += 1
        my_id = self._id
        self.ws.sock.settimeout(timeout)
        self.ws.send(json.dumps({"id": my_id, "method": method, "params": params or {}}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == my_id:
                if "error" in msg:
                    raise CDPError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    def evaluate(self, expression: str):
        res = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in res:
            raise CDPError(f"{expression[:80]}: {res['exceptionDetails'].get('text')}")
        return res["result"].get("value")

    def open(self, url: str, wait_for: Sequence[str] = (), timeout: float = 90, settle: float = 1.5,
             max_settle: float = 8.0) -> float:
        """Navigate to ``url``, then :meth:`wait_for`. Returns the seconds it took."""
        started = time.monotonic()
        self.call("Page.navigate", {"url": url})
        self.wait_for(wait_for, timeout=timeout, settle=settle, max_settle=max_settle)
        return time.monotonic() - started

    def wait_for(self, texts: Sequence[str] = (), timeout: float = 90, settle: float = 1.5, max_settle: float = 8.0,
                 in_dom: bool = False) -> None:
        """Wait until every text is in the rendered page (its visible text, or its HTML with
        ``in_dom``), then until the page has not changed for ``settle`` seconds — at most
        ``max_settle`` more: live pages such as timelines never stop changing."""
        source = "document.documentElement.outerHTML" if in_dom else "document.body.innerText"
        expression = f"document.readyState === 'complete' && document.body ? {source} : ''"
        started = time.monotonic()
        last, changed_at, found_at, missing = None, started, None, list(texts)
        while time.monotonic() - started < timeout:
            content = self.evaluate(expression) or ""
            now = time.monotonic()
            if content != last:
                last, changed_at = content, now
            missing = [t for t in texts if t not in content]
            if content and not missing:
                found_at = found_at or now
                if now - changed_at >= settle or now - found_at >= max_settle:
                    return
            else:
                found_at = None
            time.sleep(0.25)
        page = self.evaluate("document.body ? document.body.innerText : ''") or ""
        raise TimeoutError(f"still missing {missing} after {timeout:.0f}s; page text: {page[:1500]}")

    def text(self) -> str:
        return self.evaluate("document.body ? document.body.innerText : ''") or ""

    def dom(self) -> str:
        return self.evaluate("document.documentElement.outerHTML") or ""

    def screenshot(self, path: Path) -> Path:
        data = self.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": False})["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path


def png_summary(path: Path) -> dict:
    """Width, height and the number of distinct (filtered) scanlines of a PNG — stdlib only.

    A blank or single-colour page compresses to a handful of distinct scanlines whatever the row
    filters; a rendered UI has hundreds.
    """
    import zlib

    data = path.read_bytes()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path} is not a PNG")
    pos, idat = 8, b""
    width = height = bit_depth = color_type = 0
    while pos < len(data):
        length, ctype = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        if ctype == b"IHDR":
            width, height, bit_depth, color_type = struct.unpack(">IIBB", body[:10])
        elif ctype == b"IDAT":
            idat += body
        pos += 12 + length
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[color_type]
    stride = width * channels * bit_depth // 8 + 1
    raw = zlib.decompress(idat)
    rows = {raw[r * stride : (r + 1) * stride] for r in range(height)}
    return {"width": width, "height": height, "distinct_rows": len(rows)}


def wait_until(predicate, what: str, deadline: float, poll: float = 1.0):
    """``predicate()``'s first truthy value, polled until the ``time.time()`` deadline (else an
    assertion naming ``what``)."""
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out waiting for {what}")


def kill_group(proc: subprocess.Popen) -> None:
    """Stop a process started with ``start_new_session=True`` and every member of its group."""
    try:
        pgid = os.getpgid(proc.pid)
    except ProcessLookupError:
        return
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
        # The leader is gone; make sure no child of the group survives it.
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return
