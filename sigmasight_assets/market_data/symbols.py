"""Symbol classification: private symbols, OCC option symbols, factor ETFs.

A symbol is *private* when it contains ``_``, matches ``^EQ[A-F0-9]{8,}$``, or its position is
classed PRIVATE; private symbols never reach a market-data provider. Options use OCC symbols
``ROOT YYMMDD C/P strike×1000`` (8 digits), e.g. ``SPY250919C00460000``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

# The classification the maths needs lives in calc (the bottom layer); re-exported here for the
# providers and the ledger loader.
from ..calc.symbols import is_private_symbol

__all__ = ["OptionContract", "classify", "is_private_symbol", "is_valid_public_symbol", "option_expiries",
           "parse_occ", "stable_hash"]
_OCC = re.compile(r"^(?P<root>[A-Z][A-Z0-9.]{0,5})(?P<yy>\d{2})(?P<mm>\d{2})(?P<dd>\d{2})(?P<cp>[CP])(?P<strike>\d{8})$")
# The OCC layout with any letter as the type: what a user meant as an option symbol.
_OCC_SHAPE = re.compile(r"^(?P<root>[A-Z][A-Z0-9.]{0,5})(?P<yy>\d{2})(?P<mm>\d{2})(?P<dd>\d{2})(?P<cp>[A-Z])(?P<strike>\d{8})$")
_PUBLIC = re.compile(r"^[A-Z0-9][A-Z0-9.\-^=]{0,14}$")


@dataclass(frozen=True)
class OptionContract:
    symbol: str
    underlying: str
    expiry: date
    option_type: str  # "C" or "P"
    strike: float


def parse_occ(symbol: str) -> OptionContract | None:
    """Parse an OCC option symbol; ``None`` when ``symbol`` is not one."""
    m = _OCC.match(symbol.replace(" ", ""))
    if not m:
        return None
    try:
        expiry = date(2000 + int(m["yy"]), int(m["mm"]), int(m["dd"]))
    except ValueError:
        return None
    return OptionContract(symbol, m["root"], expiry, m["cp"], int(m["strike"]) / 1000.0)


def occ_problem(symbol: str) -> str | None:
    """What is wrong with a symbol laid out like an OCC option symbol that does not parse.

    Parameters
    ----------
    symbol : str
        Any symbol.

    Returns
    -------
    str or None
        ``None`` when the symbol is a valid OCC symbol or does not look like one at all (root,
        6 digits, a letter, 8 digits); otherwise the bad part, e.g. ``"month 13 is not 01-12"``,
        ``"day 31 does not exist in 2025-06"`` or ``"option type 'X' is not C or P"``.
    """
    m = _OCC_SHAPE.match(symbol.replace(" ", ""))
    if not m or parse_occ(symbol) is not None:
        return None
    year, month, day = 2000 + int(m["yy"]), int(m["mm"]), int(m["dd"])
    if not 1 <= month <= 12:
        return f"month {m['mm']} is not 01-12"
    try:
        date(year, month, day)
    except ValueError:
        return f"day {m['dd']} does not exist in {year}-{m['mm']}"
    if m["cp"] not in "CP":
        return f"option type {m['cp']!r} is not C or P"
    return None  # pragma: no cover - a shape match with a valid date and type parses


def is_valid_public_symbol(symbol: str) -> bool:
    return bool(_PUBLIC.match(symbol))


def classify(symbol: str, investment_class: str | None = None) -> str:
    """``PRIVATE``, ``OPTIONS`` or ``PUBLIC`` for a symbol (and its position's declared class)."""
    cls = (investment_class or "").upper()
    if cls == "PRIVATE" or is_private_symbol(symbol):
        return "PRIVATE"
    if cls == "OPTIONS" or parse_occ(symbol) is not None:
        return "OPTIONS"
    return "PUBLIC"


def stable_hash(values: pd.Series | list[str], salt: str = "") -> np.ndarray:
    """A machine-independent 64-bit hash per string (FNV-1a), for deterministic synthetic data."""
    out = np.empty(len(values), dtype=np.uint64)
    for i, s in enumerate(values):
        h = 0xCBF29CE484222325
        for b in (salt + "|" + str(s)).encode():
            h ^= b
            h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
        out[i] = h
    return out
