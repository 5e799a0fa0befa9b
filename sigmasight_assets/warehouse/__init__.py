"""The analytics warehouse: SQLAlchemy tables, engine from URL, partition-aware repository."""

from .repository import Replacement, StagedReplacement, Warehouse, WarehouseNotWritable
from .schema import TABLES

__all__ = ["Replacement", "StagedReplacement", "Warehouse", "WarehouseNotWritable", "TABLES"]
