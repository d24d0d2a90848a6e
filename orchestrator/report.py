"""``results/<name>/report.html`` (one self-contained file, plots inline) and ``report.md``.

    python -m orchestrator.report --name <sweep> [--results-dir results]

Reads only what a sweep and a promotion wrote (sweep.json, leaderboard.parquet,
fold_audit.csv, promoted.json, models/); without a promotion the test-part sections are
left out. The same comparison table is what ``python -m orchestrator.promote`` prints.
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import json
import re
import sys
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
from matplotlib.figure import Figure  # no pyplot: no global figures, no GUI backend
from matplotlib.ticker import MaxNLocator

from orchestrator.holdout import read_sweep
from orchestrator.spaces import load_space, to_optuna
from trainables.errors import OrchestratorError
from trainables.metrics import CLASS_NAMES

__all__ = ["comparison_table", "main", "param_importances", "summary_lines", "write_report"]

MIN_TRIALS_FOR_IMPORTANCE = 3

_CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}
table{border-collapse:collapse;font-size:13px;margin:.5em 0}
td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}
th{background:#f2f2f2}.bad{color:#b00;font-weight:bold}.good{color:#070}
img{max-width:100%;border:1px solid #eee}h2{border-bottom:1px solid #ddd;margin-top:1.6em}"""


def _metric_cols(task: str) -> list[str]:
    if task == "classification":
        return ["accuracy", "macro_f1", "f1_down", "f1_flat", "f1_up"]
    return ["mse", "mae", "r2", "directional_accuracy", "skill"]


def comparison_table(index: dict) -> pd.DataFrame:
    """Every promoted model (mean ± std over seeds, seed ensemble), the top-k ensemble and
    the baselines, on the same test rows."""
    cols = _metric_cols(index["task"])

    def fmt(metrics: dict, std: dict | None = None) -> dict:
        out = {}
        for c in cols:
            if c in metrics:
                out[c] = f"{metrics[c]:.5g}" + (f" ± {std[c]:.2g}" if std else "")
        return out

    rows = []
    for m in index["models"]:
        if "test_mean" not in m:
            rows.append(
                {"model": f"rank {m['rank']} ({m['trial_id']})", cols[0]: "all seeds failed"}
            )
            continue
        n = sum("test" in s for s in m["seeds"])
        name = f"rank {m['rank']} ({m['trial_id']})"
        rows.append({"model": f"{name}, {n} seeds", **fmt(m["test_mean"], m["test_std"])})
        rows.append({"model": f"{name}, seed ensemble", **fmt(m["ensemble_test"])})
    if "ensemble" in index:
        rows.append({"model": "top-k ensemble", **fmt(index["ensemble"]["test"])})
    for name, metrics in index["baselines"].items():
        rows.append({"model": f"baseline: {name}", **fmt(metrics)})
    return pd.DataFrame(rows).fillna("")


def summary_lines(index: dict) -> list[str]:
    """The console summary of a promotion: the table, then the verdicts in plain words."""
    lines = [
        f"Test part: {index['data']['n_test']:,} samples "
        f"({index['data']['test_first_time']} .. {index['data']['test_last_time']}), "
        "never seen by the sweep or by training:",
        comparison_table(index).to_string(index=False),
    ]
    lines += [m["verdict"] for m in index["models"] if "verdict" in m]
    if "ensemble" in index:
        lines.append(index["ensemble"]["verdict"])
    lines.append(f"Chosen: {index['chosen']['path']} ({index['chosen']['kind']})")
    return lines


# ---------------------------------------------------------------------- plots


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


def _history_plot(board: pd.DataFrame, tune_dir: Path, objective: str, mode: str) -> str:
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


def param_importances(board: pd.DataFrame, space_name: str, mode: str) -> dict[str, float]:
    """Optuna's fANOVA parameter importances (summing to 1) on a study rebuilt from the
    leaderboard's completed trials with the search space's distributions."""
    dists = to_optuna(load_space(space_name))
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "new study created" line
    try:
        study = optuna.create_study(direction="minimize" if mode == "min" else "maximize")
    finally:
        optuna.logging.set_verbosity(verbosity)
    for _, row in board[board["status"] == "completed"].iterrows():
        params = {}
        for name, dist in dists.items():
            value = row.get(f"param_{name}")
            if value is None or (isinstance(value, float) and np.isnan(value)):
                continue
            value = value.item() if isinstance(value, np.generic) else value
            if isinstance(dist, optuna.distributions.IntDistribution):
                value = int(value)
            elif isinstance(dist, optuna.distributions.FloatDistribution):
                value = float(value)
            params[name] = value
        used = {k: dists[k] for k in params}
        study.add_trial(
            optuna.trial.create_trial(params=params, distributions=used, value=row["objective"])
        )
    done = len(study.trials)
    if done < MIN_TRIALS_FOR_IMPORTANCE:
        raise ValueError(
            f"importances need at least {MIN_TRIALS_FOR_IMPORTANCE} completed trials, "
            f"the sweep has {done}"
        )
    # fANOVA (a seeded random forest) copes with the few dozen trials a sweep has; Optuna's
    # default PED-ANOVA needs many more before its top quantile holds more than one trial.
    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
    return optuna.importance.get_param_importances(study, evaluator=evaluator)


def _importance_plot(importances: dict[str, float]) -> str:
    names = list(importances)[::-1]
    fig = Figure(figsize=(7, 0.35 * len(names) + 1))
    ax = fig.subplots()
    ax.barh(names, [importances[n] for n in names], color="tab:blue")
    ax.set(xlabel="importance (fANOVA, sums to 1)", title="Parameter importances")
    return _png(fig)


def _folds_plot(board: pd.DataFrame, objective: str, top: int = 5) -> str:
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


def _loss_plot(out_dir: Path, index: dict) -> str:
    models = [m for m in index["models"] if "test_mean" in m]
    fig = Figure(figsize=(4.2 * len(models), 3.2))
    axes = fig.subplots(1, len(models), squeeze=False)
    for ax, m in zip(axes[0], models, strict=True):
        for s in m["seeds"]:
            if "path" not in s:
                continue
            tm = json.loads((out_dir / s["path"] / "training_metrics.json").read_text())
            line = ax.plot(tm["train_losses"], label=f"seed {s['seed']} train")[0]
            ax.plot(
                tm["val_losses"], "--", color=line.get_color(), label=f"seed {s['seed']} early-stop"
            )
        ax.set(title=f"rank {m['rank']} ({m['trial_id']})", xlabel="epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("loss (scaled units)")
    fig.tight_layout()
    return _png(fig)


def _prediction_plot(out_dir: Path, index: dict) -> str:
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


# ---------------------------------------------------------------------- assembling


def _table_html(frame: pd.DataFrame) -> str:
    return frame.to_html(index=False, border=0, na_rep="", float_format=lambda v: f"{v:.5g}")


def _table_md(frame: pd.DataFrame) -> str:
    """A GitHub-style markdown table (pandas' to_markdown needs an extra package)."""

    def cell(v) -> str:
        if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)):
            return ""
        if isinstance(v, float):
            return f"{v:.5g}"
        return str(v).replace("|", "/")

    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    lines += [
        "| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)
    ]
    return "\n".join(lines)


def _verdict_html(text: str) -> str:
    cls = "bad" if "NOT" in text else "good"
    return f'<li class="{cls}">{html.escape(text)}</li>'


def _sections(out_dir: Path) -> tuple[dict, list[tuple[str, str, str]]]:
    """(facts, [(title, html body, markdown body)]) of everything there is to show."""
    sweep = read_sweep(out_dir)
    board = pd.read_parquet(out_dir / "leaderboard.parquet")
    promoted_path = out_dir / "promoted.json"
    index = json.loads(promoted_path.read_text()) if promoted_path.is_file() else None
    objective, mode = sweep.get("objective", "objective"), sweep.get("mode", "min")
    out: list[tuple[str, str, str]] = []

    def image(b64: str, alt: str) -> str:
        return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{b64}">'

    def guarded(title: str, make) -> None:
        # A plot that cannot be drawn (too few trials, say) is a note, not a failed report.
        try:
            out.append((title, image(make(), title), "(plot in report.html)"))
        except (ValueError, RuntimeError, KeyError, IndexError, OSError) as err:
            note = f"not available: {err}"
            out.append((title, f"<p>{html.escape(note)}</p>", note))

    if index is not None:
        verdicts = [m["verdict"] for m in index["models"] if "verdict" in m]
        verdicts += [index["ensemble"]["verdict"]] if "ensemble" in index else []
        table = comparison_table(index)
        guard = index["holdout_guard"]
        intro = (
            f"Test part: {index['data']['n_test']:,} samples from "
            f"{index['data']['test_first_time']} to {index['data']['test_last_time']}; training "
            f"read rows 0..{guard['max_training_row']} only (test starts at row "
            f"{guard['test_first_row']}). Chosen model: {index['chosen']['path']} "
            f"({index['chosen']['kind']}, picked by CV rank, not by test scores)."
        )
        body = f"<p>{html.escape(intro)}</p><ul>{''.join(map(_verdict_html, verdicts))}</ul>"
        md = intro + "\n\n" + "\n".join(f"- {v}" for v in verdicts)
        out.append(("Verdict", body, md))
        out.append(("Test part: models against baselines", _table_html(table), _table_md(table)))
        guarded("Test predictions against actuals", lambda: _prediction_plot(out_dir, index))
        guarded("Loss curves of the promoted models", lambda: _loss_plot(out_dir, index))
    guarded("Optimization history", lambda: _history_plot(board, out_dir / "tune", objective, mode))
    guarded(
        "Parameter importances",
        lambda: _importance_plot(param_importances(board, sweep["space"], mode)),
    )
    guarded("Per-fold objective of the top trials", lambda: _folds_plot(board, objective))
    keep = ["rank", "trial_id", "status", "objective", "objective_std", "seconds"]
    top = board[keep + [c for c in board.columns if c.startswith("param_")]].head(10)
    top = top.rename(columns=lambda c: c.removeprefix("param_"))
    out.append(("Leaderboard (top 10)", _table_html(top), _table_md(top)))
    audit_path = out_dir / "fold_audit.csv"
    if audit_path.is_file():
        audit = pd.read_csv(audit_path)
        out.append(
            (
                "Fold audit: rows purged and embargoed per CV fold",
                _table_html(audit),
                _table_md(audit),
            )
        )
    if index is not None:
        final = pd.DataFrame(index["audit"])
        out.append(("Promotion split audit", _table_html(final), _table_md(final)))
    facts = {"sweep": sweep, "index": index, "objective": objective, "mode": mode, "board": board}
    return facts, out


def write_report(out_dir: Path) -> tuple[Path, Path]:
    """Write report.html and report.md into ``out_dir``; returns their paths."""
    out_dir = Path(out_dir)
    facts, sections = _sections(out_dir)
    sweep, board = facts["sweep"], facts["board"]
    counts = ", ".join(f"{v} {k}" for k, v in sorted(board["status"].value_counts().items()))
    head = (
        f"Sweep {sweep.get('name')!r}: space {sweep.get('space')}, {sweep.get('cv')} CV with "
        f"{sweep.get('folds')} folds, objective {facts['objective']} ({facts['mode']}); "
        f"trials: {counts}. {sweep.get('data_summary', '')}"
    )
    title = f"LSTM sweep report: {sweep.get('name')}"
    body = "".join(f"<h2>{html.escape(t)}</h2>{b}" for t, b, _ in sections)
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>"
        f"<p>{html.escape(head)}</p>{body}</body></html>"
    )
    html_path, md_path = out_dir / "report.html", out_dir / "report.md"
    html_path.write_text(page)
    md = "\n\n".join([f"# {title}", head, *(f"## {t}\n\n{m}" for t, _, m in sections)])
    md_path.write_text(md + "\n")
    return html_path, md_path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m orchestrator.report", description=__doc__.split("\n")[0]
    )
    p.add_argument("--name", required=True)
    p.add_argument("--results-dir", default="results")
    args = p.parse_args(argv)
    try:
        html_path, md_path = write_report(Path(args.results_dir) / args.name)
    except OrchestratorError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"Report: {html_path} ({md_path.name})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
