"""``python -m trainables.synthetic``: write the built-in bars (or a universe) to a file.

The code is trainables/bars/synthetic.py; this module keeps the command's name (and the old
import path, whose names it reads from there on first use).
"""

import sys

from trainables.old_paths import forward_to

__getattr__ = forward_to("trainables.bars.synthetic")

if __name__ == "__main__":
    from trainables.bars.synthetic import main

    sys.exit(main())
