"""Symbol classification that the maths needs: which symbols are private (never priced by a market).

A symbol is *private* when it contains ``_`` or matches ``^EQ[A-F0-9]{8,}$`` (the ledger may also
class a position PRIVATE whatever its symbol). ``market_data.symbols`` re-exports this for the
providers and the ledger loader.
"""

from __future__ import annotations

import re

__all__ = ["PRIVATE_ID_PATTERN", "is_private_symbol"]

PRIVATE_ID_PATTERN = re.compile(r"^EQ[A-F0-9]{8,}$")


def is_private_symbol(symbol: str) -> bool:
    """True for a private asset id: contains ``_`` or matches :data:`PRIVATE_ID_PATTERN`."""
    return "_" in symbol or bool(PRIVATE_ID_PATTERN.match(symbol))
