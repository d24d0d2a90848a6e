"""A promoted model afterwards: registered in MLflow, loaded back, predicting new bars.

Entry points: ``predict.load_model`` / ``predict.predict_bars`` / ``predict.main``
(``python -m orchestrator.predict``), ``registry`` (the promoted model's run, its registered
version, tags and alias), ``pyfunc_model`` (the MLflow pyfunc model, logged from code),
``universe_registry`` and ``universe_predict`` (the same for a universe's tickers).
"""
