"""Range work without Dagster: read the windows an asset needs from the warehouse, call ``calc``,
validate with the pandera schemas, write. The same functions run in a Dagster step, a test or a
script; the Dagster layer (``defs``) maps partitions and run config to one call here and turns the
returned statistics into metadata and check results.

* ``windows`` — the one reader of price and return windows (shared by every pipeline of a run);
* ``market`` — the symbol universe, provider fetches and the market-data tables;
* ``returns`` — ``symbol_returns``, the point-in-time total returns every return-based analytic reads;
* ``symbols`` — symbol analytics: betas, ridge and spread factors, factor covariance, metrics;
* ``portfolio`` — portfolio analytics in bounded batches of days and portfolios, scoped or whole;
* ``io`` — the validated write (pandera, then delete-then-insert in one transaction).
"""
