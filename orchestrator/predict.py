"""``python -m orchestrator.predict``: predictions of a promoted model for new bars.

The code is orchestrator/models/predict.py; this module keeps the command's name and the
old import path, which MLflow pyfunc models registered before the move import
(``from orchestrator.predict import load_model, predict_bars``): its names are read from
there on first use.
"""

import sys

from trainables.old_paths import forward_to

__getattr__ = forward_to("orchestrator.models.predict")

if __name__ == "__main__":
    from orchestrator.models.predict import main

    sys.exit(main())
