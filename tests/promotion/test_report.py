"""report.html / report.md of a sweep, and Optuna importances rebuilt from a leaderboard.

The sweep folders here are written with the sweep's own writers (build_leaderboard,
write_results) from hand-made trial records, so no Ray is needed; the report of a promoted
sweep is checked in test_promote.py.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from orchestrator.promotion import plots
from orchestrator.promotion.report import main, param_importances, write_report
from orchestrator.records.leaderboard import (
    TrialRecord,
    build_leaderboard,
    with_baselines,
    write_results,
)
from orchestrator.sweep.cv_baselines import CVBaseline
from tests.browser import chromium, has_browser
from trainables.prep.splits import PurgedWalkForward, audit_frame


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
    from orchestrator.records.leaderboard import with_baselines
    from orchestrator.sweep.cv_baselines import CVBaseline

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


# ---------------------------------------------------------------------- layout and plots


def _wide_sweep(tmp_path: Path) -> Path:
    """A sweep as wide as a real one: the cpu space's 8 parameters, 5 folds, pruned and
    failed trials, the baselines' rows."""
    rng = np.random.default_rng(1)
    records = []
    for k in range(30):
        params = {
            "cell": str(rng.choice(["lstm", "gru"])),
            "dropout": float(rng.choice([0.0, 0.1, 0.2])),
            "hidden_size": int(rng.choice([16, 32, 64])),
            "learning_rate": float(10 ** rng.uniform(-3.5, -2)),
            "num_layers": int(rng.choice([1, 2])),
            "scaler": str(rng.choice(["minmax", "standard"])),
            "sequence_length": int(rng.choice([10, 20, 40])),
            "weight_decay": float(rng.choice([0.0, 1e-5, 1e-4])),
        }
        ratios = 0.8 + 0.2 * rng.random(5)
        folds = [{"mse_ratio": r, "skill": 1 - r} for r in ratios]
        status, kept = ("completed", 5) if k % 3 == 0 else ("pruned", k % 3 - 1)
        if k == 7:
            status, kept = "failed", 0
        records.append(TrialRecord(f"{k:08x}", params, folds[:kept], status, seconds=2.5))
    board = build_leaderboard(records, n_folds=5, objective="mse_ratio", mode="min")
    refs = [
        CVBaseline("naive", [{"mse_ratio": 1.0, "skill": 0.0}] * 5, "persistence", "mse_ratio"),
        CVBaseline(
            "ridge", [{"mse_ratio": 0.85, "skill": 0.15}] * 5, "window 40, alpha 10", "mse_ratio"
        ),
    ]
    board = with_baselines(board, refs, n_folds=5, objective="mse_ratio", mode="min")
    splitter = PurgedWalkForward(5, sequence_length=40, horizon=1)
    index = pd.date_range("2020-01-01", periods=4000, freq="h")
    audit = audit_frame(splitter.audit(np.arange(4000), index=index))
    out = tmp_path / "results" / "wide"
    spec = {"name": "wide", "space": "cpu", "cv": "walk-forward", "folds": 5}
    spec.update(objective="mse_ratio", mode="min", data_summary="built-in data: 4,000 bars")
    write_results(out, leaderboard=board, best_config=None, audit=audit, spec=spec)
    return out


# Chromium's default sans-serif digits and letters at 12 px are at most ~7.5 px wide; a
# cell adds 12 px of padding and a 1 px border.
_CHAR_PX, _CELL_PX = 7.5, 13


def _min_width(table: str) -> float:
    """The narrowest a table can be drawn: per column, its longest piece that cannot wrap
    (a browser breaks at spaces, after hyphens and at <wbr>)."""
    rows = re.findall(r"<tr>(.*?)</tr>", table)
    widths: dict[int, float] = {}
    for row in rows:
        for k, cell in enumerate(re.findall(r"<t[hd]>(.*?)</t[hd]>", row)):
            pieces = re.split(r"\s+|(?<=-)|<wbr>", html.unescape(cell))
            longest = max((len(p) for p in pieces), default=0)
            widths[k] = max(widths.get(k, 0), longest * _CHAR_PX + _CELL_PX)
    return sum(widths.values())


def test_every_table_of_the_report_fits_a_1400_px_page(tmp_path):
    # Rule: at 1400 px (1300 px of content) no table needs to be wider than the page: the
    # narrowest each table can be drawn fits, headers break after underscores, and the
    # fold audit shows one range per part instead of 24 columns.
    out = _wide_sweep(tmp_path)
    page = write_report(out)[0].read_text()
    assert "max-width:1300px" in page and "max-width:100%" in page
    tables = re.findall(r"<table>.*?</table>", page, flags=re.S)
    assert len(tables) == 2  # the leaderboard and the fold audit
    for table in tables:
        assert _min_width(table) <= 1300, table[:300]
    audit = page.split("<h2>Fold audit")[1]
    assert "evaluation time" in audit and "2020-" in audit
    assert "<th>objective_<wbr>std</th>" in page


def test_the_leaderboard_section_lists_trials_then_baselines_without_placeholders(tmp_path):
    # Rule: the report's leaderboard shows the 10 best trials, then the baselines on the
    # same folds; a missing value is an empty cell, never '<NA>' or 'nan'.
    out = _wide_sweep(tmp_path)
    page, md = (p.read_text() for p in write_report(out))
    section = page.split("<h2>Leaderboard")[1].split("<h2>")[0]
    assert section.count("<tr>") == 1 + 10 + 2
    assert "baseline:naive" in section and "baseline:ridge" in section
    assert "&lt;NA&gt;" not in page and "<NA>" not in md and ">nan<" not in page
    head = page.split("</h1>")[1].split("</p>")[0]
    assert "trials: 10 completed, 1 failed, 19 pruned." in head  # baselines are not trials


def test_the_history_plot_says_what_it_plots(tmp_path):
    # Rule: the optimisation history draws every trial in start order: complete ones at
    # their objective over every fold, pruned ones honestly (at the folds they ran, or at
    # the bottom when they have no score), failed ones marked; the caption gives the same
    # counts, and the baselines' rows are not trials.
    out = _wide_sweep(tmp_path)
    board = pd.read_parquet(out / "leaderboard.parquet")
    fig = plots.history_plot(board, out / "tune", "mse_ratio", "min")
    ax = fig.axes[0]
    drawn = {c.get_label(): len(c.get_offsets()) for c in ax.collections}
    assert drawn == {
        "pruned, mse_ratio of the folds run (10)": 10,
        "pruned inside fold 1, no score (9)": 9,
        "failed (1)": 1,
        "complete: mse_ratio over every fold (10)": 10,
    }
    assert ax.get_title() == "Optimization history: 10 complete of 30 trials"
    caption = plots.history_caption(board, "mse_ratio")
    assert caption.startswith("All 30 trials in the order they started. Blue: the 10 complete")
    assert "the 19 pruned trials (state PRUNED): 10 at the mse_ratio" in caption
    assert "9 stopped inside their first fold with no score" in caption
    page = write_report(out)[0].read_text()
    assert html.escape(caption) in page


def legend_overlaps(fig) -> list[str]:
    """Labels of legends drawn over an axes of ``fig`` (after drawing it)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)  # the report's figures have no canvas of their own
    canvas.draw()
    renderer = canvas.get_renderer()
    legends = [*fig.legends, *(ax.get_legend() for ax in fig.axes if ax.get_legend())]
    out = []
    for legend in legends:
        box = legend.get_window_extent(renderer)
        for ax in fig.axes:
            if box.overlaps(ax.get_window_extent(renderer)):
                out.append(legend.get_texts()[0].get_text())
    return out


def test_legends_of_the_sweep_plots_cover_no_curve(tmp_path):
    # Rule: a legend sits beside or below the axes, never on them.
    out = _wide_sweep(tmp_path)
    board = pd.read_parquet(out / "leaderboard.parquet")
    for fig in (
        plots.history_plot(board, out / "tune", "mse_ratio", "min"),
        plots.folds_plot(board, "mse_ratio"),
    ):
        assert fig.legends or any(ax.get_legend() for ax in fig.axes)
        assert legend_overlaps(fig) == []


@pytest.mark.slow
@pytest.mark.skipif(
    not has_browser(),
    reason="needs chromium and chromedriver (apt-get install -y chromium chromium-driver)",
)
def test_report_in_chromium_at_1400_px_has_no_table_wider_than_the_page(tmp_path):
    # Rule: opened in a 1400 px browser window, the page does not scroll sideways and every
    # table ends inside it; the screenshot is kept (UPDATE_SCREENSHOTS=1: docs/).
    out = _wide_sweep(tmp_path)
    html_path = write_report(out)[0]
    assert_fits_in_chromium(html_path, tmp_path)


def assert_fits_in_chromium(html_path: Path, tmp_path: Path) -> None:
    with chromium(tmp_path / "profile", width=1400, height=1000) as driver:
        driver.get(html_path.resolve().as_uri())
        page = driver.execute_script(
            "const w = document.documentElement.clientWidth;"
            "return {width: w, scroll: document.documentElement.scrollWidth,"
            " tables: [...document.querySelectorAll('table')].map(t =>"
            "  [t.previousElementSibling.textContent, t.getBoundingClientRect().right]),"
            " height: document.body.scrollHeight};"
        )
        assert page["width"] == 1400 and page["scroll"] <= page["width"]
        assert page["tables"] and all(right <= page["width"] for _, right in page["tables"])
        driver.set_window_size(1400, min(page["height"] + 100, 16000))
        driver.save_screenshot(str(tmp_path / f"{html_path.parent.name}-report.png"))
    assert (tmp_path / f"{html_path.parent.name}-report.png").stat().st_size > 10_000
