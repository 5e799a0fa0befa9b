"""Dagster resources: the warehouse and the market data provider chain."""

from __future__ import annotations

from typing import Optional

from dagster import ConfigurableResource

from .. import config
from ..market_data.base import MarketDataProvider
from ..market_data.chain import build_provider
from ..warehouse import Warehouse
from ..warehouse.engine import check_url

_USABLE: set[str] = set()  # warehouse URLs this process has checked


class WarehouseResource(ConfigurableResource):
    """The analytics warehouse. ``url`` defaults to ``SIGMASIGHT_DATABASE_URL`` (else embedded SQLite).

    Unset fields are ``None`` (not placeholders), so the Launchpad's default config leaves them out.
    """

    url: Optional[str] = None

    def get(self) -> Warehouse:
        url = self.url or config.database_url()
        setting = "the warehouse resource's url" if self.url else "SIGMASIGHT_DATABASE_URL"
        if url not in _USABLE:  # once per process: one line naming the setting instead of a driver traceback
            check_url(url, setting)
            _USABLE.add(url)
        wh = Warehouse(url)
        wh.check_writable(setting)
        wh.create_all()
        return wh


class MarketDataResource(ConfigurableResource):
    """Provider chain from a spec such as ``synthetic``, ``yfinance`` or ``yfinance,csv:/data``.

    Unset fields fall back to ``SIGMASIGHT_MARKET_DATA`` and ``SIGMASIGHT_SYNTHETIC_SEED``.
    """

    spec: Optional[str] = None
    seed: Optional[int] = None

    def get(self) -> MarketDataProvider:
        spec = self.spec or config.market_data_spec()
        seed = self.seed if self.seed is not None else config.synthetic_seed()
        return build_provider(spec, seed)
