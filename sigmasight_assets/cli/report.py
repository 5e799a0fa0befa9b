"""``report``: one portfolio's risk as a self-contained HTML page of plotly charts.

Sections (each read from its warehouse table, as of ``--date`` or the latest snapshot):

* equity and daily P&L history (``portfolio_snapshots``, every day up to the date);
* factor exposures (``aggregated_exposures``: exposure as a share of equity, with coverage);
* stress scenarios, direct vs correlated P&L (``stress_results``);
* the correlation heatmap of the holdings (``correlations``);
* risk contributions (``risk_contributions``) and VaR against realised P&L with the exceptions marked
  (``var_backtest``) — only where those tables exist in the warehouse; otherwise the page says so.

The page embeds plotly.js (no network needed to open it). Missing values stay gaps, never zeros.
"""

from __future__ import annotations

import html
import json
import sys
from pathlib import Path

import click
import numpy as np
import pandas as pd

from .common import BACKFILL_HINT, DATABASE_URL_HELP, day, money, open_warehouse, pct, short_list


def _table_exists(wh, name: str) -> bool:
    from sqlalchemy import inspect

    return inspect(wh.engine).has_table(name)


def _rows(wh, table: str, portfolio_id: str, start=None, end=None) -> pd.DataFrame:
    """Rows of ``table`` for one portfolio in [start, end] (plain SQL: the table may be newer than this code)."""
    sql, params = f"SELECT * FROM {table} WHERE portfolio_id = :p", {"p": portfolio_id}
    if start is not None:
        sql, params["s"] = sql + " AND date >= :s", pd.Timestamp(start).date()
    if end is not None:
        sql, params["e"] = sql + " AND date <= :e", pd.Timestamp(end).date()
    frame = wh.query(sql + " ORDER BY date", **params)
    if "date" in frame:
        frame["date"] = pd.to_datetime(frame["date"])
    return frame


def correlation_matrix(row: pd.Series) -> pd.DataFrame:
    """The full symmetric matrix from a ``correlations`` row (JSON strict upper triangle; null = too little
    overlap, kept as NaN)."""
    symbols = json.loads(row["symbols"])
    upper = json.loads(row["matrix"])
    n = len(symbols)
    m = np.eye(n)
    vals = np.array([np.nan if v is None else v for v in upper], dtype=float)
    iu = np.triu_indices(n, k=1)
    m[iu] = vals
    m[(iu[1], iu[0])] = vals
    return pd.DataFrame(m, index=symbols, columns=symbols)


# -- figures ----------------------------------------------------------------------------------------
def history_figure(snap: pd.DataFrame):
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08, row_heights=[0.6, 0.4],
                        subplot_titles=("Equity (USD)", "Daily P&L (USD)"))
    fig.add_trace(go.Scatter(x=snap["date"], y=snap["equity"], name="equity", mode="lines",
                             hovertemplate="%{x|%Y-%m-%d}<br>$%{y:,.0f}<extra></extra>"), row=1, col=1)
    pnl = snap["daily_pnl"]
    fig.add_trace(go.Bar(x=snap["date"], y=pnl, name="daily P&L",
                         marker_color=np.where(pnl.fillna(0) < 0, "#c0392b", "#27ae60"),
                         hovertemplate="%{x|%Y-%m-%d}<br>$%{y:,.0f}<extra></extra>"), row=2, col=1)
    fig.update_yaxes(tickprefix="$", tickformat=",.0f")
    fig.update_layout(height=520, showlegend=False, margin=dict(t=40, b=30))
    return fig


def exposure_figure(expo: pd.DataFrame):
    import plotly.graph_objects as go

    expo = expo.sort_values("exposure_value")
    text = [f"{pct(v, 1)} · coverage {pct(c, 0)}" for v, c in zip(expo["exposure_value"], expo["coverage"])]
    fig = go.Figure(go.Bar(x=expo["exposure_value"], y=expo["factor"], orientation="h", text=text,
                           textposition="auto", customdata=expo["exposure_dollar"],
                           hovertemplate="%{y}: %{x:.1%} of equity<br>$%{customdata:,.0f} per unit factor return"
                                         "<extra></extra>"))
    fig.update_xaxes(tickformat=".0%", title="exposure / equity (β-weighted)")
    fig.update_layout(height=max(300, 28 * len(expo) + 80), margin=dict(t=30, b=40))
    return fig


def stress_figure(stress: pd.DataFrame):
    import plotly.graph_objects as go

    stress = stress.sort_values("correlated_pnl", ascending=False)
    fig = go.Figure()
    for col, name, color in (("direct_pnl", "direct", "#7f8c8d"), ("correlated_pnl", "correlated", "#2c3e50")):
        fig.add_trace(go.Bar(x=stress[col], y=stress["scenario_name"], orientation="h", name=name, marker_color=color,
                             hovertemplate="%{y}<br>" + name + ": $%{x:,.0f}<extra></extra>"))
    fig.update_xaxes(tickprefix="$", tickformat=",.0f", title="P&L (USD)")
    fig.update_layout(barmode="group", height=max(360, 34 * len(stress) + 100), margin=dict(t=30, b=40),
                      legend=dict(orientation="h", y=1.02, x=0))
    return fig


def correlation_figure(matrix: pd.DataFrame):
    import plotly.graph_objects as go

    fig = go.Figure(go.Heatmap(z=matrix.to_numpy(), x=list(matrix.columns), y=list(matrix.index), zmin=-1, zmax=1,
                               colorscale="RdBu_r", hovertemplate="%{y} / %{x}: %{z:.2f}<extra></extra>",
                               text=np.round(matrix.to_numpy(), 2), texttemplate="%{text}"))
    fig.update_layout(height=max(360, 40 * len(matrix) + 120), margin=dict(t=30, b=40))
    fig.update_yaxes(autorange="reversed")
    return fig


def contributions_figure(rc: pd.DataFrame):
    """Euler contributions of the day (``risk_contributions``): each factor, specific risk, and the
    largest positions from the ``top_positions`` row's JSON, in USD of daily volatility."""
    import plotly.graph_objects as go

    parts = rc[rc["component_type"].isin(["factor", "specific"])][["component", "contribution"]]
    top = rc[rc["component"] == "top_positions"]
    positions = pd.DataFrame(columns=["component", "contribution"])
    if len(top) and isinstance(top["positions"].iloc[0], str):
        items = json.loads(top["positions"].iloc[0])  # [position_id, symbol, contribution, share]
        positions = pd.DataFrame({"component": [f"{sym} ({pid})" for pid, sym, _, _ in items],
                                  "contribution": [c for _, _, c, _ in items]})
    fig = go.Figure()
    for frame, name, color in ((parts, "factors and specific", "#2c7fb8"), (positions, "largest positions", "#e67e22")):
        frame = frame.sort_values("contribution")
        fig.add_trace(go.Bar(x=frame["contribution"], y=frame["component"].astype(str), orientation="h", name=name,
                             marker_color=color, hovertemplate="%{y}: $%{x:,.0f}<extra></extra>"))
    fig.update_xaxes(title="contribution to daily volatility (USD)", tickprefix="$", tickformat=",.0f")
    fig.update_layout(height=max(320, 22 * (len(parts) + len(positions)) + 100), margin=dict(t=30, b=40),
                      legend=dict(orientation="h", y=1.05, x=0))
    total = float(parts["contribution"].sum()) if len(parts) else float("nan")
    return fig, f"factors and specific add up to the daily volatility, ${total:,.0f}; a negative bar is a hedge"


def backtest_figure(bt: pd.DataFrame):
    """``var_backtest``: each day's hypothetical P&L of the previous day's holdings against that
    day's 99 % VaR (as a loss line), exceptions marked."""
    import plotly.graph_objects as go

    bt = bt[bt["var_99_previous"].notna() & bt["hypothetical_pnl"].notna()]
    if bt.empty:
        return None, "no day yet with both a previous VaR and a hypothetical P&L"
    loss_line = -bt["var_99_previous"]
    flags = bt["exception"].fillna(False).astype(bool)
    fig = go.Figure()
    fig.add_trace(go.Bar(x=bt["date"], y=bt["hypothetical_pnl"], name="hypothetical P&L", marker_color="#95a5a6",
                         hovertemplate="%{x|%Y-%m-%d}<br>$%{y:,.0f}<extra></extra>"))
    fig.add_trace(go.Scatter(x=bt["date"], y=loss_line, name="−VaR 99 % (previous day)", mode="lines",
                             line=dict(color="#c0392b"), hovertemplate="%{x|%Y-%m-%d}<br>$%{y:,.0f}<extra></extra>"))
    fig.add_trace(go.Scatter(x=bt.loc[flags, "date"], y=bt.loc[flags, "hypothetical_pnl"], name="exception",
                             mode="markers", marker=dict(color="#c0392b", size=11, symbol="x"),
                             hovertemplate="exception %{x|%Y-%m-%d}<br>$%{y:,.0f}<extra></extra>"))
    fig.update_yaxes(tickprefix="$", tickformat=",.0f")
    fig.update_layout(height=420, margin=dict(t=30, b=40), legend=dict(orientation="h", y=1.05, x=0))
    light = bt["traffic_light"].iloc[-1] if "traffic_light" in bt and pd.notna(bt["traffic_light"].iloc[-1]) else None
    return fig, (f"{int(flags.sum())} exception(s) in {len(bt)} day(s)"
                 + (f"; Basel traffic light {light}" if light else "; traffic light after 250 observed days"))


# -- page -------------------------------------------------------------------------------------------
PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 24px auto; max-width: 1100px;
       color: #222; }}
h1 {{ font-size: 22px; margin-bottom: 4px; }} h2 {{ font-size: 17px; margin: 28px 0 4px; }}
.sub {{ color: #666; margin-top: 0; }} .note {{ color: #8a6d3b; background: #fcf8e3; padding: 8px 12px; }}
table.kv {{ border-collapse: collapse; }} table.kv td {{ padding: 3px 14px 3px 0; }}
table.kv td.v {{ text-align: right; font-variant-numeric: tabular-nums; }}
</style>
{plotly}
</head><body>
<h1>{title}</h1><p class="sub">{subtitle}</p>
{body}
</body></html>
"""


def _section(title: str, fig=None, note: str | None = None, div_id: str = "") -> str:
    parts = [f'<section id="{div_id}"><h2>{html.escape(title)}</h2>']
    if note:
        parts.append(f'<p class="{"note" if fig is None else "sub"}">{html.escape(note)}</p>')
    if fig is not None:
        parts.append(fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"plot-{div_id}",
                                 config={"displaylogo": False, "responsive": True}))
    return "\n".join(parts) + "</section>"


def build_report(wh, portfolio_id: str, on_date=None) -> tuple[str, pd.Timestamp]:
    """The HTML page for ``portfolio_id`` as of ``on_date`` (default the latest snapshot); raises
    ``click.ClickException`` with the reason when there is nothing to report."""
    from plotly.offline import get_plotlyjs

    books = wh.read("portfolios", keys=[portfolio_id], key_column="portfolio_id")
    if books.empty:
        known = wh.read("portfolios", columns=["portfolio_id"])["portfolio_id"]
        raise click.ClickException(f"unknown portfolio {portfolio_id!r}; loaded: {short_list(known) or 'none'}")
    snap = _rows(wh, "portfolio_snapshots", portfolio_id, end=on_date)
    if snap.empty:
        raise click.ClickException(f"{portfolio_id} has no portfolio_snapshots"
                                   f"{' on or before ' + day(on_date) if on_date is not None else ''}; {BACKFILL_HINT}")
    d = snap["date"].iloc[-1]
    last = snap.iloc[-1]
    kv = [("equity", money(last["equity"])), ("daily P&L", money(last["daily_pnl"])),
          ("daily return", pct(last["daily_return"])), ("cumulative P&L", money(last["cumulative_pnl"])),
          ("gross / net exposure", f"{money(last['gross_exposure'])} / {money(last['net_exposure'])}"),
          ("positions", f"{last['position_count']} ({last['unpriced_count']} unpriced)")]
    body = ['<table class="kv">' + "".join(f"<tr><td>{k}</td><td class='v'>{html.escape(v)}</td></tr>" for k, v in kv)
            + "</table>"]
    body.append(_section("Equity and daily P&L", history_figure(snap), div_id="history",
                         note=f"{day(snap['date'].iloc[0])}..{day(d)}, {len(snap)} trading days; missing P&L "
                              "(a partial day) is a gap, not 0."))
    expo = _rows(wh, "aggregated_exposures", portfolio_id, d, d)
    body.append(_section("Factor exposures", exposure_figure(expo) if len(expo) else None, div_id="exposures",
                         note=None if len(expo) else f"no aggregated_exposures on {day(d)}"))
    stress = _rows(wh, "stress_results_view", portfolio_id, d, d)  # with the scenario attributes
    body.append(_section("Stress scenarios: direct vs correlated", stress_figure(stress) if len(stress) else None,
                         div_id="stress", note="Direct: only the named factors move. Correlated: the others take "
                                               "their conditional expectation under the day's factor covariance."
                         if len(stress) else f"no stress_results on {day(d)}"))
    corr = _rows(wh, "correlations", portfolio_id, d, d)
    if len(corr) and int(corr["n_symbols"].iloc[0]) >= 2:
        c = corr.iloc[0]
        body.append(_section("Correlation of the holdings", correlation_figure(correlation_matrix(c)),
                             div_id="correlation", note=f"average correlation {c['avg_correlation']:.2f}; "
                                                        f"{c['n_pairs_insufficient']} pair(s) with too little overlap (blank)"))
    else:
        body.append(_section("Correlation of the holdings", None, div_id="correlation",
                             note=f"no correlation matrix on {day(d)} (fewer than two eligible holdings)"))
    for table, title, make in (("risk_contributions", "Risk contributions", contributions_figure),
                               ("var_backtest", "VaR against realised P&L", backtest_figure)):
        if not _table_exists(wh, table):
            body.append(_section(title, None, div_id=table,
                                 note=f"skipped: the warehouse has no {table} table (run `sigmasight warehouse "
                                      "upgrade`)"))
            continue
        rows = _rows(wh, table, portfolio_id, d if table == "risk_contributions" else None, d)
        fig, note = make(rows) if len(rows) else (None, f"no {table} rows for {portfolio_id} up to {day(d)}")
        body.append(_section(title, fig, note=note, div_id=table))
    title = f"{portfolio_id} — {books['name'].iloc[0]} — risk report {day(d)}"
    subtitle = f"SigmaSight Assets · warehouse {html.escape(wh.engine.url.render_as_string(hide_password=True))}"
    page = PAGE.format(title=html.escape(title), subtitle=subtitle, body="\n".join(body),
                       plotly=f'<script type="text/javascript">{get_plotlyjs()}</script>')
    return page, d


@click.command("report")
@click.argument("portfolio_id")
@click.option("--date", "on_date", default=None, help="Report day (YYYY-MM-DD); default the latest snapshot.")
@click.option("--html", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The HTML file to write (self-contained: plotly.js is embedded).")
@click.option("--database-url", envvar="SIGMASIGHT_DATABASE_URL", help=DATABASE_URL_HELP)
def report(portfolio_id: str, on_date: str | None, out: Path, database_url: str | None) -> None:
    """One portfolio's risk as a self-contained HTML page of plots: equity and daily P&L history,
    factor exposures, stress (direct vs correlated), the correlation heatmap, and risk contributions
    and the VaR backtest where those tables exist."""
    d = None
    if on_date:
        try:
            d = pd.Timestamp(on_date)
        except ValueError:
            raise click.BadParameter(f"{on_date!r} is not a date (YYYY-MM-DD)", param_hint="--date") from None
    wh = open_warehouse(database_url)
    try:
        page, as_of = build_report(wh, portfolio_id, d)
    except click.ClickException as exc:
        click.echo(exc.format_message(), err=True)
        sys.exit(2 if "unknown portfolio" in exc.format_message() else 1)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    click.echo(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB): {portfolio_id} as of {day(as_of)}")
