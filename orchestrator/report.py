"""``python -m orchestrator.report``: write a promotion's report again from its files.

The code is orchestrator/promotion/report.py; this module keeps the command's name (and
the old import path, whose names it reads from there on first use).
"""

import sys

from trainables.old_paths import forward_to

__getattr__ = forward_to("orchestrator.promotion.report")

if __name__ == "__main__":
    from orchestrator.promotion.report import main

    sys.exit(main())
