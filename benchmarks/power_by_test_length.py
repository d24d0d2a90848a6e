"""How long a test part must be for "beats ridge" to show on most data seeds.

Reads the promotions of a validation run (``benchmarks/validate_defaults.sh``: one
``promoted.json`` per data seed under ``--results``), takes each seed's Diebold-Mariano
comparison against ridge (its estimate, its smallest detectable skill and its EWC degrees of
freedom), recovers the standard error behind it, and asks: with the edge the model showed
(the mean estimate across seeds, or ``--edge``), what is each seed's power at 5% one-sided if
its test part were ``n`` bars instead of the ``n`` it had (the standard error scaling with
``1/sqrt(n)``, the degrees of freedom with EWC's rule), and how many of the seeds would be
expected to reach p < 0.05? The built-in data's test part is ~14% of its bars, so the last
column converts the test length into the built-in series' length.

    python benchmarks/power_by_test_length.py --results /tmp/val/final/results

Nothing here trains or reads a test part again: it is arithmetic on recorded verdicts.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from orchestrator.stats.significance import detectable_factor, ewc_dof  # noqa: E402

LENGTHS = (568, 1000, 1500, 2000, 2500, 3000)


def ridge_rows(results: Path) -> list[dict]:
    """Per promoted sweep: the seed's name, test length, and the chosen model's DM vs ridge."""
    rows = []
    for path in sorted(results.glob("*/promoted.json")):
        record = json.loads(path.read_text())
        dm = [
            c
            for c in record["chosen"]["comparisons"]
            if c["baseline"] == "ridge" and c["test"].startswith("Diebold-Mariano")
        ]
        if not dm:
            continue
        c = dm[0]
        dof = int(re.search(r"(\d+) degrees of freedom", c["note"]).group(1))
        se = c["detectable"] / detectable_factor(dof)
        rows.append(
            {
                "sweep": record["sweep"],
                "n_test": int(record["data"]["n_test"]),
                "n_rows": int(record["data"]["n_rows"]),
                "estimate": float(c["estimate"]),
                "p": float(c["p_value"]),
                "se": se,
            }
        )
    return rows


def power(edge: float, se: float, n_from: int, n_to: int) -> float:
    """One-sided 5% power of the EWC t-test at ``n_to`` test bars for a true skill ``edge``."""
    dof = ewc_dof(n_to)
    scaled = se * np.sqrt(n_from / n_to)
    return float(stats.nct.sf(stats.t.ppf(0.95, dof), dof, edge / scaled))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--results", type=Path, required=True, help="validate_defaults.sh's results"
    )
    parser.add_argument(
        "--edge", type=float, help="true skill over ridge (default: the mean estimate)"
    )
    args = parser.parse_args(argv)
    rows = ridge_rows(args.results)
    if not rows:
        print(f"error: {args.results}: no promoted.json with a Diebold-Mariano row against ridge")
        return 2
    edge = args.edge if args.edge is not None else float(np.mean([r["estimate"] for r in rows]))
    share = np.mean([r["n_test"] / r["n_rows"] for r in rows])
    print(
        f"{len(rows)} promotions; skill over ridge: mean {edge:+.4f} (assumed true for every seed); "
        f"observed p < 0.05 on {sum(r['p'] < 0.05 for r in rows)} of {len(rows)}"
    )
    print(
        f"{'test bars':>9} {'EWC dof':>7} {'median detectable':>17} {'expected p<0.05':>15} {'built-in bars':>13}  per-seed power"
    )
    for n in LENGTHS:
        powers = [power(edge, r["se"], r["n_test"], n) for r in rows]
        det = np.median(
            [r["se"] * np.sqrt(r["n_test"] / n) * detectable_factor(ewc_dof(n)) for r in rows]
        )
        print(
            f"{n:>9} {ewc_dof(n):>7} {det:>17.3f} {sum(powers):>12.1f}/{len(rows)} {n / share:>13,.0f}  "
            + " ".join(f"{p:.2f}" for p in powers)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
