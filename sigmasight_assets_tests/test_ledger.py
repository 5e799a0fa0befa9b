"""The portfolio ledger: parsing, validation (file / row / field), storing, reloading, and the CLI."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from sigmasight_assets.cli import main
from sigmasight_assets.ledger import LedgerValidationError, parse_ledger, private_symbols
from sigmasight_assets.warehouse.ledger import read_ledger, store_ledger

from .conftest import SAMPLE_FLOWS, SAMPLE_POSITIONS

POS_HEADER = "portfolio_id,symbol,quantity,entry_price,entry_date"
GOOD_ROW = "P1,AAPL,100,150.0,2025-01-02"


def write(tmp_path: Path, name: str, *lines: str) -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def problems_of(positions: Path, flows: Path | None = None, already=None):
    with pytest.raises(LedgerValidationError) as info:
        parse_ledger(positions, flows, already_loaded=already)
    return info.value


def assert_problem(err: LedgerValidationError, path: Path, row: int, field: str, text: str = "") -> None:
    """The error lists a problem at (file, row, field) and its message names all three."""
    hits = [p for p in err.problems if p.file == str(path) and p.row == row and p.field == field]
    assert hits, f"no problem at {path.name} row {row} field {field}: {err.problems}"
    if text:
        assert any(text in p.message for p in hits), hits
    assert f"{path}, row {row}, field '{field}'" in str(err)


# -- the sample ------------------------------------------------------------------------------------
def test_sample_files_parse():
    ledger = parse_ledger(SAMPLE_POSITIONS, SAMPLE_FLOWS)
    assert list(ledger.portfolios["portfolio_id"]) == ["P-LONG", "P-LS", "P-OPT", "P-PRIV"]
    assert ledger.portfolios.set_index("portfolio_id").loc["P-LS", "name"] == "Long/short equity"
    pos = ledger.positions
    assert len(pos) == 25
    assert pos.groupby("portfolio_id").size().to_dict() == {"P-LONG": 8, "P-LS": 8, "P-OPT": 5, "P-PRIV": 4}
    classes = pos.set_index("symbol")["investment_class"]
    # Inferred from the symbols (the sample leaves investment_class blank for options).
    assert set(pos.loc[pos["investment_class"] == "OPTIONS", "symbol"]) == {
        "SPY261218P01400000", "SPY270115C01800000", "SPY260618C01400000"}
    assert set(pos.loc[pos["investment_class"] == "PRIVATE", "symbol"]) == {"PRIVATE_FUND_A", "EQ1A2B3C4D5E"}
    assert classes["AAPL"] == "PUBLIC" and classes["TLT"] == "PUBLIC"
    # OCC fields parsed from the symbol.
    opt = pos.set_index("symbol").loc["SPY261218P01400000"]
    assert (opt["underlying"], opt["option_type"], opt["strike"]) == ("SPY", "P", 1400.0)
    assert opt["expiration"] == pd.Timestamp("2026-12-18")
    # Defaults, signs, exits, private values.
    aapl = pos.set_index("symbol").loc["AAPL"]
    assert aapl["position_id"] == "AAPL@2025-01-02"
    assert pos.set_index("symbol").loc["TSLA", "quantity"] == -200.0
    raw = pd.read_csv(SAMPLE_POSITIONS).set_index("symbol")
    xom = pos.set_index("symbol").loc["XOM"]
    assert xom["exit_date"] == pd.Timestamp("2026-05-01") and xom["exit_price"] == raw.loc["XOM", "exit_price"]
    assert (pos.set_index("symbol")["entry_price"] == raw["entry_price"].reindex(pos["symbol"])).all()
    assert pos.set_index("symbol").loc["PRIVATE_FUND_A", "manual_value"] == 310000.0
    assert pd.isna(aapl["manual_value"])
    assert not pos["deleted"].any()
    assert private_symbols(pos) == {"PRIVATE_FUND_A", "EQ1A2B3C4D5E"}
    flows = ledger.capital_flows
    assert len(flows) == 9
    assert flows.groupby("portfolio_id")["amount"].sum().to_dict() == {
        "P-LONG": 1_070_000.0, "P-LS": 560_000.0, "P-OPT": 750_000.0, "P-PRIV": 750_000.0}


def test_store_and_read_round_trip(warehouse, loaded_sample):
    books, pos, flows = read_ledger(warehouse)
    assert sorted(books["portfolio_id"]) == ["P-LONG", "P-LS", "P-OPT", "P-PRIV"]
    assert (books["currency"] == "USD").all()
    key = ["portfolio_id", "position_id"]
    got = pos.sort_values(key, ignore_index=True)
    want = loaded_sample.positions.sort_values(key, ignore_index=True)[got.columns]
    pd.testing.assert_frame_equal(got, want, check_dtype=False)
    assert got["entry_date"].dtype == "datetime64[ns]"
    assert got["deleted"].dtype == bool
    fkey = ["portfolio_id", "flow_id"]
    pd.testing.assert_frame_equal(
        flows.sort_values(fkey, ignore_index=True),
        loaded_sample.capital_flows.sort_values(fkey, ignore_index=True)[flows.columns],
        check_dtype=False,
    )


# -- validation: each problem names file, row (1-based, header = 1) and field ----------------------
def test_missing_required_column(tmp_path):
    p = write(tmp_path, "pos.csv", "portfolio_id,symbol,entry_price,entry_date", "P1,AAPL,150,2025-01-02")
    err = problems_of(p)
    assert_problem(err, p, 1, "quantity", "required column")


def test_unknown_column(tmp_path):
    p = write(tmp_path, "pos.csv", POS_HEADER + ",colour", GOOD_ROW + ",red")
    assert_problem(problems_of(p), p, 1, "colour", "unknown column")


def test_bad_date(tmp_path):
    p = write(tmp_path, "pos.csv", POS_HEADER, GOOD_ROW, "P1,MSFT,10,300,2025-02-30")
    assert_problem(problems_of(p), p, 3, "entry_date", "'2025-02-30' is not a date")


def test_non_numeric_quantity(tmp_path):
    p = write(tmp_path, "pos.csv", POS_HEADER, GOOD_ROW, GOOD_ROW.replace("AAPL", "MSFT"), "P1,NVDA,ten,10,2025-01-02")
    assert_problem(problems_of(p), p, 4, "quantity", "'ten' is not a number")


def test_zero_quantity(tmp_path):
    p = write(tmp_path, "pos.csv", POS_HEADER, "P1,AAPL,0,150,2025-01-02")
    assert_problem(problems_of(p), p, 2, "quantity", "non-zero")


@pytest.mark.parametrize("exit_date", ["2024-12-31", "2025-01-02"])
def test_exit_not_after_entry(tmp_path, exit_date):
    p = write(tmp_path, "pos.csv", POS_HEADER + ",exit_date,exit_price", f"{GOOD_ROW},{exit_date},160")
    assert_problem(problems_of(p), p, 2, "exit_date", "not after entry_date")


def test_exit_date_without_exit_price(tmp_path):
    p = write(tmp_path, "pos.csv", POS_HEADER + ",exit_date,exit_price", f"{GOOD_ROW},2025-03-03,")
    assert_problem(problems_of(p), p, 2, "exit_price", "required when exit_date")


def test_exit_price_without_exit_date(tmp_path):
    p = write(tmp_path, "pos.csv", POS_HEADER + ",exit_date,exit_price", f"{GOOD_ROW},,160")
    assert_problem(problems_of(p), p, 2, "exit_date", "required when exit_price")


def test_private_without_manual_value_is_accepted_and_valued_at_cost(tmp_path):
    # manual_value is only a mark dated at entry: without it the position is valued at its entry cost
    # until its first mark (`--marks`).
    p = write(tmp_path, "pos.csv", POS_HEADER + ",investment_class,manual_value",
              f"{GOOD_ROW},,", "P1,FUND_X,1,1000000,2025-01-02,PRIVATE,")
    pos = parse_ledger(p).positions.set_index("symbol")
    assert pos.loc["FUND_X", "investment_class"] == "PRIVATE" and pd.isna(pos.loc["FUND_X", "manual_value"])


def test_private_symbol_infers_private(tmp_path):
    # An underscore makes the symbol private even without investment_class.
    p = write(tmp_path, "pos.csv", POS_HEADER, "P1,MY_FUND,1,1000,2025-01-02")
    assert parse_ledger(p).positions.iloc[0]["investment_class"] == "PRIVATE"


def test_bad_occ_symbol_declared_options(tmp_path):
    p = write(tmp_path, "pos.csv", POS_HEADER + ",investment_class", "P1,SPY2512C460,1,5,2025-01-02,OPTIONS")
    assert_problem(problems_of(p), p, 2, "symbol", "not an OCC option symbol")


def test_public_declared_for_an_option_symbol(tmp_path):
    p = write(tmp_path, "pos.csv", POS_HEADER + ",investment_class", "P1,SPY250919C00460000,1,5,2025-01-02,PUBLIC")
    assert_problem(problems_of(p), p, 2, "investment_class", "contradicts")


@pytest.mark.parametrize(
    "field, value, parsed",
    [
        ("strike", "470", "460.0"),
        ("expiration", "2025-09-20", "2025-09-19"),
        ("option_type", "P", "C"),
        ("underlying", "QQQ", "SPY"),
    ],
)
def test_occ_fields_disagreeing(tmp_path, field, value, parsed):
    p = write(tmp_path, "pos.csv", POS_HEADER + f",{field}", f"P1,SPY250919C00460000,1,5,2025-01-02,{value}")
    err = problems_of(p)
    assert_problem(err, p, 2, field, "disagrees with the OCC symbol")
    assert parsed in str(err)
    assert "datetime" not in str(err)  # values read as the user wrote them, not as Python reprs


def test_occ_fields_agreeing_are_accepted(tmp_path):
    p = write(tmp_path, "pos.csv", POS_HEADER + ",underlying,option_type,strike,expiration",
              "P1,SPY250919C00460000,1,5,2025-01-02,SPY,C,460,2025-09-19")
    pos = parse_ledger(p).positions
    assert pos.loc[0, "investment_class"] == "OPTIONS" and pos.loc[0, "strike"] == 460.0


def test_duplicate_position_id(tmp_path):
    p = write(tmp_path, "pos.csv", POS_HEADER + ",position_id", f"{GOOD_ROW},lot-1", "P1,MSFT,10,300,2025-01-02,lot-1")
    assert_problem(problems_of(p), p, 3, "position_id", "also row 2")


def test_same_position_id_in_two_portfolios_is_fine(tmp_path):
    p = write(tmp_path, "pos.csv", POS_HEADER + ",position_id", f"{GOOD_ROW},lot-1", "P2,MSFT,10,300,2025-01-02,lot-1")
    assert len(parse_ledger(p).positions) == 2


def test_default_position_ids_collide_for_same_symbol_and_day(tmp_path):
    p = write(tmp_path, "pos.csv", POS_HEADER, GOOD_ROW, GOOD_ROW)
    assert_problem(problems_of(p), p, 3, "position_id", "AAPL@2025-01-02")


def test_flows_for_unknown_portfolio(tmp_path):
    p = write(tmp_path, "pos.csv", POS_HEADER, GOOD_ROW)
    f = write(tmp_path, "flows.csv", "portfolio_id,date,amount", "P1,2025-01-02,1000", "P9,2025-01-02,1000")
    assert_problem(problems_of(p, f), f, 3, "portfolio_id", "'P9'")


def test_flows_for_an_already_loaded_portfolio_are_accepted(tmp_path):
    p = write(tmp_path, "pos.csv", POS_HEADER, GOOD_ROW)
    f = write(tmp_path, "flows.csv", "portfolio_id,date,amount", "P9,2025-01-02,1000")
    ledger = parse_ledger(p, f, already_loaded={"P9"})
    assert list(ledger.capital_flows["portfolio_id"]) == ["P9"]


@pytest.mark.parametrize("amount, text", [("lots", "not a number"), ("0", "non-zero"), ("", "required")])
def test_bad_amount(tmp_path, amount, text):
    p = write(tmp_path, "pos.csv", POS_HEADER, GOOD_ROW)
    f = write(tmp_path, "flows.csv", "portfolio_id,date,amount", "P1,2025-01-02,1000", f"P1,2025-01-03,{amount}")
    assert_problem(problems_of(p, f), f, 3, "amount", text)


def test_bad_flow_date(tmp_path):
    p = write(tmp_path, "pos.csv", POS_HEADER, GOOD_ROW)
    f = write(tmp_path, "flows.csv", "portfolio_id,date,amount", "P1,01/02/2025,1000")
    assert_problem(problems_of(p, f), f, 2, "date", "not a date")


def test_multiple_problems_reported_together(tmp_path):
    p = write(
        tmp_path, "pos.csv", POS_HEADER + ",exit_date,exit_price",
        f"{GOOD_ROW},,",                         # line 2: fine
        "P1,MSFT,abc,300,2025-01-02,,",          # line 3: quantity
        "P1,NVDA,10,300,2025-13-01,,",           # line 4: entry_date
        "P1,JPM,10,300,2025-01-02,2025-03-03,",  # line 5: exit_price
    )
    f = write(tmp_path, "flows.csv", "portfolio_id,date,amount", "P1,2025-01-02,0", "PX,2025-01-02,5")
    err = problems_of(p, f)
    where = {(Path(q.file).name, q.row, q.field) for q in err.problems}
    assert where == {
        ("pos.csv", 3, "quantity"),
        ("pos.csv", 4, "entry_date"),
        ("pos.csv", 5, "exit_price"),
        ("flows.csv", 2, "amount"),
        ("flows.csv", 3, "portfolio_id"),
    }
    assert str(err).startswith("5 problem(s)")
    assert "nothing was loaded" in str(err)


def test_missing_file(tmp_path):
    err = problems_of(tmp_path / "nope.csv")
    assert "nope.csv" in str(err) and "file not found" in str(err)


def test_header_only_file(tmp_path):
    p = write(tmp_path, "pos.csv", POS_HEADER)
    assert_problem(problems_of(p), p, 1, "-", "no positions")


# -- storing: reloads replace a book, other books untouched ----------------------------------------
def _sorted(frame: pd.DataFrame, key) -> pd.DataFrame:
    return frame.sort_values(key, ignore_index=True)


def test_loading_the_same_files_twice_does_not_duplicate(warehouse, loaded_sample):
    before = read_ledger(warehouse)
    store_ledger(warehouse, parse_ledger(SAMPLE_POSITIONS, SAMPLE_FLOWS))
    after = read_ledger(warehouse)
    assert [len(f) for f in after] == [4, 25, 9]
    for b, a, key in zip(before[1:], after[1:], (["portfolio_id", "position_id"], ["portfolio_id", "flow_id"])):
        pd.testing.assert_frame_equal(_sorted(b, key), _sorted(a, key))


def test_reloading_a_portfolio_replaces_only_its_positions(tmp_path, warehouse, loaded_sample):
    _, pos_before, flows_before = read_ledger(warehouse)
    p = write(tmp_path, "plong.csv", POS_HEADER + ",portfolio_name",
              "P-LONG,AAPL,999,150,2025-01-02,Long-only v2", "P-LONG,ORCL,50,100,2025-06-02,Long-only v2")
    f = write(tmp_path, "plong_flows.csv", "portfolio_id,date,amount", "P-LONG,2024-12-31,2000000")
    store_ledger(warehouse, parse_ledger(p, f))
    books, pos, flows = read_ledger(warehouse)
    plong = pos[pos["portfolio_id"] == "P-LONG"]
    assert sorted(plong["symbol"]) == ["AAPL", "ORCL"]
    assert plong.set_index("symbol").loc["AAPL", "quantity"] == 999.0
    assert books.set_index("portfolio_id").loc["P-LONG", "name"] == "Long-only v2"
    assert len(books) == 4
    others_before = pos_before[pos_before["portfolio_id"] != "P-LONG"]
    others_after = pos[pos["portfolio_id"] != "P-LONG"]
    key = ["portfolio_id", "position_id"]
    pd.testing.assert_frame_equal(_sorted(others_before, key), _sorted(others_after, key))
    assert flows[flows["portfolio_id"] == "P-LONG"]["amount"].tolist() == [2_000_000.0]
    fkey = ["portfolio_id", "flow_id"]
    pd.testing.assert_frame_equal(
        _sorted(flows_before[flows_before["portfolio_id"] != "P-LONG"], fkey),
        _sorted(flows[flows["portfolio_id"] != "P-LONG"], fkey),
    )


# -- the CLI ---------------------------------------------------------------------------------------
def test_cli_load_sample_then_bad_file_changes_nothing(tmp_path, warehouse):
    runner = CliRunner()
    ok = runner.invoke(main, ["load-portfolios", "--sample"])
    assert ok.exit_code == 0, ok.output
    assert "loaded 4 portfolio(s), 25 position(s), 9 capital flow(s)" in ok.output
    before = read_ledger(warehouse)

    # A file that would replace P-LONG (first row valid) but has a bad third line.
    bad = write(tmp_path, "BAD.csv", POS_HEADER, "P-LONG,AAPL,1,150,2025-01-02", "P-LONG,MSFT,zero,300,2025-01-02",
                "P-NEW,IBM,10,100,2025-01-02")
    res = runner.invoke(main, ["load-portfolios", str(bad)])
    assert res.exit_code == 2, res.output
    assert f"{bad}, row 3, field 'quantity'" in res.stderr
    assert "nothing was loaded" in res.stderr
    assert "loaded" not in res.stdout

    after = read_ledger(warehouse)
    assert sorted(after[0]["portfolio_id"]) == ["P-LONG", "P-LS", "P-OPT", "P-PRIV"]  # no P-NEW
    key = ["portfolio_id", "position_id"]
    pd.testing.assert_frame_equal(_sorted(before[1], key), _sorted(after[1], key))
    fkey = ["portfolio_id", "flow_id"]
    pd.testing.assert_frame_equal(_sorted(before[2], fkey), _sorted(after[2], fkey))


def test_cli_bad_flows_file_changes_nothing(tmp_path, warehouse):
    runner = CliRunner()
    assert runner.invoke(main, ["load-portfolios", "--sample"]).exit_code == 0
    before = read_ledger(warehouse)
    pos = write(tmp_path, "pos.csv", POS_HEADER, "P-LONG,AAPL,1,150,2025-01-02")
    flows = write(tmp_path, "flows.csv", "portfolio_id,date,amount", "P-LONG,2025-01-02,abc")
    res = runner.invoke(main, ["load-portfolios", str(pos), "--flows", str(flows)])
    assert res.exit_code == 2
    assert f"{flows}, row 2, field 'amount'" in res.stderr
    after = read_ledger(warehouse)
    key = ["portfolio_id", "position_id"]
    pd.testing.assert_frame_equal(_sorted(before[1], key), _sorted(after[1], key))
    assert len(after[2]) == 9


def test_cli_flows_may_name_an_already_loaded_portfolio(tmp_path, warehouse):
    runner = CliRunner()
    assert runner.invoke(main, ["load-portfolios", "--sample"]).exit_code == 0
    pos = write(tmp_path, "pos.csv", POS_HEADER, "P-NEW,IBM,10,100,2025-01-02")
    flows = write(tmp_path, "flows.csv", "portfolio_id,date,amount", "P-NEW,2025-01-02,1000", "P-LS,2025-05-01,5000")
    res = runner.invoke(main, ["load-portfolios", str(pos), "--flows", str(flows)])
    assert res.exit_code == 0, res.output
    books, positions, fl = read_ledger(warehouse)
    assert len(books) == 5
    assert positions.groupby("portfolio_id").size()["P-LS"] == 8  # P-LS positions untouched


def test_cli_list(warehouse):
    runner = CliRunner()
    empty = runner.invoke(main, ["list"])
    assert empty.exit_code == 0 and "no portfolios loaded" in empty.output
    assert runner.invoke(main, ["load-portfolios", "--sample"]).exit_code == 0
    res = runner.invoke(main, ["list"])
    assert res.exit_code == 0
    for pid in ("P-LONG", "P-LS", "P-OPT", "P-PRIV"):
        assert pid in res.output
    assert "Family office with private assets" in res.output


def test_reloading_positions_alone_keeps_capital_flows(warehouse, loaded_sample):
    before = read_ledger(warehouse)[2]
    assert len(before) == len(loaded_sample.capital_flows) > 0
    store_ledger(warehouse, parse_ledger(SAMPLE_POSITIONS))  # no flows file
    after = read_ledger(warehouse)[2]
    pd.testing.assert_frame_equal(
        before.sort_values(["portfolio_id", "flow_id"]).reset_index(drop=True),
        after.sort_values(["portfolio_id", "flow_id"]).reset_index(drop=True),
    )


def test_reloading_with_a_flows_file_replaces_the_flows(warehouse, loaded_sample, tmp_path):
    flows = tmp_path / "flows.csv"
    flows.write_text("portfolio_id,date,amount\nP-LONG,2024-12-31,5000\n")
    store_ledger(warehouse, parse_ledger(SAMPLE_POSITIONS, flows))
    after = read_ledger(warehouse)[2]
    assert after["amount"].tolist() == [5000.0]


# -- private marks ------------------------------------------------------------------------------------
MARK_POS = [POS_HEADER + ",position_id,investment_class,manual_value",
            "P1,FUND_X,1,1000000,2025-01-02,FX,PRIVATE,1100000",
            "P1,FUND_Y,1,500000,2025-03-03,FY1,PRIVATE,",
            "P1,FUND_Y,1,400000,2025-04-01,FY2,PRIVATE,",
            "P1,AAPL,100,150,2025-01-02,A,,"]


def marks_problems(tmp_path, *lines):
    pos = write(tmp_path, "pos.csv", *MARK_POS)
    marks = write(tmp_path, "marks.csv", *lines)
    with pytest.raises(LedgerValidationError) as info:
        parse_ledger(pos, marks_path=marks)
    return marks, info.value


def test_marks_by_position_id_or_symbol_are_loaded_and_replace_stored_marks(warehouse, tmp_path):
    pos = write(tmp_path, "pos.csv", *MARK_POS)
    marks = write(tmp_path, "marks.csv", "portfolio_id,position_id,symbol,date,value",
                  "P1,FX,,2025-06-30,1200000", "P1,,FUND_X,2025-09-30,1250000", "P1,FY2,,2025-06-30,390000")
    ledger = parse_ledger(pos, marks_path=marks)
    got = ledger.marks.sort_values(["position_id", "date"])
    assert list(got["position_id"]) == ["FX", "FX", "FY2"]
    assert list(got["value"]) == [1_200_000.0, 1_250_000.0, 390_000.0]
    store_ledger(warehouse, ledger)
    assert len(warehouse.read("private_marks", key_column="portfolio_id")) == 3
    # Reloading positions without --marks keeps them; a marks file replaces them.
    store_ledger(warehouse, parse_ledger(pos))
    assert len(warehouse.read("private_marks", key_column="portfolio_id")) == 3
    one = write(tmp_path, "one.csv", "portfolio_id,position_id,date,value", "P1,FX,2025-07-31,1210000")
    store_ledger(warehouse, parse_ledger(pos, marks_path=one))
    stored = warehouse.read("private_marks", key_column="portfolio_id")
    assert list(stored["value"]) == [1_210_000.0]


@pytest.mark.parametrize("row,field,text", [
    ("P9,FX,,2025-06-30,1", "portfolio_id", "no positions"),
    ("P1,NOPE,,2025-06-30,1", "position_id", "not a position"),
    ("P1,A,,2025-06-30,1", "position_id", "not PRIVATE"),
    ("P1,,FUND_Y,2025-06-30,1", "symbol", "2 private positions"),
    ("P1,,,2025-06-30,1", "position_id", "position_id or symbol"),
    ("P1,FX,,2024-12-31,1", "date", "before the position's entry"),
    ("P1,FX,,2025-13-01,1", "date", "not a date"),
    ("P1,FX,,2025-06-30,abc", "value", "not a number"),
    ("P1,FX,FUND_Y,2025-06-30,1", "symbol", "disagrees"),
])
def test_bad_mark_rows_name_file_row_and_field_and_nothing_is_loaded(tmp_path, row, field, text):
    marks, err = marks_problems(tmp_path, "portfolio_id,position_id,symbol,date,value", "P1,FX,,2025-05-30,1", row)
    assert_problem(err, marks, 3, field, text)
    assert "nothing was loaded" in str(err)


def test_a_duplicate_mark_is_rejected(tmp_path):
    marks, err = marks_problems(tmp_path, "portfolio_id,position_id,date,value", "P1,FX,2025-05-30,1",
                                "P1,FX,2025-05-30,2")
    assert_problem(err, marks, 3, "date", "second mark")


def test_cli_loads_marks_and_refuses_a_bad_file_whole(tmp_path, warehouse, tmp_warehouse_url):
    pos = write(tmp_path, "pos.csv", *MARK_POS)
    good = write(tmp_path, "marks.csv", "portfolio_id,symbol,date,value", "P1,FUND_X,2025-06-30,1200000")
    runner = CliRunner()
    res = runner.invoke(main, ["load-portfolios", str(pos), "--marks", str(good), "--database-url", tmp_warehouse_url,
                               "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "1 private mark(s)" in res.output
    bad = write(tmp_path, "bad.csv", "portfolio_id,symbol,date,value", "P1,FUND_X,2025-07-31,1300000",
                "P1,AAPL,2025-07-31,1")
    res = runner.invoke(main, ["load-portfolios", str(pos), "--marks", str(bad), "--database-url", tmp_warehouse_url,
                               "--no-progress"])
    assert res.exit_code == 2
    assert f"{bad}, row 3, field 'symbol'" in res.output
    stored = warehouse.read("private_marks", key_column="portfolio_id")
    assert list(stored["value"]) == [1_200_000.0]  # all or nothing: the good row of the bad file is not loaded
