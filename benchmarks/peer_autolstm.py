"""Per-trial cost and test score: our `daily` space against neuralforecast's AutoLSTM.

    pip install -e ".[bench]"                 # neuralforecast, for this script only
    python benchmarks/peer_autolstm.py        # 8 trials each on 2,000 daily bars
    python benchmarks/peer_autolstm.py --trials 4 --bars 1000

One run, the two tools back to back on the same series: ``trainables.bars.synthetic.make_bars(
bars, freq="1D")``, its last 15% the test part (the sweep's own holdout, cut for the
space's longest window), the next close the target.

* **ours**: ``python -m orchestrator.tune --data bars.parquet --space daily --trials N``
  (its defaults: 5 purged walk-forward folds, ASHA and the fold race, trials at once as the
  cores allow). Its best config is then trained once on the train part, early-stopped on
  the validation part, and predicts every test bar one step ahead.
* **peer**: ``AutoLSTM(h=1, loss=MSE(), num_samples=N)`` with its default space and its ray
  backend, tuned on the rows before the test part (its validation: the same number of bars
  as our validation part), then ``cross_validation(refit=False, step_size=1)`` predicts
  every test bar one step ahead from the actual history, as ours does.

Printed: each tool's wall time, per trial (wall / trials), and the test ``mse_ratio``
(MSE over persistence's MSE on the same test bars; below 1 beats it), then ours/peer per
trial. Goal (issue #23): <= 1.0x, aim 0.5x, at a test score no worse than the peer's.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from trainables.bars.synthetic import make_bars  # noqa: E402
from trainables.parameters.train_config import TrainConfig  # noqa: E402
from trainables.prep.dataset import prepare_fold_for  # noqa: E402
from trainables.prep.model_table import build_table, holdout_split  # noqa: E402

LONGEST = 30  # the daily space's longest window: the sweep cuts its holdout with it


def ours(path: Path, trials: int, tmp: Path) -> tuple[float, dict]:
    """(wall seconds of the sweep command, the best trial's config)."""
    cmd = [sys.executable, "-m", "orchestrator.tune", "--data", str(path), "--space", "daily"]
    cmd += ["--trials", str(trials), "--name", "daily", "--results-dir", str(tmp)]
    cmd += ["--no-dashboard"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CUDA_VISIBLE_DEVICES": ""}
    start = time.time()
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.time() - start
    if done.returncode != 0:
        raise SystemExit(f"our sweep failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    print("\n".join(done.stdout.splitlines()[-12:]))
    return wall, yaml.safe_load((tmp / "daily" / "best_config.yaml").read_text())


def our_test(bars: pd.DataFrame, best: dict) -> pd.Series:
    """The best config trained on the train part, early-stopped on validation: its
    one-step forecasts of the test bars' close, by target timestamp."""
    from trainables.training.trainer import fit

    cfg = TrainConfig.from_dict(best)
    features, targets = build_table(bars, cfg)
    split = holdout_split(len(features), cfg, sequence_length=LONGEST)
    fold = prepare_fold_for(cfg, features, targets, split.train, split.val, split.test)
    result = fit(cfg, fold, log=None)
    when = features.index[split.test + cfg.horizon]
    pred = pd.Series(result.predictions[:, 0], index=when)
    if cfg.target_col == "close":
        return pred
    if cfg.target_col == "log_return" and cfg.horizon == 1:
        # #19's default target: the next bar's log return; its close forecast is the last
        # close moved by it (the peer forecasts the close itself)
        return bars.close.shift(1).reindex(when) * np.exp(pred)
    raise SystemExit(f"a close forecast from target {cfg.target_col!r} is not defined here")


def peer(bars: pd.DataFrame, trials: int, test_start: pd.Timestamp, val_size: int):
    """(wall seconds of tuning and forecasting, one-step forecasts of the test bars)."""
    from neuralforecast import NeuralForecast
    from neuralforecast.auto import AutoLSTM
    from neuralforecast.losses.pytorch import MSE

    for name in ("lightning", "pytorch_lightning", "ray", "neuralforecast"):
        logging.getLogger(name).setLevel(logging.ERROR)
    # the peer's own libraries' warnings only (their progress and deprecation noise); ours stay
    warnings.filterwarnings("ignore", module=r"(lightning|pytorch_lightning|neuralforecast|ray)\b")
    df = pd.DataFrame({"unique_id": "bars", "ds": bars.index.tz_localize(None), "y": bars.close})
    n_test = int((df.ds >= test_start.tz_localize(None)).sum())
    start = time.time()
    model = AutoLSTM(h=1, loss=MSE(), num_samples=trials, backend="ray", verbose=False)
    nf = NeuralForecast(models=[model], freq="D")
    cv = nf.cross_validation(
        df, n_windows=None, test_size=n_test, step_size=1, val_size=val_size, refit=False
    )
    wall = time.time() - start
    return wall, pd.Series(cv["AutoLSTM"].to_numpy(), index=pd.DatetimeIndex(cv.ds))


def mse_ratio(pred: pd.Series, bars: pd.DataFrame) -> float:
    """MSE of the forecasts of close over persistence's (the previous close), same bars."""
    close = bars.close.copy()
    close.index = close.index.tz_localize(None)
    pred.index = pred.index.tz_localize(None) if pred.index.tz is not None else pred.index
    prev = close.shift(1)
    when = pred.index.intersection(close.index)
    err = np.mean((pred.loc[when] - close.loc[when]) ** 2)
    naive = np.mean((prev.loc[when] - close.loc[when]) ** 2)
    return float(err / naive)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--trials", type=int, default=8)
    p.add_argument("--bars", type=int, default=2000)
    args = p.parse_args()
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    bars = make_bars(args.bars, freq="1D")
    cfg = TrainConfig()
    features, _ = build_table(bars, cfg)
    split = holdout_split(len(features), cfg, sequence_length=LONGEST)
    test_start = features.index[split.test[0] + cfg.horizon]
    print(
        f"load {load}; {args.bars:,} daily bars, {args.trials} trials each; test from {test_start}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bars.parquet"
        bars.to_parquet(path)
        our_wall, best = ours(path, args.trials, Path(tmp))
    our_ratio = mse_ratio(our_test(bars, best), bars)
    peer_wall, peer_pred = peer(bars, args.trials, test_start, val_size=len(split.val))
    peer_ratio = mse_ratio(peer_pred, bars)
    n = args.trials
    print(f"\n{'':8}{'wall s':>9}{'per trial s':>13}{'test mse_ratio':>16}")
    print(f"{'ours':8}{our_wall:9.1f}{our_wall / n:13.1f}{our_ratio:16.4f}")
    print(f"{'peer':8}{peer_wall:9.1f}{peer_wall / n:13.1f}{peer_ratio:16.4f}")
    ratio = our_wall / peer_wall
    verdict = "met" if ratio <= 1.0 else "NOT met"
    print(
        f"ours/peer per trial: {ratio:.2f}x (goal <= 1.0x, aim 0.5x: {verdict}); "
        f"test mse_ratio ours {our_ratio:.4f} vs peer {peer_ratio:.4f}"
    )
    print(
        "best config (ours):",
        json.dumps(
            {
                k: best[k]
                for k in sorted(best)
                if k
                in (
                    "hidden_size",
                    "num_layers",
                    "sequence_length",
                    "batch_size",
                    "learning_rate",
                    "epochs",
                    "patience",
                    "scheduler",
                )
            }
        ),
    )
    print(f"load {' '.join(Path('/proc/loadavg').read_text().split()[:3])}")


if __name__ == "__main__":
    main()
