"""The thin Dagster layer: assets, checks, jobs, schedules and sensors over calc/warehouse/market_data."""
