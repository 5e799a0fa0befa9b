"""``show`` and ``symbol-status``: results read from the warehouse."""

from __future__ import annotations

import json
import sys
from typing import Iterable

import click
import pandas as pd

from .. import calendar
from .common import BACKFILL_HINT, DATABASE_URL_HELP, day, is_missing, money, num, open_warehouse, pct, render_table, short_list


# -- symbol-status ----------------------------------------------------------------------------------
STATUS_HELP = """\b
  pending   held (or about to be held) by a position, but not in the latest symbol_universe
            partition yet — or in it, with its prices/betas not materialised for that day yet
  active    in the latest universe with a price and a market beta on that day (options: a price)
  error     in the latest universe, but the day's price or beta failed or was skipped; the reason
            is the latest failed/skipped row of the symbol_status table (a missing valuation alone
            is a note, not an error)
  --from/--to  also list every session of the range the symbol is missing from prices (or
            has a symbol_status row for), with the recorded reason
  private   a private asset: valued manually, never fetched from a market data provider
  expired   an option past its expiration (inactive, never fetched)
  inactive  every position holding it has exited or is deleted
  unknown   neither held by a loaded portfolio nor in the universe
"""


@click.command("symbol-status", epilog=STATUS_HELP)
@click.argument("symbols", nargs=-1, required=True)
@click.option("--from", "start", default=None, help="With --to: list the sessions of D1..D2 each SYMBOL is missing.")
@click.option("--to", "end", default=None, help="Last day of the --from range (default: the latest universe day).")
@click.option("--database-url", envvar="SIGMASIGHT_DATABASE_URL", help=DATABASE_URL_HELP)
def symbol_status(symbols: tuple[str, ...], start: str | None, end: str | None, database_url: str | None) -> None:
    """Onboarding status of each SYMBOL, read from the warehouse.

    Compares the ledger (positions) with the latest symbol_universe partition, that day's prices
    and market betas, and the per-symbol failures recorded in symbol_status. With --from (and
    --to), also every session of that range the symbol is missing, with the recorded reason.
    """
    if end and not start:
        raise click.UsageError("--to needs --from")
    wh = open_warehouse(database_url)
    statuses = symbol_statuses(wh, symbols)
    latest = wh.latest_date("symbol_universe")
    click.echo(f"latest symbol_universe partition: {day(latest) if latest else 'none (never materialised)'}")
    rows = [[s["symbol"], s["status"], s["asset_class"], s["held_by"], s["last_price"], s["detail"]] for s in statuses]
    click.echo(render_table(rows, ["symbol", "status", "class", "held by", "last price", "detail"]))
    if start:
        lo = _parse_day(start, "--from")
        hi = _parse_day(end, "--to") if end else (pd.Timestamp(latest) if latest else lo)
        if hi < lo:
            raise click.BadParameter(f"--to {day(hi)} is before --from {day(lo)}", param_hint="--from/--to")
        for s in statuses:
            click.echo("")
            click.echo(missing_days_report(wh, s["symbol"], lo, hi))


def _parse_day(raw: str, option: str) -> pd.Timestamp:
    try:
        return pd.Timestamp(raw).normalize()
    except ValueError:
        raise click.BadParameter(f"{raw!r} is not a date (YYYY-MM-DD)", param_hint=option) from None


def missing_days(wh, symbol: str, start, end) -> tuple[pd.DataFrame, int, int]:
    """The sessions of [start, end] ``symbol`` lacks, with their reasons.

    Returns ``(rows, expected, unmaterialised)``: ``rows`` has ``date, asset, status, reason`` — every
    symbol_status row of the symbol in the range, plus a ``prices`` row ("no symbol_status row: not
    materialised for this day") for each session the stored universe asks a price for that has none
    and no recorded reason; ``expected`` the sessions the universe asks a price for; ``unmaterialised``
    the sessions of the range without a symbol_universe partition at all.
    """
    sessions = calendar.sessions(start, end)
    cols = ["date", "asset", "status", "reason"]
    if len(sessions) == 0:
        return pd.DataFrame(columns=cols), 0, 0
    lo, hi = sessions[0], sessions[-1]
    uni_days = set(wh.query("SELECT DISTINCT date FROM symbol_universe WHERE date >= :a AND date <= :b",
                            a=lo.date(), b=hi.date())["date"].map(pd.Timestamp))
    mine = wh.read("symbol_universe", lo, hi, keys=[symbol], columns=["date", "symbol", "fetch"])
    wanted = set(mine.loc[mine["fetch"].astype(bool), "date"])
    have = set(wh.read("prices", lo, hi, keys=[symbol], columns=["date", "symbol"])["date"])
    status = wh.read("symbol_status", lo, hi, keys=[symbol])[cols]
    recorded = set(status.loc[status["asset"] == "prices", "date"])
    silent = sorted(wanted - have - recorded)
    extra = pd.DataFrame({"date": silent, "asset": "prices", "status": "missing",
                          "reason": "no symbol_status row: prices not materialised for this day"})
    rows = pd.concat([status, extra], ignore_index=True) if len(extra) else status
    rows = rows.sort_values(["date", "asset"], kind="stable").reset_index(drop=True)
    return rows, len(wanted), len([d for d in sessions if d not in uni_days])


def missing_days_report(wh, symbol: str, start, end) -> str:
    """The text ``symbol-status --from/--to`` prints for one symbol."""
    rows, expected, unmaterialised = missing_days(wh, symbol, start, end)
    n_missing = int((rows["asset"] == "prices").sum()) if len(rows) else 0
    lines = [f"{symbol}: {n_missing} of {expected} session(s) missing in prices, {day(start)}..{day(end)}"]
    if unmaterialised:
        lines.append(f"  {unmaterialised} session(s) of the range have no symbol_universe partition (not materialised); "
                     f"{BACKFILL_HINT}")
    if len(rows):
        lines.append(render_table([[day(r.date), r.asset, r.status, r.reason] for r in rows.itertuples()],
                                  ["date", "asset", "status", "reason"]))
    else:
        lines.append("  no missing day")
    return "\n".join(lines)


def symbol_statuses(wh, symbols: Iterable[str]) -> list[dict]:
    """One dict per symbol (input order, upper-cased, de-duplicated): status, class, holders, detail."""
    from ..ledger import private_symbols
    from ..market_data.symbols import is_private_symbol, parse_occ

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
            # Only a missing price or beta makes the symbol unusable; a missing valuation (e.g. a CSV
            # directory without the optional valuations file) is a note.
            blocking = today_rows[today_rows["asset"].isin(["prices", "symbol_betas"])] if len(today_rows) else today_rows
            needs_beta = cls == "PUBLIC"
            if has_px and (has_beta or not needs_beta):
                close = px.loc[px["symbol"] == s, "close"].iloc[0]
                detail = f"close {close:,.2f} on {day(latest)}"
                if has_beta:
                    detail += f", market beta {b['beta'].dropna().iloc[0]:.2f}"
                if notes:
                    detail += f"; notes: {notes}"
                rec.update(status="active", detail=detail)
            elif len(blocking):
                rec.update(status="error", detail=f"{day(latest)}: {notes}")
            else:
                missing = "prices" if not has_px else "symbol_betas"
                detail = f"in the universe of {day(latest)}; {missing} not materialised for that day yet"
                rec.update(status="pending", detail=detail + (f"; notes: {notes}" if notes else ""))
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
@click.command("show")
@click.argument("portfolio_id")
@click.option("--date", "on_date", default=None, help="Snapshot day (YYYY-MM-DD); default the latest.")
@click.option("--top", default=10, show_default=True, help="Rows of exposures and stress results (0 = all).")
@click.option("--database-url", envvar="SIGMASIGHT_DATABASE_URL", help=DATABASE_URL_HELP)
def show(portfolio_id: str, on_date: str | None, top: int, database_url: str | None) -> None:
    """A portfolio's snapshot, top factor exposures, stress results (worst first) and ex-ante risk.

    Reads portfolio_snapshots, correlations, aggregated_exposures, stress_results, portfolio_risk,
    risk_contributions and var_backtest for the latest day with a snapshot (or --date).
    """
    wh = open_warehouse(database_url)
    books = wh.read("portfolios", keys=[portfolio_id], key_column="portfolio_id")
    if books.empty:
        known = wh.read("portfolios", columns=["portfolio_id"])["portfolio_id"]
        click.echo(f"unknown portfolio {portfolio_id!r}; loaded: {short_list(known) or 'none'}", err=True)
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
        ["effective positions (1/HHI)", num(s["effective_positions_hhi"], 1), "top 3 / top 10 weight",
         f"{pct(s['top3_weight'], 1)} / {pct(s['top10_weight'], 1)}"],
        ["volatility 21d (ann.)", pct(s["volatility_21d"], 1), "volatility 63d (ann.)", pct(s["volatility_63d"], 1)],
    ]
    corr = wh.read("correlations", d, d, keys=[portfolio_id])
    if len(corr):
        c = corr.iloc[0]
        rows.append(["avg correlation", num(c["avg_correlation"], 2), "effective positions (corr.)",
                     num(c["effective_positions_corr"], 1)])
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
    _show_risk(wh, portfolio_id, d, top)


def _show_risk(wh, portfolio_id: str, d: pd.Timestamp, top: int) -> None:
    """The risk block: volatility split, VaR/ES, the backtest's traffic light and the top contributors."""
    risk = wh.read("portfolio_risk", d, d, keys=[portfolio_id])
    click.echo("")
    if risk.empty:
        click.echo("ex-ante risk: none on this day (portfolio_risk not materialised)")
        return
    r = risk.iloc[0]
    click.echo(f"ex-ante risk (1-day, USD; covered {r['positions_covered']} positions, {pct(r['coverage'], 1)} of "
               f"gross; excluded: {r['positions_options']} options, {r['positions_private']} private, "
               f"{r['positions_unpriced']} unpriced, {r['positions_no_loadings']} without a factor model):")
    rows = [
        ["volatility (daily)", money(r["volatility_daily"]), "annualised (% equity)",
         pct(r["volatility_annual_pct_equity"], 1)],
        ["factor volatility", money(r["factor_volatility_daily"]), "specific volatility",
         money(r["specific_volatility_daily"])],
        ["factor share of variance", pct(r["factor_share"], 1), "beta to SPY", num(r["beta_spy"], 2)],
        ["tracking error vs SPY (daily)", money(r["tracking_error_daily"]), "annualised (% equity)",
         pct(r["tracking_error_annual_pct_equity"], 1)],
    ]
    click.echo(render_table(rows, None, "lrlr"))
    click.echo("")
    click.echo(f"VaR / ES (loss, USD; historical over {r['hist_observations']} days, "
               f"{r['hist_proxied_returns']} returns proxied by factors):")
    click.echo(render_table(
        [[f"{lvl} %", money(r[f"var_{lvl}_parametric"]), money(r[f"es_{lvl}_parametric"]),
          money(r[f"var_{lvl}_historical"]), money(r[f"es_{lvl}_historical"]), pct(r[f"var_{lvl}_historical_pct_equity"])]
         for lvl in ("95", "99")],
        ["level", "VaR normal", "ES normal", "VaR historical", "ES historical", "hist. VaR % equity"], "lrrrrr"))
    bt = wh.read("var_backtest", d, d, keys=[portfolio_id])
    if len(bt):
        b = bt.iloc[0]
        light = b["traffic_light"] if not is_missing(b["traffic_light"]) else f"none yet ({b['observations']} of 250 days)"
        click.echo(f"VaR backtest (99 %, trailing 250 days): {light}; {b['exceptions']} exception(s) in "
                   f"{b['observations']} days, Kupiec p {num(b['kupiec_p_value'], 3)}, Christoffersen LR "
                   f"{num(b['christoffersen_lr'], 2)}")
    contrib = wh.read("risk_contributions", d, d, keys=[portfolio_id])
    if contrib.empty:
        return
    parts = contrib[contrib["component_type"] != "position"].sort_values("contribution", ascending=False)
    positions = contrib.loc[contrib["component_type"] == "position", "positions"]
    items = json.loads(positions.iloc[0]) if len(positions) and not is_missing(positions.iloc[0]) else []
    click.echo("")
    click.echo("risk contributions (Euler, USD of daily volatility; factors + specific = volatility):")
    shown = parts if top <= 0 else parts.head(top)
    click.echo(render_table([[c.component, money(c.contribution), pct(c.share, 1)] for c in shown.itertuples()],
                            ["factor / specific", "contribution", "share"], "lrr"))
    if items:
        shown = items if top <= 0 else items[:top]
        click.echo(render_table([[symbol, position_id, money(c), pct(share, 1)] for position_id, symbol, c, share in shown],
                                ["top position", "position id", "contribution", "share"], "llrr"))


def _top_contributor(raw) -> str:
    if is_missing(raw) or not raw:
        return "—"
    try:
        items = json.loads(raw)
    except (TypeError, ValueError):
        return "—"
    if not items:
        return "—"
    first = items[0]  # [position_id, symbol, pnl]
    return f"{first[1]} {money(first[2])}"


