"""The thin Dagster layer: assets, checks, jobs, schedules and sensors over calc/warehouse/market_data."""

import warnings

from dagster import BetaWarning

# Beta Dagster APIs this layer uses on purpose: backfill policies (runs of many days, DESIGN §4), the
# observable ledger source, sensor owners. Each import of the definitions (webserver, daemon, every run
# worker) would otherwise log the same warnings again.
for _api in (r"Parameter `backfill_policy` of function", r"Function `multi_observable_source_asset`",
             r"Parameter `owners` of initializer `SensorDefinition"):
    warnings.filterwarnings("ignore", category=BetaWarning, message=_api)
