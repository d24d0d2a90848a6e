"""The promoted model as an MLflow pyfunc model, logged from code (no pickle).

MLflow copies this file into the logged model and runs it at load time ("models from
code": ``mlflow.pyfunc.log_model(python_model="<this file>")``); ``mlflow.models.set_model``
below names the model object. A ``python_model`` *instance* would be cloudpickled instead,
and MLflow 3 refuses to load such a pickle without an opt-in.

``load_context`` reads the artifact ``model`` (the rank folder ``models/<rank>``: one
``seed<k>/`` per seed, each ``model.pt`` read with ``torch.load(weights_only=True)``,
``scaler.json`` and ``config.json``) through ``orchestrator.models.predict.load_model``, and
``predict`` is ``orchestrator.models.predict.predict_bars``: the same forecasts, bar for bar, as
``python -m orchestrator.predict --model models/<rank>``.

Input: bars with a ``timestamp`` column (a signature carries no index) and the columns the
model was trained on (open, high, low, close, volume, ...), checked as any bars are
(docs/data.md). Output: ``timestamp``, ``target_timestamp`` and ``predicted_<target>`` (with
``predicted_<target>_std``, the spread over seeds), or ``p_down, p_flat, p_up, predicted``.

The environment that loads it needs this project installed (``pip install -e .`` of the
same version): this file imports it. docs/promotion.md, "Serving".
"""

from __future__ import annotations

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel


class BarForecaster(PythonModel):
    """Forecasts for every bar that ends a full window (the seeds' mean)."""

    def load_context(self, context) -> None:
        from orchestrator.models.predict import load_model  # the project: installed where it serves

        self.runs = load_model(context.artifacts["model"])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        from orchestrator.models.predict import predict_bars
        from trainables.bars.files import bars_from_frame

        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        bars = bars_from_frame(frame, "the model input")
        return predict_bars(self.runs, bars).reset_index()


mlflow.models.set_model(BarForecaster())
