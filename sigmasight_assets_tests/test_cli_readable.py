"""Readable command output (issue 13, finding 5): ``list`` is a plain table, not a pandas dump; the
load report of a big file is a summary, not a line per portfolio; loading positions without a flows
file says the stored flows were kept instead of "0 capital flow(s)"."""

from __future__ import annotations

from click.testing import CliRunner

from sigmasight_assets.cli import main
from sigmasight_assets.cli.portfolios import REPORT_LARGEST

from .conftest import SAMPLE_FLOWS, SAMPLE_POSITIONS


def run(args):
    result = CliRunner().invoke(main, [*args])
    assert result.exit_code == 0, result.output
    return result.output


def test_positions_without_a_flows_file_keep_and_count_the_stored_flows(warehouse):
    run(["load-portfolios", str(SAMPLE_POSITIONS), "--flows", str(SAMPLE_FLOWS), "--no-progress"])
    out = run(["load-portfolios", str(SAMPLE_POSITIONS), "--no-progress"])
    assert out.splitlines()[0] == (f"loaded 4 portfolio(s), 25 position(s) from {SAMPLE_POSITIONS}; capital flows "
                                   "unchanged (no --flows file): 9 stored flow(s) kept")
    assert warehouse.count("capital_flows") == 9


def test_list_is_a_plain_table(warehouse):
    run(["load-portfolios", "--sample", "--no-progress"])
    lines = run(["list"]).splitlines()
    assert lines[0] == "4 portfolio(s) loaded:"
    assert lines[1].split() == ["portfolio", "name", "positions", "open", "symbols", "first", "entry", "flows", "net",
                                "flows", "(USD)"]
    assert set(lines[2].replace(" ", "")) == {"-"}
    p_long = next(line for line in lines if line.strip().startswith("P-LONG"))
    assert p_long.split()[-6:] == ["8", "7", "8", "2025-01-02", "3", "1,070,000"]
    assert "NaN" not in "\n".join(lines) and "portfolio_id" not in "\n".join(lines)


def test_the_load_report_of_a_big_file_is_a_summary(warehouse, tmp_path):
    n_books, per_book = 300, 5
    path = tmp_path / "big.csv"
    rows = ["portfolio_id,symbol,quantity,entry_price,entry_date"]
    symbols = ["AAPL", "MSFT", "JNJ", "XOM", "SPY", "TLT", "NVDA"]
    for b in range(n_books):
        for k in range(per_book + (b == 7)):  # P-00007 is the largest book
            rows.append(f"P-{b:05d},{symbols[(b + k) % len(symbols)]},{k + 1},100,2025-01-02")
    path.write_text("\n".join(rows) + "\n")
    out = run(["load-portfolios", str(path), "--no-progress"])
    lines = out.splitlines()
    assert lines[1] == (f"positions by portfolio and class: {n_books:,} portfolios; the {REPORT_LARGEST} largest "
                        "(all: `sigmasight list`):")
    table = lines[2:lines.index("warnings:") if "warnings:" in lines else None]
    assert len(table) == 2 + 1 + REPORT_LARGEST  # header, rule, totals, the largest books
    assert table[2].split()[:4] == ["all", "300", "portfolios", f"{n_books * per_book + 1:,}"]
    assert table[3].split()[0] == "P-00007"
    assert len(lines) < 30
