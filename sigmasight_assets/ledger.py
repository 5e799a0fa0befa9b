"""The portfolio ledger CSV format: parsing and validation (pure pandas, no database).

Positions file (one row per position lot; header required, column order free)::

    portfolio_id    required  id of the book, e.g. P-LONG (letters, digits, - _ .)
    portfolio_name  optional  display name (defaults to portfolio_id); one name per portfolio
    position_id     optional  unique within the portfolio (defaults to "<symbol>@<entry_date>")
    symbol          required  ticker, OCC option symbol, or a private asset id
    quantity        required  signed number of shares / contracts (shorts negative), non-zero
    entry_price     required  price per share (options: premium per share), > 0 (≥ 0 for PRIVATE)
    entry_date      required  YYYY-MM-DD
    exit_date       optional  YYYY-MM-DD, after entry_date; the position is inactive from this day
    exit_price      optional  required with exit_date, > 0
    investment_class optional PUBLIC | OPTIONS | PRIVATE (inferred from the symbol when blank)
    underlying, option_type (C|P), strike, expiration   optional; parsed from the OCC symbol and
                                                        checked against it when given
    manual_value    optional, PRIVATE only: the position's total value in USD, read as a mark dated
                    at entry (without it and without a later mark, the position is valued at cost)
    deleted         optional  true/false (soft-deleted positions are kept but never active)

Capital flows file::

    portfolio_id    required  must name a portfolio in the positions file or already loaded
    date            required  YYYY-MM-DD
    amount          required  USD, + deposit / − withdrawal, non-zero
    description     optional
    flow_id         optional  unique within the portfolio (defaults to "<date>#<n>")

Private marks file (``--marks``; dated values of PRIVATE positions)::

    portfolio_id    required  a portfolio in the positions file or already loaded
    position_id     one of    the PRIVATE position's id in that portfolio
    symbol          the two   or its symbol, when exactly one PRIVATE position of the portfolio holds it
    date            required  YYYY-MM-DD, on or after the position's entry date
    value           required  total USD value of the position on that date (sign as the position)

The value of a PRIVATE position on a day D is its last mark dated on or before D (the entry cost
before the first); a mark dated after D never reaches D.

Every problem is collected (file, 1-based line number counting the header as line 1, field, message)
and raised together as :class:`LedgerValidationError`; nothing is returned half-parsed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import pandas as pd

from .market_data.symbols import classify, is_private_symbol, is_valid_public_symbol, occ_problem, parse_occ

POSITION_REQUIRED = ["portfolio_id", "symbol", "quantity", "entry_price", "entry_date"]
POSITION_OPTIONAL = [
    "portfolio_name",
    "position_id",
    "exit_date",
    "exit_price",
    "investment_class",
    "underlying",
    "option_type",
    "strike",
    "expiration",
    "manual_value",
    "deleted",
]
FLOW_REQUIRED = ["portfolio_id", "date", "amount"]
FLOW_OPTIONAL = ["description", "flow_id"]
MARK_REQUIRED = ["portfolio_id", "date", "value"]
MARK_OPTIONAL = ["position_id", "symbol"]
MARK_COLUMNS = ["portfolio_id", "position_id", "date", "value", "source_file"]
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
_TRUE = {"true", "1", "yes", "y"}
_FALSE = {"false", "0", "no", "n", ""}


@dataclass(frozen=True)
class LedgerProblem:
    file: str
    row: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}, row {self.row}, field '{self.field}': {self.message}"


class LedgerValidationError(ValueError):
    """One or more rows of a ledger file are invalid; ``problems`` lists every one."""

    def __init__(self, problems: list[LedgerProblem]):
        self.problems = problems
        shown = "\n".join(f"  - {p}" for p in problems[:50])
        more = f"\n  ... and {len(problems) - 50} more" if len(problems) > 50 else ""
        super().__init__(f"{len(problems)} problem(s) in the portfolio files; nothing was loaded:\n{shown}{more}")


@dataclass
class Ledger:
    portfolios: pd.DataFrame  # portfolio_id, name, source_file
    positions: pd.DataFrame
    capital_flows: pd.DataFrame
    problems: list[LedgerProblem] = field(default_factory=list)
    flows_given: bool = True  # False: positions only; stored flows are kept
    marks: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=MARK_COLUMNS))
    marks_given: bool = False  # False: stored marks are kept


def _read(path: Path, required: list[str], optional: list[str], problems: list[LedgerProblem]) -> pd.DataFrame | None:
    name = str(path)
    if not path.exists():
        problems.append(LedgerProblem(name, 0, "-", "file not found"))
        return None
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except Exception as exc:  # pandas raises several parser error types
        problems.append(LedgerProblem(name, 0, "-", f"not a readable CSV file: {exc}"))
        return None
    frame.columns = [c.strip().lower() for c in frame.columns]
    for col in required:
        if col not in frame.columns:
            problems.append(LedgerProblem(name, 1, col, "required column is missing from the header"))
    unknown = [c for c in frame.columns if c not in required + optional]
    for col in unknown:
        problems.append(LedgerProblem(name, 1, col, f"unknown column (expected some of {required + optional})"))
    if any(p.file == name for p in problems):
        return None
    for col in optional:
        if col not in frame.columns:
            frame[col] = ""
    frame = frame.apply(lambda s: s.str.strip())
    frame["_row"] = range(2, len(frame) + 2)
    return frame


def _date(value: str, file: str, row: int, fld: str, problems, required=True) -> date | None:
    if value == "":
        if required:
            problems.append(LedgerProblem(file, row, fld, "is required"))
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        problems.append(LedgerProblem(file, row, fld, f"{value!r} is not a date (YYYY-MM-DD)"))
        return None


def _number(value: str, file: str, row: int, fld: str, problems, required=True) -> float | None:
    if value == "":
        if required:
            problems.append(LedgerProblem(file, row, fld, "is required"))
        return None
    try:
        x = float(value.replace(",", ""))
    except ValueError:
        problems.append(LedgerProblem(file, row, fld, f"{value!r} is not a number"))
        return None
    if x != x or x in (float("inf"), float("-inf")):
        problems.append(LedgerProblem(file, row, fld, f"{value!r} is not a finite number"))
        return None
    return x


def parse_positions(path: str | Path) -> tuple[pd.DataFrame, pd.DataFrame, list[LedgerProblem]]:
    """Validate a positions file; returns (portfolios, positions, problems)."""
    path = Path(path)
    problems: list[LedgerProblem] = []
    frame = _read(path, POSITION_REQUIRED, POSITION_OPTIONAL, problems)
    if frame is None:
        return pd.DataFrame(), pd.DataFrame(), problems
    f = str(path)
    rows, names = [], {}
    seen_ids: dict[tuple[str, str], int] = {}
    for rec in frame.to_dict("records"):
        r = rec["_row"]
        n_before = len(problems)
        pid = rec["portfolio_id"]
        if not _ID.match(pid):
            problems.append(LedgerProblem(f, r, "portfolio_id", f"{pid!r} is not a valid id (letters, digits, - _ .)"))
        symbol = rec["symbol"].upper().replace(" ", "")
        if symbol == "":
            problems.append(LedgerProblem(f, r, "symbol", "is required"))
        qty = _number(rec["quantity"], f, r, "quantity", problems)
        if qty == 0:
            problems.append(LedgerProblem(f, r, "quantity", "must be non-zero (shorts are negative)"))
        entry_price = _number(rec["entry_price"], f, r, "entry_price", problems)
        entry_date = _date(rec["entry_date"], f, r, "entry_date", problems)
        exit_date = _date(rec["exit_date"], f, r, "exit_date", problems, required=False)
        exit_price = _number(rec["exit_price"], f, r, "exit_price", problems, required=False)
        declared = rec["investment_class"].upper()
        if declared not in ("", "PUBLIC", "OPTIONS", "PRIVATE"):
            problems.append(LedgerProblem(f, r, "investment_class", f"{rec['investment_class']!r} is not PUBLIC, OPTIONS or PRIVATE"))
            declared = ""
        cls = classify(symbol, declared or None) if symbol else "PUBLIC"
        if declared == "PUBLIC" and cls != "PUBLIC":
            problems.append(LedgerProblem(f, r, "investment_class", f"PUBLIC contradicts symbol {symbol!r} (looks {cls})"))
        manual_value = _number(rec["manual_value"], f, r, "manual_value", problems, required=False)
        underlying = rec["underlying"].upper() or None
        option_type = rec["option_type"].upper() or None
        strike = _number(rec["strike"], f, r, "strike", problems, required=False)
        expiration = _date(rec["expiration"], f, r, "expiration", problems, required=False)
        if cls == "OPTIONS":
            occ = parse_occ(symbol)
            if occ is None:
                bad_part = occ_problem(symbol)
                problems.append(LedgerProblem(f, r, "symbol", f"{symbol!r} is a malformed option symbol: {bad_part}" if bad_part
                                              else f"{symbol!r} is not an OCC option symbol (ROOT YYMMDD C/P strike×1000 in 8 digits)"))
            else:
                for fld, given, parsed in (
                    ("underlying", underlying, occ.underlying),
                    ("option_type", option_type, occ.option_type),
                    ("strike", strike, occ.strike),
                    ("expiration", expiration, occ.expiry),
                ):
                    if given is not None and given != parsed:
                        problems.append(LedgerProblem(f, r, fld, f"{given} disagrees with the OCC symbol ({parsed})"))
                underlying, option_type, strike, expiration = occ.underlying, occ.option_type, occ.strike, occ.expiry
        elif cls == "PUBLIC" and symbol and occ_problem(symbol):
            problems.append(LedgerProblem(f, r, "symbol", f"{symbol!r} is a malformed option symbol: {occ_problem(symbol)}"))
        elif cls == "PUBLIC" and symbol and not is_valid_public_symbol(symbol):
            problems.append(LedgerProblem(f, r, "symbol", f"{symbol!r} is not a valid ticker"))
        if entry_price is not None:
            if cls == "PRIVATE" and entry_price < 0 or cls != "PRIVATE" and entry_price <= 0:
                problems.append(LedgerProblem(f, r, "entry_price", f"{entry_price} must be positive"))
        if exit_date is not None and exit_price is None and rec["exit_price"] == "":
            problems.append(LedgerProblem(f, r, "exit_price", "is required when exit_date is given"))
        if exit_price is not None and exit_date is None and rec["exit_date"] == "":
            problems.append(LedgerProblem(f, r, "exit_date", "is required when exit_price is given"))
        if exit_price is not None and exit_price <= 0:
            problems.append(LedgerProblem(f, r, "exit_price", f"{exit_price} must be positive"))
        if exit_date and entry_date and exit_date <= entry_date:
            problems.append(LedgerProblem(f, r, "exit_date", f"{exit_date} is not after entry_date {entry_date}"))
        deleted_raw = rec["deleted"].lower()
        if deleted_raw not in _TRUE | _FALSE:
            problems.append(LedgerProblem(f, r, "deleted", f"{rec['deleted']!r} is not true/false"))
        position_id = rec["position_id"] or f"{symbol}@{entry_date}"
        if (pid, position_id) in seen_ids:
            problems.append(LedgerProblem(f, r, "position_id", f"duplicate {position_id!r} in portfolio {pid} (also row {seen_ids[(pid, position_id)]})"))
        seen_ids[(pid, position_id)] = r
        name = rec["portfolio_name"] or pid
        if pid in names and rec["portfolio_name"] and names[pid] != name and names[pid] != pid:
            problems.append(LedgerProblem(f, r, "portfolio_name", f"{name!r} differs from {names[pid]!r} given earlier for {pid}"))
        if pid not in names or names[pid] == pid:
            names[pid] = name
        if len(problems) > n_before:
            continue
        rows.append(
            {
                "portfolio_id": pid,
                "position_id": position_id,
                "symbol": symbol,
                "investment_class": cls,
                "quantity": qty,
                "entry_price": entry_price,
                "entry_date": pd.Timestamp(entry_date),
                "exit_date": pd.Timestamp(exit_date) if exit_date else pd.NaT,
                "exit_price": exit_price,
                "underlying": underlying,
                "option_type": option_type,
                "strike": strike,
                "expiration": pd.Timestamp(expiration) if expiration else pd.NaT,
                "manual_value": manual_value if cls == "PRIVATE" else None,
                "deleted": deleted_raw in _TRUE,
            }
        )
    if frame.empty:
        problems.append(LedgerProblem(f, 1, "-", "the file has a header but no positions"))
    positions = pd.DataFrame(rows)
    if len(positions):
        for col in ("quantity", "entry_price", "exit_price", "strike", "manual_value"):
            positions[col] = pd.to_numeric(positions[col]).astype(float)
    portfolios = pd.DataFrame({"portfolio_id": list(names), "name": list(names.values()), "source_file": f})
    return portfolios, positions, problems


def parse_flows(path: str | Path, known_portfolios: set[str]) -> tuple[pd.DataFrame, list[LedgerProblem]]:
    """Validate a capital-flows file against the set of known portfolio ids."""
    path = Path(path)
    problems: list[LedgerProblem] = []
    frame = _read(path, FLOW_REQUIRED, FLOW_OPTIONAL, problems)
    if frame is None:
        return pd.DataFrame(), problems
    f = str(path)
    rows, seen = [], {}
    counters: dict[tuple[str, date], int] = {}
    for rec in frame.to_dict("records"):
        r = rec["_row"]
        n_before = len(problems)
        pid = rec["portfolio_id"]
        if pid not in known_portfolios:
            problems.append(LedgerProblem(f, r, "portfolio_id", f"{pid!r} is not in the positions file nor already loaded"))
        d = _date(rec["date"], f, r, "date", problems)
        amount = _number(rec["amount"], f, r, "amount", problems)
        if amount == 0:
            problems.append(LedgerProblem(f, r, "amount", "must be non-zero (+ deposit, − withdrawal)"))
        if d is not None:
            counters[(pid, d)] = counters.get((pid, d), 0) + 1
        flow_id = rec["flow_id"] or f"{d}#{counters.get((pid, d), 1)}"
        if (pid, flow_id) in seen:
            problems.append(LedgerProblem(f, r, "flow_id", f"duplicate {flow_id!r} in portfolio {pid} (also row {seen[(pid, flow_id)]})"))
        seen[(pid, flow_id)] = r
        if len(problems) > n_before:
            continue
        rows.append({"portfolio_id": pid, "flow_id": flow_id, "date": pd.Timestamp(d), "amount": float(amount),
                     "description": rec["description"] or None})
    return pd.DataFrame(rows, columns=["portfolio_id", "flow_id", "date", "amount", "description"]), problems


def parse_marks(path: str | Path, positions: pd.DataFrame) -> tuple[pd.DataFrame, list[LedgerProblem]]:
    """Validate a private marks file against ``positions`` (the positions each portfolio will have:
    those of the positions file, else the stored ones); returns (marks, problems)."""
    path = Path(path)
    problems: list[LedgerProblem] = []
    frame = _read(path, MARK_REQUIRED, MARK_OPTIONAL, problems)
    if frame is None:
        return pd.DataFrame(columns=MARK_COLUMNS), problems
    f = str(path)
    live = positions[~positions["deleted"].astype(bool)] if len(positions) else positions
    by_pf = {pid: grp for pid, grp in live.groupby("portfolio_id")} if len(live) else {}
    rows, seen = [], {}
    for rec in frame.to_dict("records"):
        r = rec["_row"]
        n_before = len(problems)
        pid = rec["portfolio_id"]
        held = by_pf.get(pid)
        if held is None:
            problems.append(LedgerProblem(f, r, "portfolio_id", f"{pid!r} has no positions in the positions file nor "
                                                                "in the warehouse"))
        d = _date(rec["date"], f, r, "date", problems)
        value = _number(rec["value"], f, r, "value", problems)
        position_id, symbol = rec["position_id"], rec["symbol"].upper().replace(" ", "")
        target = None
        if position_id == "" and symbol == "":
            problems.append(LedgerProblem(f, r, "position_id", "give position_id or symbol"))
        elif held is not None:
            if position_id:
                match = held[held["position_id"] == position_id]
                fld, what = "position_id", repr(position_id)
            else:
                match = held[held["symbol"] == symbol]
                fld, what = "symbol", repr(symbol)
            private = match[match["investment_class"] == "PRIVATE"]
            if match.empty:
                problems.append(LedgerProblem(f, r, fld, f"{what} is not a position of portfolio {pid}"))
            elif private.empty:
                problems.append(LedgerProblem(f, r, fld, f"{what} in portfolio {pid} is not PRIVATE (only private "
                                                         "positions take marks; market positions use prices)"))
            elif len(private) > 1:
                problems.append(LedgerProblem(f, r, fld, f"{what} names {len(private)} private positions of {pid}: "
                                                         f"use position_id ({', '.join(sorted(private['position_id']))})"))
            else:
                target = private.iloc[0]
                if position_id and symbol and symbol != target["symbol"]:
                    problems.append(LedgerProblem(f, r, "symbol", f"{symbol!r} disagrees with position {position_id!r} "
                                                                  f"({target['symbol']})"))
                if d is not None and pd.Timestamp(d) < pd.Timestamp(target["entry_date"]):
                    problems.append(LedgerProblem(f, r, "date", f"{d} is before the position's entry date "
                                                                f"{pd.Timestamp(target['entry_date']).date()}"))
        if target is not None and d is not None:
            key = (pid, target["position_id"], d)
            if key in seen:
                problems.append(LedgerProblem(f, r, "date", f"a second mark of {target['position_id']!r} in {pid} on "
                                                            f"{d} (also row {seen[key]})"))
            seen[key] = r
        if len(problems) > n_before or target is None:
            continue
        rows.append({"portfolio_id": pid, "position_id": target["position_id"], "date": pd.Timestamp(d),
                     "value": float(value), "source_file": f})
    if frame.empty:
        problems.append(LedgerProblem(f, 1, "-", "the file has a header but no marks"))
    return pd.DataFrame(rows, columns=MARK_COLUMNS), problems


def parse_ledger(positions_path: str | Path, flows_path: str | Path | None = None,
                 already_loaded: set[str] | None = None, marks_path: str | Path | None = None,
                 stored_positions: pd.DataFrame | None = None) -> Ledger:
    """Parse and validate the files; raise :class:`LedgerValidationError` listing every problem.

    ``stored_positions``: the warehouse's positions, against which marks of portfolios that are not
    in the positions file are checked."""
    portfolios, positions, problems = parse_positions(positions_path)
    flows = pd.DataFrame(columns=["portfolio_id", "flow_id", "date", "amount", "description"])
    if flows_path is not None:
        known = set(portfolios.get("portfolio_id", [])) | set(already_loaded or ())
        flows, flow_problems = parse_flows(flows_path, known)
        problems += flow_problems
    marks = pd.DataFrame(columns=MARK_COLUMNS)
    if marks_path is not None:
        # A portfolio of the positions file is replaced by it; the others keep their stored positions.
        new_ids = set(portfolios.get("portfolio_id", []))
        stored = stored_positions if stored_positions is not None and len(stored_positions) else None
        parts = [positions] if len(positions) else []
        if stored is not None:
            parts.append(stored[~stored["portfolio_id"].isin(new_ids)])
        cols = ["portfolio_id", "position_id", "symbol", "investment_class", "entry_date", "deleted"]
        ledger_positions = (pd.concat([p[cols] for p in parts], ignore_index=True) if parts
                            else pd.DataFrame(columns=cols))
        marks, mark_problems = parse_marks(marks_path, ledger_positions)
        problems += mark_problems
    if problems:
        raise LedgerValidationError(problems)
    return Ledger(portfolios, positions, flows, flows_given=flows_path is not None, marks=marks,
                  marks_given=marks_path is not None)


def private_symbols(positions: pd.DataFrame) -> set[str]:
    """Symbols that must never reach a market data provider."""
    if positions.empty:
        return set()
    mask = (positions["investment_class"] == "PRIVATE") | positions["symbol"].map(is_private_symbol)
    return set(positions.loc[mask, "symbol"])
