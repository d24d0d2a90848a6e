"""Issue #19's validation table from the records of ``benchmarks/validate_defaults.sh``.

    OUT=/tmp/val bash benchmarks/validate_defaults.sh 10 11 ... 19
    python benchmarks/validation_table.py --out /tmp/val

One row per data seed, read from each sweep's ``sweep.json`` and ``promoted.json`` and the
wall time and load the script logged: the best trial's CV skill and ridge's on the same folds,
trials completed, the sweep's wall time (1-min load at its end), then on the test part the
chosen model's skill against the naive forecast, ridge's, and the Diebold-Mariano test of the
model against ridge (skill, one-sided p, the smallest skill the test could detect), and the
verdict. Then the counts the issue asks for. Nothing is computed again: no test part is read.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np
from scipy.stats import binomtest, ttest_1samp


def _log_figures(log: Path) -> tuple[str, str]:
    text = log.read_text() if log.is_file() else ""
    wall = re.search(r"^wall ([\d.]+) s$", text, re.M)
    loads = re.findall(r"^load ([\d.]+)", text, re.M)
    return (f"{float(wall.group(1)):.0f} s" if wall else "?", loads[-1] if loads else "?")


def one_seed(out: Path, seed: int) -> dict:
    folder = out / "results" / f"val-s{seed}"
    sweep = json.loads((folder / "sweep.json").read_text())
    promoted = json.loads((folder / "promoted.json").read_text())
    ridge_cv = next(b for b in sweep["baselines"] if b["name"] == "ridge")["skill"]
    best_cv = 1 - promoted["models"][0]["cv_objective"]
    chosen = promoted["chosen"]
    vs_ridge = next(
        c for c in chosen["comparisons"] if c["baseline"] == "ridge" and c.get("decides")
    )
    wall, load = _log_figures(out / f"val-s{seed}.tune.log")
    return {
        "seed": seed,
        "best_cv": best_cv,
        "ridge_cv": ridge_cv,
        "completed": sweep["counts"].get("completed", 0),
        "wall": wall,
        "load": load,
        "test": chosen["test"]["skill"],
        "ridge_test": promoted["baselines"]["ridge"]["skill"],
        "edge": vs_ridge["estimate"],
        "p": vs_ridge["p_value"],
        "detectable": vs_ridge["detectable"],
        "outcome": vs_ridge["outcome"],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="/tmp/val", help="validate_defaults.sh's OUT")
    p.add_argument("--seeds", default="10-19", help="first-last")
    args = p.parse_args()
    first, last = (int(x) for x in args.seeds.split("-"))
    rows = [one_seed(Path(args.out), s) for s in range(first, last + 1)]
    print(
        "| data seed | best CV skill | ridge CV | trials completed | sweep wall (load) | test "
        "skill | ridge test | vs ridge: skill, p (detectable) | verdict |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        verdict = {"better": "beats", "worse": "worse"}.get(r["outcome"], "no difference")
        print(
            f"| {r['seed']} | {r['best_cv']:+.4f} | {r['ridge_cv']:+.4f} | {r['completed']} | "
            f"{r['wall']} ({r['load']}) | {r['test']:.3f} | {r['ridge_test']:.3f} | "
            f"{r['edge']:+.4f}, p {r['p']:.2g} ({r['detectable']:.2g}) | {verdict} |"
        )
    edges = np.array([r["edge"] for r in rows])
    cv_ahead = sum(r["best_cv"] > r["ridge_cv"] for r in rows)
    beats = sum(r["outcome"] == "better" for r in rows)
    ahead = int((edges > 0).sum())
    tests = np.array([r["test"] for r in rows])
    print(
        f"\nCV: best trial ahead of ridge on {cv_ahead} of {len(rows)} seeds. Test: promotion "
        f"says 'beats ridge' (DM, one-sided 5%) on {beats} of {len(rows)}; skill over ridge "
        f"positive on {ahead}, mean {edges.mean():+.4f} (standard error "
        f"{edges.std(ddof=1) / np.sqrt(len(edges)):.4f}; t-test p = "
        f"{ttest_1samp(edges, 0, alternative='greater').pvalue:.2g}, sign test p = "
        f"{binomtest(ahead, len(rows), alternative='greater').pvalue:.2g}); test skill "
        f"{tests.min():.3f}-{tests.max():.3f}, mean {tests.mean():.3f}"
    )


if __name__ == "__main__":
    main()
