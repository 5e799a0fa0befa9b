"""``sigmasight``: the command line for domain tasks Dagster does not do.

Loading, validating and listing portfolios, the end-to-end demo run, and reading results from the
warehouse (a symbol's onboarding status, a portfolio's latest snapshot, exposures and stress).
Dagster itself (``dagster dev``, ``dagster asset materialize``) does orchestration.

Every command reads the warehouse of ``--database-url`` / ``SIGMASIGHT_DATABASE_URL`` (default the
embedded SQLite file under ``$DAGSTER_HOME``). Long operations show a progress bar on a terminal
(``--progress`` forces it, ``--no-progress`` hides it).
"""

from __future__ import annotations

import json
import math
import os
import sys
import threading
import time
from importlib import resources
from pathlib import Path
from typing import Iterable, Sequence

import click
import pandas as pd

from . import calendar, config
from .cli_warehouse import warehouse as warehouse_commands
from .ledger import LedgerValidationError, parse_ledger

DATABASE_URL_HELP = "Warehouse SQLAlchemy URL (default: $SIGMASIGHT_DATABASE_URL, else SQLite in $DAGSTER_HOME)."
PROGRESS_HELP = "Show a progress bar (default: only on a terminal)."
BACKFILL_HINT = ("materialise the range in the Dagster UI (asset graph → Materialize all → partition range) or "
                 "`dagster asset materialize -m sigmasight_assets.definitions --select '*' --partition-range START...END`")


def _warehouse(url: str | None):
    from .warehouse import Warehouse

    wh = Warehouse(url or config.database_url())
    wh.create_all()
    return wh


def sample_files() -> tuple[Path, Path]:
    base = resources.files("sigmasight_assets") / "data"
    return Path(str(base / "sample_positions.csv")), Path(str(base / "sample_capital_flows.csv"))


# -- presentation helpers ---------------------------------------------------------------------------
def _progress(total: int, desc: str, enabled: bool | None, unit: str = "step"):
    """A tqdm bar on stderr; ``enabled=None`` shows it only when stderr is a terminal."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, disable=(None if enabled is None else not enabled),
                leave=True, dynamic_ncols=True)


def _isnan(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NaT or (
        not isinstance(v, (str, bytes, list, dict)) and pd.isna(v))


def money(v) -> str:
    return "—" if _isnan(v) else f"{v:,.0f}"


def pct(v, digits: int = 2) -> str:
    return "—" if _isnan(v) else f"{v * 100:.{digits}f}%"


def num(v, digits: int = 3) -> str:
    return "—" if _isnan(v) else f"{v:.{digits}f}"


def day(v) -> str:
    return "—" if _isnan(v) else pd.Timestamp(v).date().isoformat()


def render_table(rows: Sequence[Sequence], headers: Sequence[str] | None, align: str | None = None,
                 indent: int = 2) -> str:
    """A plain text table: ``align`` has one letter per column, ``l`` or ``r`` (default: left);
    ``headers=None`` for a key/value block without a header line."""
    body = [["" if c is None else str(c) for c in row] for row in rows]
    n_cols = len(headers) if headers is not None else max((len(r) for r in body), default=0)
    cells = ([[str(h) for h in headers]] if headers is not None else []) + body
    align = align or "l" * n_cols
    widths = [max((len(r[i]) for r in cells), default=0) for i in range(n_cols)]

    def line(row):
        parts = [c.rjust(w) if a == "r" else c.ljust(w) for c, w, a in zip(row, widths, align)]
        return " " * indent + "  ".join(parts).rstrip()

    if headers is None:
        return "\n".join(line(r) for r in body)
    rule = " " * indent + "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule, *(line(r) for r in body)])


def _short_list(items: Iterable[str], limit: int = 12) -> str:
    items = sorted(items)
    text = ", ".join(items[:limit])
    return text + (f", … {len(items) - limit} more" if len(items) > limit else "")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """SigmaSight Assets: daily portfolio risk analytics on Dagster.

    \b
    Portfolios:  load-portfolios, list
    Results:     show PORTFOLIO_ID, symbol-status SYMBOL...
    End to end:  demo
    Warehouse:   warehouse grant (PostgreSQL roles: writer, read-only)
    Orchestration (materialise, backfill, lineage, checks) is Dagster's: `dagster dev -w workspace.yaml`.
    """


# -- load-portfolios --------------------------------------------------------------------------------
@main.command("load-portfolios")
@click.argument("positions", type=click.Path(dir_okay=False, path_type=Path), required=False)
@click.option("--flows", type=click.Path(dir_okay=False, path_type=Path), help="Capital flows CSV.")
@click.option("--sample", is_flag=True, help="Load the sample portfolios shipped with the package.")
@click.option("--database-url", envvar="SIGMASIGHT_DATABASE_URL", help=DATABASE_URL_HELP)
@click.option("--progress/--no-progress", default=None, help=PROGRESS_HELP)
def load_portfolios(positions: Path | None, flows: Path | None, sample: bool, database_url: str | None,
                    progress: bool | None = None) -> None:
    """Validate a positions CSV (and capital flows CSV) and load it into the warehouse.

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
    from .warehouse.ledger import read_ledger, store_ledger

    with _progress(4, "load-portfolios", progress) as bar:
        bar.set_postfix_str("reading the warehouse")
        wh = _warehouse(database_url)
        already = set(read_ledger(wh)[0]["portfolio_id"])
        bar.update()
        bar.set_postfix_str(f"validating {positions.name}")
        try:
            ledger = parse_ledger(positions, flows, already_loaded=already)
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
    click.echo(
        f"loaded {counts['portfolios']} portfolio(s), {counts['positions']} position(s), "
        f"{counts['capital_flows']} capital flow(s) from {positions}"
    )
    click.echo(report)


def ledger_report(wh, books: pd.DataFrame, pos: pd.DataFrame) -> str:
    """Counts by portfolio and investment class, and the warnings a data engineer should act on."""
    from .ledger import private_symbols

    latest = wh.latest_date("symbol_universe")
    first = _first_date(wh, "symbol_universe")
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
    lines = ["positions by portfolio and class" + (f" (open/exited as of {day(as_of)})" if latest else "") + ":",
             render_table(rows, ["portfolio", "name", "PUBLIC", "OPTIONS", "PRIVATE", "positions", "open", "exited",
                                 "deleted", "symbols", "first entry"], "llrrrrrrrrl")]

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
                f"{_short_list(unknown)} — status `pending` until symbol_universe and prices are materialised for "
                f"that day (the nightly run, or a scoped run with `symbols: [...]`); see `sigmasight symbol-status`")
        early = live[pd.to_datetime(live["entry_date"]) < pd.Timestamp(first)] if first is not None else live.iloc[0:0]
        if len(early):
            by_pf = early.groupby("portfolio_id")["entry_date"].min()
            detail = ", ".join(f"{k} from {day(v)}" for k, v in by_pf.items())
            warnings.append(
                f"positions entered before the warehouse's first symbol_universe partition ({day(first)}): {detail} — "
                f"their history is not computed until it is backfilled; {BACKFILL_HINT}")
    if private:
        warnings.append(f"{len(private)} private asset(s), valued at their manual value and never sent to a market "
                        f"data provider: {_short_list(private)}")
    if expired:
        warnings.append(f"{len(expired)} option(s) past expiration (inactive, never fetched): {_short_list(expired)}")
    if warnings:
        lines.append("warnings:")
        lines += [f"  - {w}" for w in warnings]
    else:
        lines.append("warnings: none")
    return "\n".join(lines)


def _first_date(wh, table_name: str):
    from sqlalchemy import func, select

    table = wh.table(table_name)
    with wh.engine.connect() as conn:
        value = conn.execute(select(func.min(table.c.date))).scalar_one()
    return pd.Timestamp(value).date() if value is not None else None


# -- list -------------------------------------------------------------------------------------------
@main.command("list")
@click.option("--database-url", envvar="SIGMASIGHT_DATABASE_URL", help=DATABASE_URL_HELP)
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


# -- symbol-status ----------------------------------------------------------------------------------
STATUS_HELP = """\b
  pending   held (or about to be held) by a position, but not in the latest symbol_universe
            partition yet — or in it, with its prices/betas not materialised for that day yet
  active    in the latest universe with a price and a market beta on that day (options: a price)
  error     in the latest universe, but the day's price or beta failed or was skipped; the reason
            is the latest failed/skipped row of the symbol_status table
  private   a private asset: valued manually, never fetched from a market data provider
  expired   an option past its expiration (inactive, never fetched)
  inactive  every position holding it has exited or is deleted
  unknown   neither held by a loaded portfolio nor in the universe
"""


@main.command("symbol-status", epilog=STATUS_HELP)
@click.argument("symbols", nargs=-1, required=True)
@click.option("--database-url", envvar="SIGMASIGHT_DATABASE_URL", help=DATABASE_URL_HELP)
def symbol_status(symbols: tuple[str, ...], database_url: str | None) -> None:
    """Onboarding status of each SYMBOL, read from the warehouse.

    Compares the ledger (positions) with the latest symbol_universe partition, that day's prices
    and market betas, and the per-symbol failures recorded in symbol_status.
    """
    wh = _warehouse(database_url)
    statuses = symbol_statuses(wh, symbols)
    latest = wh.latest_date("symbol_universe")
    click.echo(f"latest symbol_universe partition: {day(latest) if latest else 'none (never materialised)'}")
    rows = [[s["symbol"], s["status"], s["asset_class"], s["held_by"], s["last_price"], s["detail"]] for s in statuses]
    click.echo(render_table(rows, ["symbol", "status", "class", "held by", "last price", "detail"]))


def symbol_statuses(wh, symbols: Iterable[str]) -> list[dict]:
    """One dict per symbol (input order, upper-cased, de-duplicated): status, class, holders, detail."""
    from .ledger import private_symbols
    from .market_data.symbols import is_private_symbol, parse_occ

    syms = list(dict.fromkeys(s.strip().upper() for s in symbols if s and s.strip()))
    latest = wh.latest_date("symbol_universe")
    pos = wh.read("positions", keys=syms, key_column="symbol")
    live = pos[~pos["deleted"].astype(bool)]
    uni = wh.read("symbol_universe", latest, latest, keys=syms) if latest else pd.DataFrame(columns=["symbol"])
    uni = uni.set_index("symbol") if len(uni) else uni
    px = wh.read("prices", latest, latest, keys=syms, columns=["symbol", "close", "source"]) if latest else None
    betas = (wh.read("symbol_betas", latest, latest, keys=syms, columns=["symbol", "factor", "beta"])
             if latest else None)
    private = private_symbols(pos) | {s for s in syms if is_private_symbol(s)}
    out = []
    for s in syms:
        p_all = pos[pos["symbol"] == s]
        p_live = live[live["symbol"] == s]
        held_by = ", ".join(sorted(set(p_live.loc[_open_mask(p_live, latest), "portfolio_id"]))) or "—"
        cls = (uni.loc[s, "asset_class"] if len(uni) and s in uni.index else
               ("PRIVATE" if s in private else (p_live["investment_class"].iloc[0] if len(p_live) else
                                                ("OPTIONS" if parse_occ(s) else "—"))))
        last_px = _last_date(wh, "prices", s)
        rec = {"symbol": s, "asset_class": cls, "held_by": held_by, "last_price": day(last_px)}
        status_rows = _latest_status_rows(wh, s)
        in_uni = len(uni) > 0 and s in uni.index
        if s in private or (in_uni and uni.loc[s, "status"] == "private"):
            mv = p_live["manual_value"].dropna()
            rec.update(status="private", detail="never fetched from a market data provider" + (
                f"; manual value {money(mv.sum())}" if len(mv) else ""))
        elif in_uni and uni.loc[s, "status"] == "expired_option":
            rec.update(status="expired", detail=f"option expired {day(uni.loc[s, 'expiration'])}; never fetched")
        elif in_uni:
            has_px = px is not None and (px["symbol"] == s).any()
            b = betas[(betas["symbol"] == s) & (betas["factor"] == "market")] if betas is not None else None
            has_beta = b is not None and b["beta"].notna().any()
            today_rows = status_rows[status_rows["date"] == pd.Timestamp(latest)] if len(status_rows) else status_rows
            notes = _reasons(today_rows)
            needs_beta = cls == "PUBLIC"
            if has_px and (has_beta or not needs_beta):
                close = px.loc[px["symbol"] == s, "close"].iloc[0]
                detail = f"close {close:,.2f} on {day(latest)}"
                if has_beta:
                    detail += f", market beta {b['beta'].dropna().iloc[0]:.2f}"
                if notes:
                    detail += f"; notes: {notes}"
                rec.update(status="active", detail=detail)
            elif notes:
                rec.update(status="error", detail=f"{day(latest)}: {notes}")
            else:
                missing = "prices" if not has_px else "symbol_betas"
                rec.update(status="pending", detail=f"in the universe of {day(latest)}; {missing} not materialised "
                                                    "for that day yet")
        elif len(p_live) and _held_on_or_after(p_live, latest):
            where = (f"not in the latest symbol_universe partition ({day(latest)})" if latest else
                     "symbol_universe never materialised")
            first_entry = day(pd.to_datetime(p_live["entry_date"]).min())
            rec.update(status="pending", detail=f"{where}; held from {first_entry}; fetched when symbol_universe "
                                                "and prices are materialised for the day")
        elif len(p_all):
            exits = pd.to_datetime(p_live["exit_date"]).dropna()
            why = f"all positions exited (last exit {day(exits.max())})" if len(exits) else "all positions deleted"
            if len(status_rows):
                why += f"; last problem {day(status_rows['date'].iloc[0])}: {_reasons(status_rows)}"
            rec.update(status="inactive", detail=why)
        else:
            rec.update(status="unknown", detail="not held by any loaded portfolio and not in the latest universe")
        out.append(rec)
    return out


def _open_mask(p_live: pd.DataFrame, latest) -> pd.Series:
    """Positions not exited by the latest universe day (all of them when there is none)."""
    exits = pd.to_datetime(p_live["exit_date"])
    if latest is None:
        return pd.Series(True, index=p_live.index)
    return exits.isna() | (exits > pd.Timestamp(latest))


def _held_on_or_after(p_live: pd.DataFrame, latest) -> bool:
    return bool(_open_mask(p_live, latest).any())


def _last_date(wh, table_name: str, symbol: str):
    frame = wh.query(f"SELECT MAX(date) AS d FROM {wh.table(table_name).name} WHERE symbol = :s", s=symbol)
    value = frame["d"].iloc[0] if len(frame) else None
    return None if value is None else pd.Timestamp(value)


def _latest_status_rows(wh, symbol: str) -> pd.DataFrame:
    """The symbol's symbol_status rows (failed/skipped) on the most recent date that has any."""
    last = _last_date(wh, "symbol_status", symbol)
    if last is None:
        return pd.DataFrame(columns=["date", "symbol", "asset", "status", "reason"])
    return wh.read("symbol_status", last, last, keys=[symbol])


def _reasons(rows: pd.DataFrame) -> str:
    if rows is None or rows.empty:
        return ""
    return "; ".join(f"{r.asset} {r.status}: {r.reason}" for r in rows.sort_values("asset").itertuples())


# -- show -------------------------------------------------------------------------------------------
@main.command("show")
@click.argument("portfolio_id")
@click.option("--date", "on_date", default=None, help="Snapshot day (YYYY-MM-DD); default the latest.")
@click.option("--top", default=10, show_default=True, help="Rows of exposures and stress results (0 = all).")
@click.option("--database-url", envvar="SIGMASIGHT_DATABASE_URL", help=DATABASE_URL_HELP)
def show(portfolio_id: str, on_date: str | None, top: int, database_url: str | None) -> None:
    """A portfolio's snapshot, top factor exposures and stress results (worst first).

    Reads portfolio_snapshots, correlations, aggregated_exposures and stress_results for the latest
    day with a snapshot (or --date).
    """
    wh = _warehouse(database_url)
    books = wh.read("portfolios", keys=[portfolio_id], key_column="portfolio_id")
    if books.empty:
        known = wh.read("portfolios", columns=["portfolio_id"])["portfolio_id"]
        click.echo(f"unknown portfolio {portfolio_id!r}; loaded: {_short_list(known) or 'none'}", err=True)
        sys.exit(2)
    name = books["name"].iloc[0]
    snap_dates = wh.query("SELECT MIN(date) AS first, MAX(date) AS last, COUNT(*) AS n FROM portfolio_snapshots "
                          "WHERE portfolio_id = :p", p=portfolio_id).iloc[0]
    if not snap_dates["n"]:
        click.echo(f"{portfolio_id} has no portfolio_snapshots yet; {BACKFILL_HINT}", err=True)
        sys.exit(1)
    if on_date:
        try:
            d = pd.Timestamp(on_date)
        except ValueError:
            raise click.BadParameter(f"{on_date!r} is not a date (YYYY-MM-DD)", param_hint="--date") from None
    else:
        d = pd.Timestamp(snap_dates["last"])
    snap = wh.read("portfolio_snapshots", d, d, keys=[portfolio_id])
    if snap.empty:
        hint = "" if calendar.is_session(d) else " (not a trading day)"
        click.echo(f"no snapshot of {portfolio_id} on {day(d)}{hint}; snapshots cover "
                   f"{day(snap_dates['first'])}..{day(snap_dates['last'])}", err=True)
        sys.exit(1)
    s = snap.iloc[0]
    click.echo(f"{portfolio_id} — {name} — {day(d)}" + ("   [partial: some positions unpriced]" if s["is_partial"] else ""))
    click.echo("")
    click.echo("snapshot (USD):")
    rows = [
        ["equity", money(s["equity"]), "cash", money(s["cash"])],
        ["long exposure", money(s["long_exposure"]), "short exposure", money(s["short_exposure"])],
        ["gross exposure", money(s["gross_exposure"]), "net exposure", money(s["net_exposure"])],
        ["daily P&L", money(s["daily_pnl"]), "daily return", pct(s["daily_return"])],
        ["cumulative P&L", money(s["cumulative_pnl"]), "cumulative flows", money(s["cumulative_flows"])],
        ["positions", f"{s['position_count']} ({s['long_count']} long, {s['short_count']} short)",
         "unpriced / stale", f"{s['unpriced_count']} / {s['stale_count']}"],
        ["effective positions", num(s["effective_positions"], 1), "top 3 / top 10 weight",
         f"{pct(s['top3_weight'], 1)} / {pct(s['top10_weight'], 1)}"],
        ["volatility 21d (ann.)", pct(s["volatility_21d"], 1), "volatility 63d (ann.)", pct(s["volatility_63d"], 1)],
    ]
    corr = wh.read("correlations", d, d, keys=[portfolio_id])
    if len(corr):
        c = corr.iloc[0]
        rows.append(["avg correlation", num(c["avg_correlation"], 2), "corr. effective positions",
                     num(c["effective_positions"], 1)])
    click.echo(render_table(rows, None, "lrlr"))

    expo = wh.read("aggregated_exposures", d, d, keys=[portfolio_id])
    click.echo("")
    if expo.empty:
        click.echo("factor exposures: none on this day (aggregated_exposures not materialised)")
    else:
        expo = expo.assign(_abs=expo["exposure_value"].abs()).sort_values(["_abs", "factor"], ascending=[False, True],
                                                                          na_position="last")
        shown = expo if top <= 0 else expo.head(top)
        click.echo(f"top factor exposures (by |beta-weighted exposure|, {len(shown)} of {len(expo)}):")
        click.echo(render_table(
            [[r.factor, num(r.exposure_value, 3), money(r.exposure_dollar), pct(r.coverage, 1),
              r.positions_missing_beta] for r in shown.itertuples()],
            ["factor", "exposure (× equity)", "exposure USD", "coverage", "missing beta"], "lrrrr"))

    stress = wh.read("stress_results", d, d, keys=[portfolio_id])
    click.echo("")
    if stress.empty:
        click.echo("stress results: none on this day (stress_results not materialised)")
    else:
        key = stress["correlated_pnl"].fillna(stress["direct_pnl"])
        stress = stress.assign(_k=key).sort_values(["_k", "scenario_id"], na_position="last")
        shown = stress if top <= 0 else stress.head(top)
        click.echo(f"stress results (worst first by correlated P&L, {len(shown)} of {len(stress)}):")
        click.echo(render_table(
            [[r.scenario_name, r.category, r.severity, money(r.direct_pnl), money(r.correlated_pnl),
              pct(r.correlated_pct_equity), _top_contributor(r.top_contributors)] for r in shown.itertuples()],
            ["scenario", "category", "severity", "direct P&L", "correlated P&L", "% equity", "largest contributor"],
            "lllrrrl"))


def _top_contributor(raw) -> str:
    if _isnan(raw) or not raw:
        return "—"
    try:
        items = json.loads(raw)
    except (TypeError, ValueError):
        return "—"
    if not items:
        return "—"
    first = items[0]
    return f"{first.get('symbol')} {money(first.get('pnl'))}"


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


@main.command("demo")
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

    from .defs.jobs import materialize_range, range_tags
    from .defs.partitions import trading_days  # noqa: F401 - fail early on a bad SIGMASIGHT_START_DATE

    os.environ.setdefault("DAGSTER_HOME", str(config.dagster_home().resolve()))
    home = Path(os.environ["DAGSTER_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        src = Path(__file__).resolve().parent.parent / "dagster.yaml"
        (home / "dagster.yaml").write_text(src.read_text() if src.exists() else "telemetry:\n  enabled: false\n")
    ctx = click.get_current_context()
    ctx.invoke(load_portfolios, positions=None, flows=None, sample=True, database_url=None, progress=progress)
    end = pd.Timestamp(end_date) if end_date else last_session()
    sess = calendar.sessions_back(end, days)
    start_s, end_s = sess[0].date().isoformat(), sess[-1].date().isoformat()
    click.echo(f"backfilling {len(sess)} trading days {sess[0].date()}..{sess[-1].date()} of the whole graph in one run")
    started = time.time()
    n_assets = _partitioned_asset_count()
    with DagsterInstance.get() as instance, _progress(n_assets, "demo run", progress, unit="asset") as bar:
        with _RunProgress(instance, bar, range_tags(start_s, end_s), started):
            result = materialize_range(start_s, end_s, instance=instance)
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


def _partitioned_asset_count() -> int:
    from .definitions import defs

    return len({k for a in defs.assets if getattr(a, "partitions_def", None) is not None for k in a.keys})


def _print_summary(wh, start, end) -> None:
    from .warehouse.schema import TABLES

    click.echo("\nwarehouse rows in the range:")
    for name, table in TABLES.items():
        if "date" in table.c and name != "capital_flows":
            n = wh.count(name, start, end)
            if n:
                click.echo(f"  {name:<22} {n:>10,}")


main.add_command(warehouse_commands)

if __name__ == "__main__":  # pragma: no cover
    main()
