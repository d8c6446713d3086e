"""Reports rendered from the results store.

``html`` renders the self-contained HTML acceptance report: a frame around the sections of
``sections`` (each a context builder and a template partial), built from one run's records
(``run_data``), with the SVG charts of ``plots`` and the telemetry statistics of ``telemetry``;
``exports`` writes a run's samples and measurements as CSV and Parquet.

Nothing is imported here, so a caller that needs only one report module (the CLI's exports)
does not pay for importing matplotlib.
"""
