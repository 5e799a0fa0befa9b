"""Symbol classification: OCC option symbols, and a malformed one reported as such (issue 13, finding 5)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from sigmasight_assets.ledger import LedgerValidationError, parse_ledger
from sigmasight_assets.market_data.symbols import classify, occ_problem, parse_occ


@pytest.mark.parametrize(
    "symbol, problem",
    [
        ("SPY251319C00460000", "month 13 is not 01-12"),
        ("SPY250019C00460000", "month 00 is not 01-12"),
        ("SPY251232C00460000", "day 32 does not exist in 2025-12"),
        ("SPY250631P00460000", "day 31 does not exist in 2025-06"),
        ("SPY250229C00460000", "day 29 does not exist in 2025-02"),
        ("SPY250919X00460000", "option type 'X' is not C or P"),
    ],
)
def test_occ_shaped_symbols_name_their_bad_part(symbol, problem):
    assert parse_occ(symbol) is None
    assert occ_problem(symbol) == problem


@pytest.mark.parametrize("symbol", ["SPY250919C00460000", "SPY240229P00400000", "AAPL", "BRK.B", "SPY2512C460",
                                    "EQ1A2B3C4D5E", "PRIVATE_FUND_A"])
def test_valid_or_not_occ_shaped_symbols_have_no_occ_problem(symbol):
    assert occ_problem(symbol) is None


def test_a_valid_occ_symbol_parses():
    c = parse_occ("SPY250919C00460000")
    assert (c.underlying, c.expiry, c.option_type, c.strike) == ("SPY", date(2025, 9, 19), "C", 460.0)
    assert classify("SPY250919C00460000") == "OPTIONS"


@pytest.mark.parametrize("declared", ["", "OPTIONS"])
def test_the_ledger_reports_a_malformed_option_symbol_not_an_invalid_ticker(tmp_path: Path, declared):
    path = tmp_path / "positions.csv"
    path.write_text("portfolio_id,symbol,quantity,entry_price,entry_date,investment_class\n"
                    "P1,AAPL,100,150.0,2025-01-02,\n"
                    f"P1,SPY251319C00460000,1,5.0,2025-01-02,{declared}\n")
    with pytest.raises(LedgerValidationError) as info:
        parse_ledger(path)
    problems = [p for p in info.value.problems if p.row == 3]
    assert [(p.field, p.message) for p in problems] == [
        ("symbol", "'SPY251319C00460000' is a malformed option symbol: month 13 is not 01-12")]
    assert "not a valid ticker" not in str(info.value)
    assert f"{path}, row 3, field 'symbol': 'SPY251319C00460000' is a malformed option symbol" in str(info.value)
