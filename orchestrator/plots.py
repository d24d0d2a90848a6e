"""The report's plots: each function returns one inline PNG (base64), drawn without pyplot.

A plot that cannot be drawn raises ValueError / KeyError / OSError...; the report turns that
into a note instead of failing.
"""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure  # no pyplot: no global figures, no GUI backend
from matplotlib.ticker import MaxNLocator

from trainables.metrics import CLASS_NAMES

__all__ = [
    "equity_plot",
    "folds_plot",
    "history_plot",
    "importance_plot",
    "loss_plot",
    "prediction_plot",
]


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _trial_order(tune_dir: Path, ids: list[str]) -> list[str]:
    """Trials in the order Tune started them (its folder names carry the counter)."""
    order = {}
    if tune_dir.is_dir():
        for d in tune_dir.iterdir():
            m = re.match(r".*?_([0-9a-f]{8})_(\d+)_", d.name)
            if m:
                order[m.group(1)] = int(m.group(2))
    return sorted(ids, key=lambda t: order.get(t, len(order) + ids.index(t)))


def history_plot(board: pd.DataFrame, tune_dir: Path, objective: str, mode: str) -> str:
    done = board[board["objective"].notna()]
    ids = _trial_order(tune_dir, list(done["trial_id"]))
    values = done.set_index("trial_id").loc[ids, "objective"].to_numpy()
    status = done.set_index("trial_id").loc[ids, "status"].to_numpy()
    best = np.minimum.accumulate(values) if mode == "min" else np.maximum.accumulate(values)
    fig = Figure(figsize=(8, 3.2))
    ax = fig.subplots()
    x = np.arange(1, len(values) + 1)
    for s, colour in (("completed", "tab:blue"), ("pruned", "tab:gray")):
        sel = status == s
        ax.scatter(x[sel], values[sel], s=18, color=colour, label=f"{s} (mean of folds run)")
    ax.step(x, best, where="post", color="tab:red", label="best so far")
    ax.set(xlabel="trial (start order)", ylabel=objective, title="Optimization history")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize=8)
    return _png(fig)


def importance_plot(importances: dict[str, float]) -> str:
    names = list(importances)[::-1]
    fig = Figure(figsize=(7, 0.35 * len(names) + 1))
    ax = fig.subplots()
    ax.barh(names, [importances[n] for n in names], color="tab:blue")
    ax.set(xlabel="importance (fANOVA, sums to 1)", title="Parameter importances")
    return _png(fig)


def folds_plot(board: pd.DataFrame, objective: str, top: int = 5) -> str:
    cols = sorted(
        (c for c in board.columns if re.fullmatch(rf"fold\d+_{objective}", c)),
        key=lambda c: int(c[4:].split("_")[0]),
    )
    fig = Figure(figsize=(8, 3.2))
    ax = fig.subplots()
    for _, row in board[board["rank"].notna()].head(top).iterrows():
        ax.plot(
            range(len(cols)),
            row[cols].to_numpy(float),
            marker="o",
            label=f"rank {row['rank']} {row['trial_id']}",
        )
    ax.set(xlabel="fold", ylabel=objective, title=f"Per-fold {objective} of the top trials")
    ax.set_xticks(range(len(cols)))
    ax.legend(fontsize=8)
    return _png(fig)


def loss_plot(out_dir: Path, index: dict) -> str:
    """Per promoted config: each seed's early-stopping run (train and validation losses) and
    its refit on train+validation (train loss, up to the best epoch)."""
    models = [m for m in index["models"] if "test_mean" in m]
    fig = Figure(figsize=(4.2 * len(models), 3.2))
    axes = fig.subplots(1, len(models), squeeze=False)
    for ax, m in zip(axes[0], models, strict=True):
        for s in m["seeds"]:
            if "path" not in s:
                continue
            tm = json.loads((out_dir / s["path"] / "training_metrics.json").read_text())
            early = tm.get("early_stopping_run", tm)
            epochs = np.arange(1, len(early["train_losses"]) + 1)
            line = ax.plot(epochs, early["train_losses"], label=f"seed {s['seed']} train")[0]
            colour = line.get_color()
            ax.plot(epochs, early["val_losses"], "--", color=colour, label="validation")
            if "refit" in tm:
                refit = np.arange(1, len(tm["train_losses"]) + 1)
                ax.plot(
                    refit,
                    tm["train_losses"],
                    ":",
                    color=colour,
                    label="refit on train+val (own scaling)",
                )
        ax.set(title=f"rank {m['rank']} ({m['trial_id']})", xlabel="epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("loss (scaled units)")
    fig.tight_layout()
    return _png(fig)


def equity_plot(out_dir: Path, index: dict) -> str:
    """Equity curves of the trading view: the chosen model, buy-and-hold, the best baseline."""
    trading = index.get("trading", {})
    if not trading.get("computed"):
        raise ValueError(trading.get("note", "no trading view"))
    frame = pd.read_parquet(out_dir / "trading.parquet")
    t = pd.to_datetime(frame["timestamp"])
    fig = Figure(figsize=(9, 3.4))
    ax = fig.subplots()
    for column, label, colour in (
        ("net_model", "chosen model", "tab:red"),
        ("net_buy_and_hold", "buy-and-hold", "k"),
        ("net_baseline", f"the same rule on {trading['best_baseline']['name']}", "tab:blue"),
    ):
        ax.plot(t, np.cumprod(1.0 + frame[column].to_numpy()), color=colour, lw=1, label=label)
    ax.axhline(1.0, color="gray", lw=0.5)
    ax.set(
        ylabel="equity (start = 1)",
        title=f"Test part, net of {trading['cost_bps']:g} bp per unit of turnover",
    )
    ax.tick_params(axis="x", labelrotation=30, labelsize=7)
    ax.legend(fontsize=8)
    return _png(fig)


def prediction_plot(out_dir: Path, index: dict) -> str:
    chosen = index["chosen"]
    frame = pd.read_parquet(out_dir / chosen["path"] / "predictions.parquet")
    if index["task"] == "classification":
        cm = np.asarray(chosen["test"]["confusion_matrix"])
        fig = Figure(figsize=(4, 3.5))
        ax = fig.subplots()
        ax.imshow(cm, cmap="Blues")
        for (i, j), v in np.ndenumerate(cm):
            ax.text(j, i, str(v), ha="center", va="center")
        ax.set(xticks=range(3), yticks=range(3), xlabel="predicted", ylabel="actual")
        ax.set_xticklabels(CLASS_NAMES)
        ax.set_yticklabels(CLASS_NAMES)
        ax.set_title("Test confusion matrix (chosen model)")
        return _png(fig)
    name = next(c for c in frame.columns if c.startswith("actual_")).removeprefix("actual_")
    actual, pred = frame[f"actual_{name}"].to_numpy(), frame[f"predicted_{name}"].to_numpy()
    h = int(index["data"]["horizon"])
    now = np.r_[np.full(h, np.nan), actual[:-h]]  # the value at the anchor (persistence)
    fig = Figure(figsize=(11, 3.4))
    a, b = fig.subplots(1, 2, gridspec_kw={"width_ratios": [2.2, 1]})
    t = pd.to_datetime(frame["timestamp"])
    a.plot(t, actual, color="k", lw=1, label="actual")
    a.plot(t, pred, color="tab:red", lw=1, label="predicted (chosen model)")
    a.set(title=f"Test part: {name} {h} bar(s) ahead", ylabel=name)
    a.legend(fontsize=8)
    a.tick_params(axis="x", labelrotation=30, labelsize=7)
    ok = ~np.isnan(now)
    b.scatter(actual[ok] - now[ok], pred[ok] - now[ok], s=6, alpha=0.6)
    b.axhline(0, color="gray", lw=0.5)
    b.axvline(0, color="gray", lw=0.5)
    b.set(xlabel="actual change", ylabel="predicted change", title="Change vs persistence")
    return _png(fig)
