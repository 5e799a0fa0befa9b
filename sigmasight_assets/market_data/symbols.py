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


def option_expiries(symbols: pd.Series) -> pd.Series:
    """Expiry (datetime64) per symbol; NaT for non-option symbols."""
    parsed = symbols.map(parse_occ)
    return pd.to_datetime(parsed.map(lambda c: c.expiry if c is not None else None), errors="coerce")


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
