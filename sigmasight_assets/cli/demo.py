"""``demo``: the main job on the embedded default, end to end, quietly.

Output is one line per phase and per asset; the whole Dagster log of each run goes to a file under
``$DAGSTER_HOME/logs`` whose path is printed. Two runs of the ``daily_risk_graph`` job:

1. **warm-up**: the market-data layer (``symbol_universe``, ``prices`` and, where the graph has it,
   ``symbol_returns``) over the sessions before the range that the longest look-back window reads,
   so that every day of the range has its full history and no check warns for lack of it (its checks
   are recorded for the run, not per day: its days precede the first partition the UI shows);
2. **the range**: the whole graph over the ``--days`` sessions ending at ``--end``.

Both are launched through the code location (``launch.CodeLocation``: its server runs for the demo's
duration), as the UI launches runs, so the UI shows them on the job and the Overview timeline.

The partitions start at the first day of the range (``SIGMASIGHT_START_DATE``, recorded in
``$DAGSTER_HOME/sigmasight.env`` for ``make ui``), so the UI shows the range 100 % filled rather than a
few percent of a history nobody asked for; the warm-up days are history before the first partition.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import click
import pandas as pd

from .. import calendar, config
from .common import open_warehouse, sample_files
from .launch import CodeLocation
from .portfolios import record_ledger_observation

ENV_FILE = "sigmasight.env"
# The input layer a look-back window reads; only these are computed for the warm-up days.
WARMUP_ASSETS = ("symbol_universe", "prices", "symbol_returns")
MAX_WARMUP = 600  # sessions; the longest look-back on the market-data layer is 252 today
QUIET_LOGGER = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


def last_session(today: pd.Timestamp | None = None) -> pd.Timestamp:
    """The latest session whose close is in (before 21:00 New York, the previous session)."""
    now = pd.Timestamp.now(tz="America/New_York") if today is None else today
    day_ = now.normalize().tz_localize(None) if now.tzinfo else now.normalize()
    if calendar.is_session(day_) and (today is not None or now.hour >= 21):
        return day_
    return calendar.previous_session(day_)


class RunLines:
    """Prints one line per asset materialised by the newest run carrying ``tags`` (polled from the
    instance's event log in a background thread; the run itself stays on the main thread)."""

    def __init__(self, instance, tags: dict[str, str], since: float, echo=click.echo):
        self.instance, self.tags, self.since, self.echo = instance, tags, since, echo
        self.run_id: str | None = None
        self.seen: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="sigmasight-progress", daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=5)
        self.poll()  # the last materialisations of the run

    def _loop(self):
        while not self._stop.wait(0.5):
            self.poll()

    def poll(self) -> None:
        from dagster import DagsterEventType, RunsFilter

        try:
            if self.run_id is None:
                runs = self.instance.get_runs(RunsFilter(tags=self.tags), limit=1)
                record = self.instance.get_run_record_by_id(runs[0].run_id) if runs else None
                if record is None or record.create_timestamp.timestamp() < self.since - 1:
                    return
                self.run_id = runs[0].run_id
            records = self.instance.get_records_for_run(
                self.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION).records
            for rec in records:
                key = rec.event_log_entry.dagster_event.asset_key.to_user_string()
                if key not in self.seen:
                    self.seen.add(key)
                    self.echo(f"  done  {key:<24} {time.time() - self.since:7.1f}s")
        except Exception:  # noqa: BLE001 - progress is cosmetic; it never disturbs the run
            return


def warmup_sessions(asset_defs, warmup_keys: set[str]) -> int:
    """Sessions of history the longest look-back window on a warm-up asset reads before a day,
    through chains of warm-up assets (a window of 252 ``symbol_returns`` reads 251 earlier sessions of
    returns, and the earliest return reads the prices of the session before it: 252)."""
    from dagster import TimeWindowPartitionMapping

    edges: dict[str, list[tuple[str, int]]] = {}  # asset → (warm-up parent, sessions it reads before D)
    for a in asset_defs:
        for spec in a.specs:
            for dep in spec.deps:
                pm, parent = dep.partition_mapping, dep.asset_key.to_user_string()
                if parent in warmup_keys:
                    back = -int(pm.start_offset) if isinstance(pm, TimeWindowPartitionMapping) else 0
                    edges.setdefault(spec.key.to_user_string(), []).append((parent, back))

    def reach(key: str) -> int:  # sessions before D that materialising ``key`` on D needs from the warm-up
        return max((back + reach(parent) for parent, back in edges.get(key, ()) if parent != key), default=0)

    return max((reach(key) for key in edges), default=0)


def write_log(instance, run_id: str, path: Path) -> None:
    """The run's whole Dagster event log as text, one event per line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as out:
        for entry in instance.all_logs(run_id):
            ts = pd.Timestamp(entry.timestamp, unit="s").strftime("%Y-%m-%d %H:%M:%S")
            event = entry.dagster_event
            kind = event.event_type_value if event else "LOG"
            message = entry.user_message or (event.message if event and event.message else "")
            out.write(f"{ts} {entry.level if isinstance(entry.level, str) else _level(entry.level):<7} "
                      f"{entry.step_key or '-':<22} {kind:<26} {message}\n")


def _level(num: int) -> str:
    import logging

    return logging.getLevelName(num)


def check_summary(instance, run_id: str) -> tuple[dict[str, int], list[str]]:
    """Counts of the run's check results (passed / warn / error) and one line per check that did not pass."""
    from dagster import DagsterEventType

    counts, lines = {"passed": 0, "warn": 0, "error": 0}, []
    for rec in instance.get_records_for_run(run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION).records:
        ev = rec.event_log_entry.dagster_event.event_specific_data
        if ev.partition is not None:  # the range's verdict repeated on each of its days
            continue
        if ev.passed:
            counts["passed"] += 1
            continue
        level = "warn" if ev.severity.value == "WARN" else "error"
        counts[level] += 1
        lines.append(f"  {level:<5} {ev.asset_key.to_user_string()} / {ev.check_name}: {ev.description or ''}".rstrip())
    return counts, lines


@click.command("demo")
@click.option("--days", default=300, show_default=True, help="Trading days to compute, ending at the last close.")
@click.option("--end", "end_date", default=None, help="Last partition (YYYY-MM-DD); default the last close.")
@click.option("--progress/--no-progress", default=None, hidden=True, help="Ignored (the demo prints one line per asset).")
def demo(days: int, end_date: str | None, progress: bool | None = None) -> None:
    """The main job on the embedded default: load the sample portfolios, warm up the market data, run
    the daily_risk_graph job over the range, print a summary and the next commands.

    Uses the Dagster instance in ``$DAGSTER_HOME`` (so the runs show in the UI afterwards), the SQLite
    warehouse and the synthetic market unless ``SIGMASIGHT_DATABASE_URL``/``SIGMASIGHT_MARKET_DATA``
    say otherwise.
    """
    os.environ.setdefault("DAGSTER_HOME", str(config.dagster_home().resolve()))
    home = Path(os.environ["DAGSTER_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        src = Path(__file__).resolve().parents[2] / "dagster.yaml"
        (home / "dagster.yaml").write_text(src.read_text() if src.exists() else "telemetry:\n  enabled: false\n")
    end = pd.Timestamp(end_date) if end_date else last_session()
    sess = calendar.sessions_back(end, days)
    # The definitions are imported below, after the start date is known: the partitions begin with the
    # warm-up (this process computes it) and the UI is told the range's first day (sigmasight.env).
    before = calendar.previous_session(sess[0])
    os.environ["SIGMASIGHT_START_DATE"] = calendar.sessions_back(before, MAX_WARMUP)[0].date().isoformat()
    _load_sample()

    from dagster import DagsterInstance

    from ..defs.common import CHECKS_BY_DAY_TAG, range_tags
    from ..defs.failures import record_failed_run
    from ..local_runs import partitioned_assets
    from ..definitions import defs

    job = defs.resolve_job_def("daily_risk_graph")
    assets = partitioned_assets()
    keys = {k.to_user_string() for a in assets for k in a.keys}
    warm_keys = [k for k in WARMUP_ASSETS if k in keys]
    n_warm = warmup_sessions(assets, set(warm_keys))
    if n_warm > MAX_WARMUP:
        raise click.ClickException(f"a look-back window of {n_warm} sessions exceeds the demo's warm-up limit "
                                   f"({MAX_WARMUP}); raise MAX_WARMUP in cli/demo.py")
    warm = calendar.sessions_back(before, n_warm) if n_warm else pd.DatetimeIndex([])
    logs = home / "logs"
    with DagsterInstance.get() as instance, CodeLocation(home, logs / "demo-code-server.log") as location:
        for label, run_days, selection in (("warm-up", warm, warm_keys), ("range", sess, None)):
            if not len(run_days):
                continue
            start_s, end_s = run_days[0].date().isoformat(), run_days[-1].date().isoformat()
            what = f"{', '.join(selection)} only" if selection else "the whole graph"
            click.echo(f"{label}: daily_risk_graph over {len(run_days)} sessions {start_s}..{end_s} ({what})")
            tags = {**range_tags(start_s, end_s), "sigmasight/trigger": f"demo {label}"}
            started = time.time()
            # A subset keeps the job's own check selection (the nightly freshness check stays out); the
            # warm-up's days precede the first partition the UI shows, so no per-day verdicts there.
            checks = None
            if selection:
                tags[CHECKS_BY_DAY_TAG] = "0"
                checks = [(c.asset_key.to_user_string(), c.name) for a in assets for c in a.check_keys
                          if c.asset_key.to_user_string() in selection]
            with RunLines(instance, tags, started):
                run_id = location.launch(job.name, tags, QUIET_LOGGER, assets=selection, checks=checks)
                status = location.wait(instance, run_id)
            log_path = logs / f"demo-{label}-{run_id[:8]}.log"
            write_log(instance, run_id, log_path)
            ok = status == "SUCCESS"
            click.echo(f"  run {run_id} {'succeeded' if ok else status} in {time.time() - started:.1f}s; "
                       f"Dagster log: {log_path}")
            if not ok:
                record_failed_run(instance, run_id, defs.resources.get("warehouse"))  # run_failures, as the daemon's
                click.echo(f"the {label} run failed; the log above names the step and the error (also in the "
                           "warehouse table run_failures)", err=True)
                sys.exit(1)
        counts, problems = check_summary(instance, run_id)
    click.echo(f"checks of the range run: {counts['passed']} passed, {counts['warn']} warned, {counts['error']} failed")
    for line in problems[:10]:
        click.echo(line)
    (home / ENV_FILE).write_text(f"SIGMASIGHT_START_DATE={sess[0].date().isoformat()}\n")
    _print_summary(open_warehouse(None), sess[0], sess[-1])
    click.echo(
        "\nnext:\n"
        f"  make ui    # Dagster UI (reads {home / ENV_FILE}) → http://127.0.0.1:3000\n"
        f"             # = env $(cat {home / ENV_FILE}) DAGSTER_HOME={home} .venv/bin/dagster dev -w workspace.yaml\n"
        "  more days: UI Jobs → daily_risk_graph → Materialize → the days (exactly those days),\n"
        "             or `.venv/bin/sigmasight backfill --from D1 --to D2` (README: Backfills)\n"
        f"  .venv/bin/sigmasight show P-LONG            # one portfolio's latest results as text\n"
        f"  .venv/bin/sigmasight report P-LONG --html report.html   # the same as a page of plots"
    )


def _load_sample() -> None:
    from ..ledger import parse_ledger
    from ..warehouse.ledger import read_ledger, store_ledger

    positions, flows = sample_files()
    wh = open_warehouse(None)
    already = set(read_ledger(wh)[0]["portfolio_id"])
    counts = store_ledger(wh, parse_ledger(positions, flows, already_loaded=already))
    record_ledger_observation(wh)
    click.echo(f"loaded {counts['portfolios']} portfolio(s), {counts['positions']} position(s), "
               f"{counts['capital_flows']} capital flow(s) (the samples)")


def _print_summary(wh, start, end) -> None:
    from ..warehouse.schema import TABLES

    click.echo("warehouse rows in the range:")
    for name, table in TABLES.items():
        if "date" in table.c and name != "capital_flows":
            n = wh.count(name, start, end)
            if n:
                click.echo(f"  {name:<22} {n:>10,}")
