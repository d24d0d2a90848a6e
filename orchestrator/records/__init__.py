"""``results/<name>/`` on disk: what sweeps and promotions write and every reader reads.

Entry points: ``sweep_record`` (``sweep.json``: written before Ray starts, the settings
``--resume`` holds to), ``leaderboard`` (the leaderboard files, ``read_leaderboard``),
``names`` (sweep and ticker folder names), ``folder_lock.FolderLock`` (who owns a folder),
``universe_record`` (``universe.json``), ``tickers`` (``--tickers``). No Ray.
"""
