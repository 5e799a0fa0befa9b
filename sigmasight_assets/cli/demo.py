"""``demo``: the main job on the embedded default, end to end."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import click
import pandas as pd

from .. import calendar, config
from .common import PROGRESS_HELP, open_warehouse, progress_bar
from .portfolios import load_portfolios


# -- demo -------------------------------------------------------------------------------------------
def last_session(today: pd.Timestamp | None = None) -> pd.Timestamp:
    """The latest session whose close is in (before 21:00 New York, the previous session)."""
    now = pd.Timestamp.now(tz="America/New_York") if today is None else today
    day_ = now.normalize().tz_localize(None) if now.tzinfo else now.normalize()
    if calendar.is_session(day_) and (today is not None or now.hour >= 21):
        return day_
    return calendar.previous_session(day_)


class _RunProgress:
    """Follows an in-process run through the instance's event log and advances a tqdm bar per asset
    materialised (polled from a background thread; the run itself stays on the main thread)."""

    def __init__(self, instance, bar, tags: dict[str, str], since: float):
        self.instance, self.bar, self.tags, self.since = instance, bar, tags, since
        self.run_id: str | None = None
        self.seen: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="sigmasight-progress", daemon=True)

    def __enter__(self):
        if not self.bar.disable:
            self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread.is_alive():
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
                if runs and _created_after(self.instance, runs[0].run_id, self.since):
                    self.run_id = runs[0].run_id
                else:
                    return
            records = self.instance.get_records_for_run(
                self.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION).records
            for rec in records:
                key = rec.event_log_entry.dagster_event.asset_key.to_user_string()
                if key not in self.seen:
                    self.seen.add(key)
                    self.bar.set_postfix_str(key)
                    self.bar.update()
        except Exception:  # noqa: BLE001 - the bar is cosmetic; it never disturbs the run
            return


def _created_after(instance, run_id: str, since: float) -> bool:
    record = instance.get_run_record_by_id(run_id)
    return record is not None and record.create_timestamp.timestamp() >= since - 1


@click.command("demo")
@click.option("--days", default=300, show_default=True, help="Trading days to backfill, ending at the last close.")
@click.option("--end", "end_date", default=None, help="Last partition (YYYY-MM-DD); default the last close.")
@click.option("--progress/--no-progress", default=None, help=PROGRESS_HELP)
def demo(days: int, end_date: str | None, progress: bool | None = None) -> None:
    """The main job on the embedded default: seed the sample portfolios, backfill the whole graph in one run.

    Uses the Dagster instance in ``$DAGSTER_HOME`` (so the run shows in the UI afterwards), the SQLite
    warehouse and the synthetic market unless ``SIGMASIGHT_DATABASE_URL``/``SIGMASIGHT_MARKET_DATA``
    say otherwise.
    """
    from dagster import DagsterInstance

    from ..defs.common import range_tags
    from ..local_runs import materialize_range

    os.environ.setdefault("DAGSTER_HOME", str(config.dagster_home().resolve()))
    home = Path(os.environ["DAGSTER_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        src = Path(__file__).resolve().parents[2] / "dagster.yaml"
        (home / "dagster.yaml").write_text(src.read_text() if src.exists() else "telemetry:\n  enabled: false\n")
    ctx = click.get_current_context()
    ctx.invoke(load_portfolios, positions=None, flows=None, sample=True, database_url=None, progress=progress)
    end = pd.Timestamp(end_date) if end_date else last_session()
    sess = calendar.sessions_back(end, days)
    start_s, end_s = sess[0].date().isoformat(), sess[-1].date().isoformat()
    click.echo(f"backfilling {len(sess)} trading days {sess[0].date()}..{sess[-1].date()} of the whole graph in one run")
    started = time.time()
    n_assets = _partitioned_asset_count()
    with DagsterInstance.get() as instance, progress_bar(n_assets, "demo run", progress, unit="asset") as bar:
        with _RunProgress(instance, bar, range_tags(start_s, end_s), started):
            result = materialize_range(start_s, end_s, instance=instance, raise_on_error=False,
                                       tags={"sigmasight/trigger": "sigmasight demo"})
    elapsed = time.time() - started
    if not result.success:
        failed = sorted({e.step_key for e in result.all_events if e.is_step_failure and e.step_key})
        click.echo(f"run {result.run_id} failed (step(s) {', '.join(failed) or '-'}); the error is in the log "
                   "above and in the warehouse table run_failures", err=True)
        sys.exit(1)
    click.echo(f"run {result.run_id} succeeded in {elapsed:.1f}s")
    _print_summary(open_warehouse(None), sess[0], sess[-1])
    click.echo(
        "\nOpen the Dagster UI on this instance:\n"
        f"  DAGSTER_HOME={home} .venv/bin/dagster dev -w workspace.yaml   # then http://127.0.0.1:3000"
    )


def _partitioned_asset_count() -> int:
    from ..local_runs import partitioned_assets

    return len({k for a in partitioned_assets() for k in a.keys})


def _print_summary(wh, start, end) -> None:
    from ..warehouse.schema import TABLES

    click.echo("\nwarehouse rows in the range:")
    for name, table in TABLES.items():
        if "date" in table.c and name != "capital_flows":
            n = wh.count(name, start, end)
            if n:
                click.echo(f"  {name:<22} {n:>10,}")
