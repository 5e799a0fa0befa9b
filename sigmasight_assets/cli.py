"""``sigmasight``: the command line for domain tasks Dagster does not do.

Loading and listing portfolios, the end-to-end demo run, and reading results. Dagster itself
(``dagster dev``, ``dagster asset materialize``) does orchestration.
"""

from __future__ import annotations

import os
import sys
import time
from importlib import resources
from pathlib import Path

import click
import pandas as pd

from . import calendar, config
from .ledger import LedgerValidationError, parse_ledger


def _warehouse(url: str | None):
    from .warehouse import Warehouse

    wh = Warehouse(url or config.database_url())
    wh.create_all()
    return wh


def sample_files() -> tuple[Path, Path]:
    base = resources.files("sigmasight_assets") / "data"
    return Path(str(base / "sample_positions.csv")), Path(str(base / "sample_capital_flows.csv"))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """SigmaSight Assets: daily portfolio risk analytics on Dagster."""


@main.command("load-portfolios")
@click.argument("positions", type=click.Path(dir_okay=False, path_type=Path), required=False)
@click.option("--flows", type=click.Path(dir_okay=False, path_type=Path), help="Capital flows CSV.")
@click.option("--sample", is_flag=True, help="Load the sample portfolios shipped with the package.")
@click.option("--database-url", envvar="SIGMASIGHT_DATABASE_URL", help="Warehouse URL (default: embedded SQLite).")
def load_portfolios(positions: Path | None, flows: Path | None, sample: bool, database_url: str | None) -> None:
    """Validate a positions CSV (and capital flows CSV) and load it into the warehouse.

    Every problem is reported with file, row and field; if there is any, nothing is loaded.
    """
    if sample:
        positions, flows = sample_files()
    if positions is None:
        raise click.UsageError("give a POSITIONS file or --sample")
    from .warehouse.ledger import read_ledger, store_ledger

    wh = _warehouse(database_url)
    already = set(read_ledger(wh)[0]["portfolio_id"])
    try:
        ledger = parse_ledger(positions, flows, already_loaded=already)
    except LedgerValidationError as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)
    counts = store_ledger(wh, ledger)
    click.echo(
        f"loaded {counts['portfolios']} portfolio(s), {counts['positions']} position(s), "
        f"{counts['capital_flows']} capital flow(s) from {positions}"
    )
    by_class = ledger.positions.groupby(["portfolio_id", "investment_class"]).size().unstack(fill_value=0)
    click.echo(by_class.to_string())


@main.command("list")
@click.option("--database-url", envvar="SIGMASIGHT_DATABASE_URL")
def list_portfolios(database_url: str | None) -> None:
    """List the loaded portfolios with their position counts."""
    from .warehouse.ledger import read_ledger

    books, pos, flows = read_ledger(_warehouse(database_url))
    if books.empty:
        click.echo("no portfolios loaded (try: sigmasight load-portfolios --sample)")
        return
    counts = pos.groupby("portfolio_id").agg(positions=("position_id", "size"), symbols=("symbol", "nunique"),
                                             first_entry=("entry_date", "min"))
    out = books.set_index("portfolio_id")[["name"]].join(counts)
    out["net_flows"] = flows.groupby("portfolio_id")["amount"].sum() if len(flows) else 0.0
    click.echo(out.to_string())


def last_session(today: pd.Timestamp | None = None) -> pd.Timestamp:
    """The latest session whose close is in (before 21:00 New York, the previous session)."""
    now = pd.Timestamp.now(tz="America/New_York") if today is None else today
    day = now.normalize().tz_localize(None) if now.tzinfo else now.normalize()
    if calendar.is_session(day) and (today is not None or now.hour >= 21):
        return day
    return calendar.previous_session(day)


@main.command("demo")
@click.option("--days", default=300, show_default=True, help="Trading days to backfill, ending at the last close.")
@click.option("--end", "end_date", default=None, help="Last partition (YYYY-MM-DD); default the last close.")
def demo(days: int, end_date: str | None) -> None:
    """The main job on the embedded default: seed the sample portfolios, backfill the whole graph in one run.

    Uses the Dagster instance in ``$DAGSTER_HOME`` (so the run shows in the UI afterwards), the SQLite
    warehouse and the synthetic market unless ``SIGMASIGHT_DATABASE_URL``/``SIGMASIGHT_MARKET_DATA``
    say otherwise.
    """
    from dagster import DagsterInstance

    from .defs.jobs import materialize_range

    os.environ.setdefault("DAGSTER_HOME", str(config.dagster_home().resolve()))
    home = Path(os.environ["DAGSTER_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        src = Path(__file__).resolve().parent.parent / "dagster.yaml"
        (home / "dagster.yaml").write_text(src.read_text() if src.exists() else "telemetry:\n  enabled: false\n")
    ctx = click.get_current_context()
    ctx.invoke(load_portfolios, positions=None, flows=None, sample=True, database_url=None)
    end = pd.Timestamp(end_date) if end_date else last_session()
    sess = calendar.sessions_back(end, days)
    click.echo(f"backfilling {len(sess)} trading days {sess[0].date()}..{sess[-1].date()} of the whole graph in one run")
    started = time.time()
    with DagsterInstance.get() as instance:
        result = materialize_range(sess[0].date().isoformat(), sess[-1].date().isoformat(), instance=instance)
    elapsed = time.time() - started
    if not result.success:
        click.echo("the run failed; see the logs above", err=True)
        sys.exit(1)
    click.echo(f"run {result.run_id} succeeded in {elapsed:.1f}s")
    _print_summary(_warehouse(None), sess[0], sess[-1])
    click.echo(
        "\nOpen the Dagster UI on this instance:\n"
        f"  DAGSTER_HOME={home} .venv/bin/dagster dev -w workspace.yaml   # then http://127.0.0.1:3000"
    )


def _print_summary(wh, start, end) -> None:
    from .warehouse.schema import TABLES

    click.echo("\nwarehouse rows in the range:")
    for name, table in TABLES.items():
        if "date" in table.c and name != "capital_flows":
            n = wh.count(name, start, end)
            if n:
                click.echo(f"  {name:<22} {n:>10,}")


if __name__ == "__main__":  # pragma: no cover
    main()
