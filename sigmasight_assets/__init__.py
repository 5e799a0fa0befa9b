"""SigmaSight Assets: daily portfolio risk analytics as Dagster software-defined assets."""

__version__ = "0.1.0"
