"""report.html / report.md of a sweep, and Optuna importances rebuilt from a leaderboard.

The sweep folders here are written with the sweep's own writers (build_leaderboard,
write_results) from hand-made trial records, so no Ray is needed; the report of a promoted
sweep is checked in test_promote.py.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path

import numpy as np
import pandas as pd

from orchestrator.leaderboard import TrialRecord, build_leaderboard, write_results
from orchestrator.report import main, param_importances, write_report
from trainables.splits import PurgedWalkForward, audit_frame


def _records(n: int, *, seed: int = 0) -> list[TrialRecord]:
    """n completed trials of the smoke space whose val_mse depends on learning_rate only."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        lr = float(10 ** rng.uniform(-3, -2))
        params = {
            "hidden_size": int(rng.choice([8, 16, 24, 32])),
            "sequence_length": int(rng.choice([8, 16])),
            "dropout": float(rng.choice([0.0, 0.1, 0.2])),
            "learning_rate": lr,
            "weight_decay": float(rng.uniform(0, 1e-3)),
            "cell": str(rng.choice(["lstm", "gru"])),
        }
        loss = (np.log10(lr) + 2.5) ** 2 + 1.0
        folds = [{"val_mse": loss, "skill": 0.1}, {"val_mse": loss * 1.1, "skill": 0.05}]
        out.append(TrialRecord(f"t{k:07d}", params, folds, "completed", seconds=1.0))
    return out


def _sweep_dir(tmp_path: Path, records: list[TrialRecord]) -> Path:
    out = tmp_path / "results" / "r"
    board = build_leaderboard(records, n_folds=2, objective="val_mse", mode="min")
    splitter = PurgedWalkForward(2, sequence_length=16, horizon=1)
    audit = audit_frame(splitter.audit(np.arange(600)))
    spec = {
        "name": "r",
        "space": "smoke",
        "cv": "walk-forward",
        "folds": 2,
        "objective": "val_mse",
        "mode": "min",
        "data_summary": "built-in data: 600 bars",
    }
    write_results(out, leaderboard=board, best_config=None, audit=audit, spec=spec)
    return out


def test_param_importances_find_the_parameter_that_matters():
    # The objective depends on learning_rate alone: it gets the largest importance.
    board = build_leaderboard(_records(16), n_folds=2, objective="val_mse", mode="min")
    importances = param_importances(board, "smoke", "min")
    assert set(importances) == {
        "hidden_size",
        "sequence_length",
        "dropout",
        "learning_rate",
        "weight_decay",
        "cell",
    }
    assert max(importances, key=importances.get) == "learning_rate"
    assert abs(sum(importances.values()) - 1.0) < 1e-6


def test_sweep_report_without_promotion_is_self_contained(tmp_path):
    # Without a promotion the report shows the sweep's plots and tables, inline, no test part.
    out = _sweep_dir(tmp_path, _records(8))
    html_path, md_path = write_report(out)
    page = html_path.read_text()
    titles = re.findall(r"<h2>(.*?)</h2>", page)
    assert titles == [
        "Optimization history",
        "Parameter importances",
        "Per-fold objective of the top trials",
        "Leaderboard (top 10)",
        "Fold audit: rows purged and embargoed per CV fold",
    ]
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == 3
    assert all(base64.b64decode(b).startswith(b"\x89PNG") for b in images)
    assert not re.search(r'(src|href)="(?!data:)', page)  # nothing outside the file
    md = md_path.read_text()
    assert "## Fold audit" in md and "| purged |" in md
    assert "Verdict" not in md


def test_report_shows_the_baselines_beside_the_top_trials_and_what_importances_rest_on(
    tmp_path,
):
    # Rule: the leaderboard table carries the baselines' rows on the same folds, and the
    # importances say they rest on the completed trials only.
    from orchestrator.cv_baselines import CVBaseline
    from orchestrator.leaderboard import with_baselines

    records = _records(12)  # more than the table's 10: the baseline row must still be there
    records[11] = TrialRecord("t0000011", records[11].params, records[11].folds[:1], "pruned")
    board = build_leaderboard(records, n_folds=2, objective="val_mse", mode="min")
    ridge = CVBaseline(
        "ridge", [{"val_mse": 1.5}, {"val_mse": 1.6}], "window 8, alpha 10", "val_mse"
    )
    full = with_baselines(board, [ridge], n_folds=2, objective="val_mse", mode="min")
    out = _sweep_dir(tmp_path, records)
    full.to_parquet(out / "leaderboard.parquet")
    md = write_report(out)[1].read_text()
    table = md.split("## Leaderboard (top 10)")[1].split("##")[0]
    assert "baseline:ridge" in table and "| baseline |" in table
    section = md.split("## Parameter importances")[1].split("##")[0]
    assert "on the 11 completed trials of 12" in section


def test_fold_audit_in_the_report_shows_rows_purged(tmp_path):
    # The fold audit table carries each fold's purged and embargoed counts.
    out = _sweep_dir(tmp_path, _records(4))
    md = write_report(out)[1].read_text()
    table = md.split("## Fold audit: rows purged and embargoed per CV fold")[1].strip().split("\n")
    header = [c.strip() for c in table[0].strip("|").split("|")]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in table[2:] if line]
    purged = [int(r[header.index("purged")]) for r in rows]
    assert purged == pd.read_csv(out / "fold_audit.csv")["purged"].tolist()
    assert all(p > 0 for p in purged)


def test_one_trial_gives_a_note_not_a_broken_report(tmp_path):
    # Importances need several trials; with one, that section says why and the rest is there.
    out = _sweep_dir(tmp_path, _records(1))
    page = write_report(out)[0].read_text()
    section = page.split("<h2>Parameter importances</h2>")[1].split("<h2>")[0]
    assert "not available" in section and "at least 3 completed trials" in section
    assert "<h2>Leaderboard (top 10)</h2>" in page


def test_report_cli_without_a_sweep_exits_2(tmp_path, capsys):
    # An unknown sweep: one line on stderr, exit code 2.
    assert main(["--name", "nope", "--results-dir", str(tmp_path)]) == 2
    assert "no sweep at" in capsys.readouterr().err
