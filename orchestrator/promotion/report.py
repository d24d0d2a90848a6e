"""``results/<name>/report.html`` (one self-contained file, plots inline) and ``report.md``.

    python -m orchestrator.report --name <sweep> [--results-dir results]

Reads only what a sweep and a promotion wrote (sweep.json, leaderboard.parquet,
fold_audit.csv, promoted.json, models/); without a promotion the test-part sections are
left out. The same comparison table is what ``python -m orchestrator.promote`` prints.
"""

from __future__ import annotations

import html
import json
import sys
from pathlib import Path

import numpy as np
import optuna
import pandas as pd

from orchestrator.promotion import plots
from orchestrator.promotion.holdout import read_sweep
from orchestrator.promotion.report_layout import CSS, audit_view, table_html, table_md
from orchestrator.records.leaderboard import BASELINE, trial_rows
from orchestrator.records.names import check_existing_name
from orchestrator.stats.trading import summary_line as trading_line
from orchestrator.stats.verdicts import INTERVAL, fmt_p
from orchestrator.sweep.spaces import load_space, to_optuna
from trainables.cli import ArgumentParser
from trainables.errors import ConfigError, UserError

__all__ = [
    "comparison_table",
    "main",
    "optimism_lines",
    "param_importances",
    "summary_lines",
    "tests_table",
    "write_report",
]

MIN_TRIALS_FOR_IMPORTANCE = 3


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


def _num(v, spec: str) -> str:
    return "" if v is None or not np.isfinite(v) else format(v, spec)


def tests_table(comparisons: list[dict]) -> pd.DataFrame:
    """One row per comparison: the test, the effect, the statistic, the one-sided p of
    "better", the interval of the effect's measure (from the test's own variance), the
    smallest effect the test could detect, the outcome, and whether it decides the verdict."""
    rows = [
        {
            "against": c["baseline"],
            "test": c["test"],
            "effect": c["effect"],
            "statistic": _num(c["statistic"], ".3g"),
            "p (one-sided)": fmt_p(c["p_value"]).removeprefix("p = ").removeprefix("p "),
            INTERVAL: ""
            if c.get("reason")
            else f"[{_num(c['ci_low'], '+.4f')}, {_num(c['ci_high'], '+.4f')}]",
            "of": c["measure"],
            "could detect": _num(c.get("detectable"), ".2g"),
            "outcome": c["outcome"],
            "verdict": "yes" if c["decides"] else "secondary",
        }
        for c in comparisons
    ]
    return pd.DataFrame(rows)


def optimism_lines(block: dict) -> list[str]:
    """Rank 1's CV score next to its test score, and the probability of backtest overfitting."""

    def num(v) -> str:
        return "n/a" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.4f}"

    folds = block.get("cv_folds") or []
    spread = f" ({len(folds)} folds: {', '.join(f'{v:.3f}' for v in folds)})" if folds else ""
    if folds and "cv_fold_mean" in block:
        spread = f" (pooled over {spread[2:-1]}; their mean {num(block['cv_fold_mean'])})"
    lines = [
        f"CV against test ({block['measure']}): rank {block['rank']} (trial "
        f"{block['trial_id']}), the sweep's pick on its CV folds, scored {num(block['cv'])} in "
        f"CV{spread}; on the test part {num(block['test_seed_ensemble'])} as a seed "
        f"ensemble, {num(block['test_seed_mean'])} ± {num(block['test_seed_std'])} per seed."
    ]
    pbo = block.get("pbo", {})
    if pbo.get("computed"):
        on = pbo.get("computed_on") or f"{pbo['n_trials']} trials that completed every fold"
        lines.append(
            f"Probability of backtest overfitting: {pbo['pbo']:.2f} ({pbo['measure']}; "
            f"computed on {on}; {pbo['n_blocks']} blocks, {pbo['n_splits']:,} splits): "
            f"{pbo['note']}."
        )
    else:
        lines.append(f"Probability of backtest overfitting: {pbo.get('note', 'not computed')}.")
    return lines


def summary_lines(index: dict) -> list[str]:
    """The console summary of a promotion: the table, the verdicts in plain words, the
    chosen model's tests, the CV score's optimism and the trading view."""
    data = index["data"]
    windows = data.get("test_windows_first_time")
    reads = (
        f"; their windows read bars from {windows}, row {data['test_first_row']}" if windows else ""
    )
    lines = [
        f"Test part: {data['n_test']:,} samples, anchors {data['test_first_time']} .. "
        f"{data['test_last_time']}{reads}; never seen by the sweep's trials or by training:",
        comparison_table(index).to_string(index=False),
    ]
    lines += [m["verdict"] for m in index["models"] if "verdict" in m]
    if "ensemble" in index:
        lines.append(index["ensemble"]["verdict"])
    chosen = index["chosen"]
    lines.append(f"Chosen: {chosen['path']} ({chosen['kind']}). Its tests on the test part:")
    lines.append(tests_table(chosen["comparisons"]).to_string(index=False))
    lines += optimism_lines(index["cv_optimism"])
    lines.append(trading_line(index["trading"]))
    return lines


# ---------------------------------------------------------------------- importances


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


# ---------------------------------------------------------------------- assembling


def _verdict_html(text: str) -> str:
    cls = "bad" if "NOT" in text else "good"
    return f'<li class="{cls}">{html.escape(text)}</li>'


def _paragraphs(lines: list[str]) -> tuple[str, str]:
    return "".join(f"<p>{html.escape(t)}</p>" for t in lines), "\n\n".join(lines)


_OLDER = "not in this promoted.json (written by an older version: promote again to add it)"


def _test_sections(index: dict) -> list[tuple[str, str, str]]:
    """The verdict, the chosen model's tests, the test table, CV optimism, the trading view."""
    verdicts = [m["verdict"] for m in index["models"] if "verdict" in m]
    verdicts += [index["ensemble"]["verdict"]] if "ensemble" in index else []
    guard, chosen = index["holdout_guard"], index["chosen"]
    training = (
        "each model early-stopped on the validation part, then was refit on train+validation "
        f"for its best epoch count (its last label: row {guard['last_training_label_row']})"
        if "last_training_label_row" in guard
        else "each model trained on the train part and early-stopped on the validation part"
    )
    intro = (
        f"Test part: {index['data']['n_test']:,} samples, anchors "
        f"{index['data']['test_first_time']} to {index['data']['test_last_time']}; training "
        f"read rows 0..{guard['max_training_row']} only (the test windows start at row "
        f"{guard['test_first_row']}): {training}. Chosen model: {chosen['path']} "
        f"({chosen['kind']}, picked by CV rank, not by test scores): its verdict is the answer; "
        "the other verdicts are descriptive. A verdict says 'beats the baselines' only if the "
        "model is significantly better than every baseline, each test one-sided at 5% (the "
        "intersection-union p-value is the largest of their p-values); it is about the "
        "expected loss of the process that made the data, not only these rows."
    )
    earlier = index.get("earlier_promotions") or []
    if earlier:
        intro += (
            f" Warning: this test part was read before, by {len(earlier)} earlier "
            f"promotion(s) of this sweep ({', '.join(str(e.get('created')) for e in earlier)}): "
            "this verdict is not a first read of it, and keeping whichever promotion reads "
            "best overstates it."
        )
    body = f"<p>{html.escape(intro)}</p><ul>{''.join(map(_verdict_html, verdicts))}</ul>"
    md = intro + "\n\n" + "\n".join(f"- {v}" for v in verdicts)
    table = comparison_table(index)
    out = [("Verdict", body, md)]
    if "comparisons" in chosen:
        tests = tests_table(chosen["comparisons"])
        tests_section = (table_html(tests), table_md(tests))
    else:
        tests_section = _paragraphs([_OLDER])
    out.append(("Tests of the chosen model against each baseline", *tests_section))
    out.append(("Test part: models against baselines", table_html(table), table_md(table)))
    optimism = optimism_lines(index["cv_optimism"]) if "cv_optimism" in index else [_OLDER]
    out.append(("How optimistic is the CV score?", *_paragraphs(optimism)))
    trading = trading_line(index["trading"]) if "trading" in index else _OLDER
    out.append(("Trading view of the test part", *_paragraphs([trading])))
    return out


def _leaderboard(board: pd.DataFrame) -> tuple[str, str]:
    """The 10 best trials (ranked first, then the others) and the baselines' reference rows."""
    keep = ["rank", "trial_id", "status", "objective", "objective_std", "skill", "seconds"]
    keep = [c for c in keep if c in board.columns]
    keep += [c for c in board.columns if c.startswith("param_")]
    top = board[board["status"] != BASELINE].head(10)
    refs = board[board["status"] == BASELINE]
    shown = pd.concat([top[keep], refs[keep]], ignore_index=True)
    shown = shown.rename(columns=lambda c: c.removeprefix("param_"))
    return table_html(shown), table_md(shown)


def _sections(out_dir: Path) -> tuple[dict, list[tuple[str, str, str]]]:
    """(facts, [(title, html body, markdown body)]) of everything there is to show."""
    sweep = read_sweep(out_dir)
    full = pd.read_parquet(out_dir / "leaderboard.parquet")
    board = trial_rows(full)  # the baselines' reference rows are shown beside the top trials
    promoted_path = out_dir / "promoted.json"
    index = json.loads(promoted_path.read_text()) if promoted_path.is_file() else None
    objective, mode = sweep.get("objective", "objective"), sweep.get("mode", "min")
    out: list[tuple[str, str, str]] = []

    def image(b64: str, alt: str) -> str:
        return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{b64}">'

    def guarded(title: str, make, note: str = "") -> None:
        # A plot that cannot be drawn (too few trials, say) is a note, not a failed report.
        try:
            body, md = image(plots.png(make()), title), "(plot in report.html)"
            if note:
                body, md = f"{body}<p>{html.escape(note)}</p>", f"{md} {note}"
            out.append((title, body, md))
        except (ValueError, RuntimeError, KeyError, IndexError, OSError) as err:
            note = f"not available: {err}"
            out.append((title, f"<p>{html.escape(note)}</p>", note))

    if index is not None:
        out += _test_sections(index)
        guarded("Trading view: equity curves", lambda: plots.equity_plot(out_dir, index))
        guarded("Test predictions against actuals", lambda: plots.prediction_plot(out_dir, index))
        guarded("Loss curves of the promoted models", lambda: plots.loss_plot(out_dir, index))
    guarded(
        "Optimization history",
        lambda: plots.history_plot(board, out_dir / "tune", objective, mode),
    )
    title, body, _ = out[-1]
    if "data:image/png" in body:  # drawn: say what it shows, as the study's states count
        caption = plots.history_caption(board, objective)
        out[-1] = (title, body + f'<p class="caption">{html.escape(caption)}</p>', caption)
    # Pruned trials have no objective over every fold: the importances rest on the others.
    completed = int((board["status"] == "completed").sum())
    guarded(
        "Parameter importances",
        lambda: plots.importance_plot(param_importances(board, sweep["space"], mode)),
        f"Computed by fANOVA on the {completed} completed trials of {len(board)} (a pruned "
        "trial has no objective over every fold; the Optuna study marks it PRUNED).",
    )
    guarded("Per-fold objective of the top trials", lambda: plots.folds_plot(board, objective))
    out.append(("Leaderboard (top 10)", *_leaderboard(full)))
    audit_path = out_dir / "fold_audit.csv"
    if audit_path.is_file():
        audit = audit_view(pd.read_csv(audit_path))
        out.append(
            (
                "Fold audit: rows purged and embargoed per CV fold",
                table_html(audit),
                table_md(audit),
            )
        )
    if index is not None:
        final = audit_view(pd.DataFrame(index["audit"]))
        out.append(("Promotion split audit", table_html(final), table_md(final)))
    facts = {"sweep": sweep, "index": index, "objective": objective, "mode": mode, "board": board}
    return facts, out


def write_report(out_dir: Path) -> tuple[Path, Path]:
    """Write report.html and report.md into ``out_dir``; returns their paths."""
    out_dir = Path(out_dir)
    facts, sections = _sections(out_dir)
    sweep, board = facts["sweep"], facts["board"]
    trials = board[board["status"] != BASELINE]["status"]
    counts = ", ".join(f"{v} {k}" for k, v in sorted(trials.value_counts().items()))
    head = (
        f"Sweep {sweep.get('name')!r}: space {sweep.get('space')}, {sweep.get('cv')} CV with "
        f"{sweep.get('folds')} folds, objective {facts['objective']} ({facts['mode']}); "
        f"trials: {counts}. {sweep.get('data_summary', '')}"
    )
    title = f"LSTM sweep report: {sweep.get('name')}"
    body = "".join(f"<h2>{html.escape(t)}</h2>{b}" for t, b, _ in sections)
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{CSS}</style></head><body><h1>{html.escape(title)}</h1>"
        f"<p>{html.escape(head)}</p>{body}</body></html>"
    )
    html_path, md_path = out_dir / "report.html", out_dir / "report.md"
    html_path.write_text(page)
    md = "\n\n".join([f"# {title}", head, *(f"## {t}\n\n{m}" for t, _, m in sections)])
    md_path.write_text(md + "\n")
    return html_path, md_path


def _write_any(folder: Path, ticker: str | None) -> tuple[Path, Path]:
    """A sweep's report; for a universe its universe report (from universe_promoted.json),
    or with ``ticker`` that ticker's sweep report."""
    from orchestrator.records.tickers import member_ticker, ticker_dir
    from orchestrator.records.universe_record import is_universe, read_universe_record

    if not is_universe(folder):
        if ticker is not None:
            raise ConfigError(f"--ticker: {folder.name!r} is a single sweep, not a universe")
        return write_report(folder)
    if ticker is not None:
        members = read_universe_record(folder).get("members", {})
        return write_report(ticker_dir(folder, member_ticker(members, ticker, universe=folder.name)))
    verdict = folder / "universe_promoted.json"  # orchestrator.promotion.universe writes it
    if not verdict.is_file():
        raise ConfigError(
            f"universe {folder.name!r} is not promoted yet (its report comes with the "
            f"verdict): python -m orchestrator.promote --name {folder.name}"
        )
    from orchestrator.promotion.universe_report import write_universe_report

    return write_universe_report(folder, json.loads(verdict.read_text()))


def main(argv: list[str] | None = None) -> int:
    p = ArgumentParser(prog="python -m orchestrator.report", description=__doc__.split("\n")[0])
    p.add_argument("--name", required=True, help="the sweep or universe (a folder of --results-dir)")
    p.add_argument("--results-dir", default="results", help="default: %(default)s")
    p.add_argument("--ticker", help="with --name of a universe: that ticker's sweep report")
    try:
        args = p.parse_args(argv)
        name = check_existing_name(args.name)  # its report is written inside that folder
        html_path, md_path = _write_any(Path(args.results_dir) / name, args.ticker)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"Report: {html_path} ({md_path.name})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
