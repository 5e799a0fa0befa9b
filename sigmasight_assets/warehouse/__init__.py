"""The analytics warehouse: SQLAlchemy tables, engine from URL, partition-aware repository."""

from .repository import Warehouse
from .schema import TABLES

__all__ = ["Warehouse", "TABLES"]
