"""The model and its fit: the network, the one training loop, inference, metrics.

Entry points: ``trainer.fit`` (-> ``FitResult``), ``network.SequenceModel``,
``inference.predict_scaled`` / ``evaluate``, ``metrics`` (scores in original units,
``naive_scores``, ``pooled_ratio``), ``fast_paths.use_fast_paths`` (the CPU speed-ups that
use torch internals, fenced here), ``gpu_probe``, ``devices``. Reads no bars itself: it
trains on the folds ``trainables.prep`` builds.
"""
