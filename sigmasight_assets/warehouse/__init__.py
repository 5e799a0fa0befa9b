"""The analytics warehouse: SQLAlchemy tables, engine from URL, partition-aware repository."""

from .repository import Replacement, Warehouse, WarehouseNotWritable
from .schema import TABLES

__all__ = ["Replacement", "Warehouse", "WarehouseNotWritable", "TABLES"]
