"""``python -m orchestrator.promote``: retrain the best configs of a sweep, judge them once.

The code is orchestrator/promotion/run.py; this module keeps the command's name (and the
old import path ``orchestrator.promote``, whose names it reads from there on first use).
"""

import sys

from trainables.old_paths import forward_to

__getattr__ = forward_to("orchestrator.promotion.run")

if __name__ == "__main__":
    from orchestrator.promotion.run import main

    sys.exit(main())
