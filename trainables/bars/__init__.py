"""Reading bars and checking them: files, databases, the built-in data, many tickers at once.

Entry points: ``sources.BarSource`` / ``sources.read_bars`` (a file or a database
relation), ``files.load_bars`` and ``files.validate_bars`` (CSV/Parquet), ``database``
(PostgreSQL and SQLite readers), ``timestamps`` (to UTC), ``checks`` (values, jumps, gaps),
``provenance.origin_of`` (each bar's source row, for messages), ``synthetic.make_bars`` /
``make_universe``, ``universe.read_universe``. Never imports ``trainables.training``.
"""
