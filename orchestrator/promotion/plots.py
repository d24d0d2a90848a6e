"""The report's plots: each function returns one matplotlib Figure (no pyplot); ``png``
turns it into the report's inline PNG (base64).

Legends sit outside the axes (right of them, or below a row of axes), so they never cover
a curve; tests/promotion/test_report.py checks every figure for it. A plot that cannot be drawn
raises ValueError / KeyError / OSError...; the report turns that into a note instead.
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
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from trainables.training.metrics import CLASS_NAMES

__all__ = [
    "equity_plot",
    "folds_plot",
    "history_caption",
    "history_plot",
    "importance_plot",
    "loss_plot",
    "png",
    "prediction_plot",
]


def png(fig: Figure) -> str:
    """The figure as a base64 PNG, cropped to what is drawn (legends outside included)."""
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


def _outside(ax, **kw) -> None:
    """The axes' legend to the right of them: it never covers what they show."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, **kw)


def _history_parts(board: pd.DataFrame, tune_dir: Path | None) -> pd.DataFrame:
    """The sweep's trials (never the baselines' rows) in start order, numbered from 1."""
    trials = board[board["status"] != "baseline"]
    ids = list(trials["trial_id"])
    if tune_dir is not None:
        ids = _trial_order(tune_dir, ids)
    out = trials.set_index("trial_id").loc[ids, ["status", "objective", "folds_done"]]
    return out.reset_index().assign(number=np.arange(1, len(ids) + 1))


def history_caption(board: pd.DataFrame, objective: str) -> str:
    """What the history plot shows, in the Optuna study's terms (states COMPLETE / PRUNED /
    FAIL are the leaderboard's completed / pruned / failed)."""
    parts = _history_parts(board, None)
    complete = parts[parts["status"] == "completed"]
    pruned = parts[parts["status"] == "pruned"]
    scored = pruned[pruned["objective"].notna()]
    text = (
        f"All {len(parts)} trials in the order they started. Blue: the {len(complete)} "
        f"complete trials (Optuna state COMPLETE), at their {objective} over every fold; red: "
        f"the best so far among them. Grey: the {len(pruned)} pruned trials (state PRUNED): "
        f"{len(scored)} at the {objective} of the folds they finished (fewer folds, so not "
        f"comparable with the blue points), {len(pruned) - len(scored)} stopped inside their "
        "first fold with no score, marked at the bottom."
    )
    failed = int((parts["status"] == "failed").sum())
    other = len(parts) - len(complete) - len(pruned) - failed
    if failed:
        text += f" Red crosses at the bottom: {failed} failed trials (state FAIL)."
    if other:
        text += f" {other} interrupted trial(s) are not drawn."
    return text


def history_plot(board: pd.DataFrame, tune_dir: Path, objective: str, mode: str) -> Figure:
    parts = _history_parts(board, tune_dir)
    if parts.empty:
        raise ValueError("no trial finished")
    fig = Figure(figsize=(9, 3.4))
    ax = fig.subplots()
    bottom = ax.get_xaxis_transform()  # x in data units, y in axes units (0 = the bottom)
    complete = parts[parts["status"] == "completed"]
    pruned = parts[parts["status"] == "pruned"]
    scored = pruned[pruned["objective"].notna()]
    unscored = pruned[pruned["objective"].isna()]
    failed = parts[parts["status"] == "failed"]
    ax.scatter(
        scored["number"],
        scored["objective"],
        s=16,
        facecolors="none",
        edgecolors="tab:gray",
        label=f"pruned, {objective} of the folds run ({len(scored)})",
    )
    ax.scatter(
        unscored["number"],
        np.full(len(unscored), 0.02),
        s=30,
        marker="|",
        color="tab:gray",
        transform=bottom,
        label=f"pruned inside fold 1, no score ({len(unscored)})",
    )
    if len(failed):
        ax.scatter(
            failed["number"],
            np.full(len(failed), 0.02),
            s=25,
            marker="x",
            color="tab:red",
            transform=bottom,
            label=f"failed ({len(failed)})",
        )
    ax.scatter(
        complete["number"],
        complete["objective"],
        s=22,
        color="tab:blue",
        zorder=3,
        label=f"complete: {objective} over every fold ({len(complete)})",
    )
    if len(complete):
        values = complete["objective"].to_numpy()
        best = np.minimum.accumulate(values) if mode == "min" else np.maximum.accumulate(values)
        ax.step(
            np.r_[complete["number"], parts["number"].max()],
            np.r_[best, best[-1]],
            where="post",
            color="tab:red",
            label="best complete trial so far",
        )
    ax.set(
        xlabel="trial (start order)",
        ylabel=objective,
        title=f"Optimization history: {len(complete)} complete of {len(parts)} trials",
    )
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    _outside(ax, fontsize=8)
    return fig


def importance_plot(importances: dict[str, float]) -> Figure:
    names = list(importances)[::-1]
    fig = Figure(figsize=(7, 0.35 * len(names) + 1))
    ax = fig.subplots()
    ax.barh(names, [importances[n] for n in names], color="tab:blue")
    ax.set(xlabel="importance (fANOVA, sums to 1)", title="Parameter importances")
    return fig


def folds_plot(board: pd.DataFrame, objective: str, top: int = 5) -> Figure:
    cols = sorted(
        (c for c in board.columns if re.fullmatch(rf"fold\d+_{objective}", c)),
        key=lambda c: int(c[4:].split("_")[0]),
    )
    fig = Figure(figsize=(9, 3.2))
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
    _outside(ax, fontsize=8)
    return fig


def loss_plot(out_dir: Path, index: dict) -> Figure:
    """Per promoted config: each seed's early-stopping run (train and validation losses) and
    its refit on train+validation (train loss, up to the best epoch). Colour: the seed; line
    style: which curve (one legend below the row of plots)."""
    models = [m for m in index["models"] if "test_mean" in m]
    fig = Figure(figsize=(4.2 * len(models) + 1, 3.6), layout="constrained")
    axes = fig.subplots(1, len(models), squeeze=False)
    colours: dict[int, str] = {}
    for ax, m in zip(axes[0], models, strict=True):
        for s in m["seeds"]:
            if "path" not in s:
                continue
            colour = colours.setdefault(s["seed"], f"C{len(colours)}")
            tm = json.loads((out_dir / s["path"] / "training_metrics.json").read_text())
            early = tm.get("early_stopping_run", tm)
            epochs = np.arange(1, len(early["train_losses"]) + 1)
            ax.plot(epochs, early["train_losses"], color=colour)
            ax.plot(epochs, early["val_losses"], "--", color=colour)
            if "refit" in tm:
                refit = np.arange(1, len(tm["train_losses"]) + 1)
                ax.plot(refit, tm["train_losses"], ":", color=colour)
        ax.set(title=f"rank {m['rank']} ({m['trial_id']})", xlabel="epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0][0].set_ylabel("loss (scaled units)")
    handles = [Line2D([], [], color=c, label=f"seed {seed}") for seed, c in colours.items()]
    handles += [
        Line2D([], [], color="k", ls="-", label="train (early-stopping run)"),
        Line2D([], [], color="k", ls="--", label="validation (early-stopping run)"),
        Line2D([], [], color="k", ls=":", label="refit on train+validation (own scaling)"),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 4), fontsize=8)
    return fig


def equity_plot(out_dir: Path, index: dict) -> Figure:
    """Equity curves of the trading view: the chosen model, buy-and-hold, the best baseline."""
    trading = index.get("trading", {})
    if not trading.get("computed"):
        raise ValueError(trading.get("note", "no trading view"))
    frame = pd.read_parquet(out_dir / "trading.parquet")
    t = pd.to_datetime(frame["timestamp"])
    fig = Figure(figsize=(10, 3.4))
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
    _outside(ax, fontsize=8)
    return fig


def prediction_plot(out_dir: Path, index: dict) -> Figure:
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
        return fig
    name = next(c for c in frame.columns if c.startswith("actual_")).removeprefix("actual_")
    actual, pred = frame[f"actual_{name}"].to_numpy(), frame[f"predicted_{name}"].to_numpy()
    h = int(index["data"]["horizon"])
    now = np.r_[np.full(h, np.nan), actual[:-h]]  # the value at the anchor (persistence)
    fig = Figure(figsize=(12, 3.8), layout="constrained")
    a, b = fig.subplots(1, 2, width_ratios=[2.2, 1])
    t = pd.to_datetime(frame["timestamp"])
    a.plot(t, actual, color="k", lw=1, label="actual")
    a.plot(t, pred, color="tab:red", lw=1, label="predicted (chosen model)")
    a.set(title=f"Test part: {name} {h} bar(s) ahead", ylabel=name)
    a.tick_params(axis="x", labelrotation=30, labelsize=7)
    fig.legend(loc="outside lower center", ncol=2, fontsize=8)
    ok = ~np.isnan(now)
    b.scatter(actual[ok] - now[ok], pred[ok] - now[ok], s=6, alpha=0.6)
    b.axhline(0, color="gray", lw=0.5)
    b.axvline(0, color="gray", lw=0.5)
    b.set(xlabel="actual change", ylabel="predicted change", title="Change vs persistence")
    return fig
