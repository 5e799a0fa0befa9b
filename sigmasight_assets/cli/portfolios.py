"""``load-portfolios``, ``list`` and ``remove-portfolios``: the portfolio ledger."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import pandas as pd

from ..ledger import LedgerValidationError, parse_ledger
from .common import (BACKFILL_HINT, DATABASE_URL_HELP, PROGRESS_HELP, day, first_date, money, open_warehouse,
                     progress_bar, render_table, sample_files, short_list)


# -- load-portfolios --------------------------------------------------------------------------------
@click.command("load-portfolios")
@click.argument("positions", type=click.Path(dir_okay=False, path_type=Path), required=False)
@click.option("--flows", type=click.Path(dir_okay=False, path_type=Path), help="Capital flows CSV.")
@click.option("--marks", type=click.Path(dir_okay=False, path_type=Path),
              help="Private marks CSV: portfolio_id, position_id or symbol, date, value (dated values of PRIVATE "
                   "positions; replaces the stored marks of the portfolios in the files).")
@click.option("--sample", is_flag=True, help="Load the sample portfolios shipped with the package.")
@click.option("--database-url", envvar="SIGMASIGHT_DATABASE_URL", help=DATABASE_URL_HELP)
@click.option("--progress/--no-progress", default=None, help=PROGRESS_HELP)
def load_portfolios(positions: Path | None, flows: Path | None, sample: bool, database_url: str | None,
                    progress: bool | None = None, marks: Path | None = None) -> None:
    """Validate a positions CSV (and capital flows and private marks CSVs) and load it into the warehouse.

    Every problem is reported with file, row and field; if there is any, nothing is loaded (exit
    code 2). After loading, a validation report: positions by portfolio and class, and warnings —
    symbols the latest symbol_universe partition does not know yet (they are fetched once the
    universe and prices are materialised for that day), private assets (never fetched), expired
    options, and history the warehouse has not been backfilled for.
    """
    if sample:
        positions, flows = sample_files()
    if positions is None:
        raise click.UsageError("give a POSITIONS file or --sample")
    from ..warehouse.ledger import read_ledger, store_ledger

    with progress_bar(4, "load-portfolios", progress) as bar:
        bar.set_postfix_str("reading the warehouse")
        wh = open_warehouse(database_url)
        stored_books, stored_positions, _ = read_ledger(wh)
        already = set(stored_books["portfolio_id"])
        bar.update()
        bar.set_postfix_str(f"validating {positions.name}")
        try:
            ledger = parse_ledger(positions, flows, already_loaded=already, marks_path=marks,
                                  stored_positions=stored_positions)
        except LedgerValidationError as exc:
            bar.close()
            click.echo(str(exc), err=True)
            sys.exit(2)
        bar.update()
        bar.set_postfix_str("storing")
        counts = store_ledger(wh, ledger)
        bar.update()
        bar.set_postfix_str("checking against the warehouse")
        report = ledger_report(wh, ledger.portfolios, ledger.positions)
        bar.update()
    marks_part = f", {counts['private_marks']} private mark(s) from {marks}" if marks is not None else ""
    if counts["capital_flows_given"]:
        click.echo(f"loaded {counts['portfolios']} portfolio(s), {counts['positions']} position(s), "
                   f"{counts['capital_flows']} capital flow(s) from {positions}" + marks_part)
    else:  # the stored flows were kept, not replaced by zero flows
        click.echo(f"loaded {counts['portfolios']} portfolio(s), {counts['positions']} position(s) from {positions}"
                   + marks_part + f"; capital flows unchanged (no --flows file): {counts['capital_flows_kept']} "
                   "stored flow(s) kept")
    click.echo(report)
    record_ledger_observation(wh)


def record_ledger_observation(wh) -> None:
    """Record an observation of the ``portfolios`` source asset (its data version and counts) on the
    Dagster instance in ``$DAGSTER_HOME``, so the UI shows when the ledger last changed. Without a
    Dagster home, or when the instance cannot be reached, the ledger stays loaded and a note says so."""
    import os

    if not os.environ.get("DAGSTER_HOME"):
        return
    from dagster import AssetObservation, DagsterInstance

    from ..defs.market_assets import ledger_observation

    version, counts = ledger_observation(wh)
    try:
        with DagsterInstance.get() as instance:
            instance.report_runless_asset_event(AssetObservation(
                asset_key="portfolios", metadata=counts, tags={"dagster/data_version": version}))
    except Exception as exc:  # noqa: BLE001 - the ledger is loaded; the observation is for the UI only
        click.echo(f"note: the portfolios observation was not recorded on the Dagster instance ({exc})", err=True)


REPORT_MAX_PORTFOLIOS = 20  # a load report with more portfolios shows totals and the largest books
REPORT_LARGEST = 10


def ledger_report(wh, books: pd.DataFrame, pos: pd.DataFrame) -> str:
    """Counts by portfolio and investment class, and the warnings a data engineer should act on."""
    from ..ledger import private_symbols

    latest = wh.latest_date("symbol_universe")
    first = first_date(wh, "symbol_universe")
    names = dict(zip(books["portfolio_id"], books["name"])) if len(books) else {}
    live = pos[~pos["deleted"].astype(bool)] if len(pos) else pos
    as_of = pd.Timestamp(latest) if latest else pd.Timestamp.today().normalize()
    exit_dates = pd.to_datetime(live["exit_date"])
    open_mask = exit_dates.isna() | (exit_dates > as_of)
    rows = []
    for pid in sorted(set(books["portfolio_id"]) | set(pos["portfolio_id"])):
        p_all = pos[pos["portfolio_id"] == pid]
        p = live[live["portfolio_id"] == pid]
        by_class = p["investment_class"].value_counts()
        rows.append([
            pid, names.get(pid, ""), int(by_class.get("PUBLIC", 0)), int(by_class.get("OPTIONS", 0)),
            int(by_class.get("PRIVATE", 0)), len(p_all), int(open_mask[p.index].sum()),
            len(p) - int(open_mask[p.index].sum()), len(p_all) - len(p), p["symbol"].nunique(),
            day(pd.to_datetime(p["entry_date"]).min()) if len(p) else "—",
        ])
    headers = ["portfolio", "name", "PUBLIC", "OPTIONS", "PRIVATE", "positions", "open", "exited", "deleted",
               "symbols", "first entry"]
    title = "positions by portfolio and class" + (f" (open/exited as of {day(as_of)})" if latest else "")
    if len(rows) > REPORT_MAX_PORTFOLIOS:
        # A big file: the totals and the largest books, not a line per portfolio.
        shown = sorted(rows, key=lambda r: (-r[5], r[0]))[:REPORT_LARGEST]
        firsts = [r[10] for r in rows if r[10] != "—"]
        total = ["all", f"{len(rows):,} portfolios", *(f"{sum(r[i] for r in rows):,}" for i in range(2, 9)),
                 f"{live['symbol'].nunique():,}" if len(live) else "0", min(firsts) if firsts else "—"]
        lines = [f"{title}: {len(rows):,} portfolios; the {REPORT_LARGEST} largest (all: `sigmasight list`):",
                 render_table([total, *shown], headers, "llrrrrrrrrl")]
    else:
        lines = [f"{title}:", render_table(rows, headers, "llrrrrrrrrl")]

    warnings: list[str] = []
    private = private_symbols(live)
    market = live[~live["symbol"].isin(private)]
    held_open = market[open_mask[market.index]]
    expired = set()
    if len(market) and "expiration" in market:
        exp = pd.to_datetime(market["expiration"])
        expired = set(market.loc[exp.notna() & (exp < as_of), "symbol"])
    wanted = set(held_open["symbol"]) - expired
    if latest is None:
        if wanted:
            warnings.append(
                f"symbol_universe has no partition yet: {len(wanted)} market symbol(s) will be fetched by the first "
                f"run — {BACKFILL_HINT}")
    else:
        uni = wh.read("symbol_universe", latest, latest, keys=sorted(wanted), columns=["symbol"])
        unknown = wanted - set(uni["symbol"])
        if unknown:
            warnings.append(
                f"{len(unknown)} symbol(s) not in the latest symbol_universe partition ({day(latest)}): "
                f"{short_list(unknown)} — status `pending` until symbol_universe and prices are materialised for "
                f"that day (the nightly run, or a scoped run with `symbols: [...]`); see `sigmasight symbol-status`")
        early = live[pd.to_datetime(live["entry_date"]) < pd.Timestamp(first)] if first is not None else live.iloc[0:0]
        if len(early):
            by_pf = early.groupby("portfolio_id")["entry_date"].min()
            detail = ", ".join(f"{k} from {day(v)}" for k, v in by_pf.items())
            warnings.append(
                f"positions entered before the warehouse's first symbol_universe partition ({day(first)}): {detail} — "
                f"their history is not computed until it is backfilled; {BACKFILL_HINT}")
    if private:
        warnings.append(f"{len(private)} private asset(s), valued at their last mark on or before each day (manual_value "
                        f"= a mark at entry; entry cost before the first) and never sent to a market data provider: "
                        f"{short_list(private)}")
    if expired:
        warnings.append(f"{len(expired)} option(s) past expiration (inactive, never fetched): {short_list(expired)}")
    if warnings:
        lines.append("warnings:")
        lines += [f"  - {w}" for w in warnings]
    else:
        lines.append("warnings: none")
    return "\n".join(lines)


# -- list -------------------------------------------------------------------------------------------
@click.command("list")
@click.option("--database-url", envvar="SIGMASIGHT_DATABASE_URL", help=DATABASE_URL_HELP)
def list_portfolios(database_url: str | None) -> None:
    """List the loaded portfolios with their position counts."""
    from ..warehouse.ledger import read_ledger

    books, pos, flows = read_ledger(open_warehouse(database_url))
    if books.empty:
        click.echo("no portfolios loaded (try: sigmasight load-portfolios --sample)")
        return
    live = pos[~pos["deleted"].astype(bool)]
    exits = pd.to_datetime(live["exit_date"])
    counts = live.assign(open=exits.isna()).groupby("portfolio_id").agg(
        positions=("symbol", "size"), open=("open", "sum"), symbols=("symbol", "nunique"),
        first_entry=("entry_date", "min"))
    net = flows.groupby("portfolio_id")["amount"].sum() if len(flows) else pd.Series(dtype=float)
    n_flows = flows.groupby("portfolio_id").size() if len(flows) else pd.Series(dtype=int)
    rows = []
    for pid, name in sorted(zip(books["portfolio_id"], books["name"])):
        c = counts.loc[pid] if pid in counts.index else None
        rows.append([pid, name or "", 0 if c is None else int(c["positions"]), 0 if c is None else int(c["open"]),
                     0 if c is None else int(c["symbols"]), "—" if c is None else day(c["first_entry"]),
                     int(n_flows.get(pid, 0)), money(net.get(pid, float("nan"))) if pid in net.index else "—"])
    click.echo(f"{len(rows):,} portfolio(s) loaded:")
    click.echo(render_table(rows, ["portfolio", "name", "positions", "open", "symbols", "first entry", "flows",
                                   "net flows (USD)"], "llrrrlrr"))




# -- remove-portfolios ------------------------------------------------------------------------------
@click.command("remove-portfolios")
@click.argument("portfolio_ids", nargs=-1, required=True)
@click.option("--database-url", envvar="SIGMASIGHT_DATABASE_URL", help=DATABASE_URL_HELP)
def remove_portfolios(portfolio_ids: tuple[str, ...], database_url: str | None) -> None:
    """Remove portfolios from the ledger (their positions and capital flows), in one transaction.

    Their analytics rows are then deleted from every portfolio table by the Dagster daemon
    (portfolio_ledger_sensor requests a run of the job remove_portfolio_rows).
    """
    from ..warehouse.ledger import read_ledger, remove_ledger

    wh = open_warehouse(database_url)
    known = set(read_ledger(wh)[0]["portfolio_id"])
    unknown = sorted(set(portfolio_ids) - known)
    if unknown:
        click.echo(f"unknown portfolio(s) {unknown}; loaded: {short_list(known) or 'none'}", err=True)
        sys.exit(2)
    counts = remove_ledger(wh, sorted(set(portfolio_ids)))
    click.echo(f"removed {counts['portfolios']} portfolio(s), {counts['positions']} position(s), "
               f"{counts['capital_flows']} capital flow(s); their analytics rows are deleted by the daemon's "
               "portfolio_ledger_sensor (job remove_portfolio_rows)")
    record_ledger_observation(wh)
