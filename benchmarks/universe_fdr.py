"""The universe's verdict on synthetic universes: are random walks named winners, and how
often are the learnable tickers found?

    python benchmarks/universe_fdr.py                       # 8 universes of 4 + 16 tickers
    python benchmarks/universe_fdr.py --universes 4 --learnable 4 --random-walks 16 --bars 8000

Each universe is one long frame from ``trainables.bars.synthetic.make_universe``: ``--learnable``
tickers with the built-in signal (series long enough for the test part to have power) and
``--random-walks`` tickers that are pure random walks, one seed per universe. Every ticker is
judged as promotion judges a chosen model, with promotion's own code: the final split and
the holdout guard (``orchestrator.promotion.holdout``), a model trained on the train part with early
stopping on validation and refit on train+validation (``orchestrator.promotion.retrain.fit_and_refit``),
the baselines fit on the same rows (``orchestrator.promotion.baselines``), the test part read once,
every deciding comparison (``orchestrator.stats.verdicts``) and the intersection-union p-value
(``orchestrator.stats.fdr.iu_p_of``). The model is one fixed config (``--hidden``, ``--epochs``,
the CPU preset otherwise) instead of a sweep's best: the sweep is the expensive part, and
what is measured here is the verdict across tickers, which reads only the test part.

Then Benjamini-Yekutieli at 10% across each universe's tickers (``orchestrator.stats.fdr``), and:

* the false discovery proportion per universe (random walks named / tickers named) and its
  mean over universes (the FDR, which BY keeps <= 10%), and the share of random walks named;
* the learnable tickers' power: how often one beats every baseline on its own at 5% (the
  single-ticker verdict), how often its p-value is below BY's threshold for finding all the
  learnable ones (``0.10 * L / (m * sum 1/i)``, what the single-ticker power predicts after
  the adjustment), and how often it is named a winner.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from orchestrator.promotion.baselines import baseline_forecasts, fit_baselines
from orchestrator.promotion.evaluation import judge, outputs_on_test
from orchestrator.promotion.holdout import HoldoutData, HoldoutGuard
from orchestrator.promotion.retrain import fit_and_refit
from orchestrator.stats.fdr import FDR_LEVEL, adjust, iu_p_of
from trainables.artifacts import save_run
from trainables.bars.synthetic import make_universe
from trainables.parameters.presets import PRESETS
from trainables.prep.model_table import build_table, holdout_split


def judged_p(bars: pd.DataFrame, cfg, work: Path) -> float:
    """The intersection-union p of one ticker, as promotion computes it (module doc)."""
    features, targets = build_table(bars, cfg)
    seq = cfg.sequence_length
    split = holdout_split(len(features), cfg, sequence_length=seq)
    data = HoldoutData(
        features=features,
        targets=targets,
        split=split,
        base=cfg,
        sequence_length_max=seq,
        test_first_row=int(split.test.min()) - seq + 1,
        n_train_rows=int(split.train_val.max()) + cfg.horizon + 1,
        source="synthetic",
    )
    guard = HoldoutGuard(data)
    table = guard.training_table()
    _, final, refit_cfg, fold = fit_and_refit(cfg, table, device="cpu")
    models = fit_baselines(table, cfg)
    save_run(work, result=final, cfg=refit_cfg, fold=fold, index=pd.DatetimeIndex(table.index))
    guard.finish_training()
    test = guard.test_part()
    comparisons = judge(outputs_on_test(work, test), test, baseline_forecasts(models, test))
    return iu_p_of({"chosen": {"comparisons": [c.to_dict() for c in comparisons]}})


def one_universe(seed: int, args, cfg) -> pd.DataFrame:
    frame = make_universe(args.learnable, args.bars, seed=seed, random_walks=args.random_walks)
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for ticker, part in frame.groupby("ticker", sort=False):
            bars = part.drop(columns="ticker").set_index("timestamp")
            p = judged_p(bars, cfg, Path(d) / ticker)
            rows.append(
                {
                    "universe": seed,
                    "ticker": ticker,
                    "learnable": ticker.startswith("SYN"),
                    "iu_p": p,
                }
            )
    table = pd.DataFrame(rows)
    verdict = adjust(dict(zip(table.ticker, table.iu_p, strict=True)))
    table["adjusted_p"] = [verdict[t]["adjusted_p"] for t in table.ticker]
    table["winner"] = [verdict[t]["winner"] for t in table.ticker]
    return table


def report(all_rows: pd.DataFrame, args) -> None:
    m = args.learnable + args.random_walks
    c = sum(1 / i for i in range(1, m + 1))
    threshold = FDR_LEVEL * args.learnable / (m * c)
    fdp = []
    for _, table in all_rows.groupby("universe"):
        named = table[table.winner]
        fdp.append(float((~named.learnable).sum() / len(named)) if len(named) else 0.0)
    walks, learn = all_rows[~all_rows.learnable], all_rows[all_rows.learnable]
    n = len(fdp)
    se = float(np.std(fdp, ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
    print(
        f"{n} universes x ({args.learnable} learnable + {args.random_walks} random walks), {args.bars:,} bars each"
    )
    print(
        f"false discovery proportion: mean {np.mean(fdp):.3f} (se {se:.3f}) over universes; FDR level {FDR_LEVEL:.0%}"
    )
    print(
        f"random walks named winners: {int(walks.winner.sum())} of {len(walks)} ({walks.winner.mean():.3f}); unadjusted p < 0.05: {(walks.iu_p < 0.05).mean():.3f}"
    )
    print(
        f"learnable tickers, single-ticker power (beat every baseline at 5%): {(learn.iu_p < 0.05).mean():.3f}"
    )
    print(
        f"learnable tickers, p below BY's threshold for all {args.learnable} ({threshold:.4f}): {(learn.iu_p <= threshold).mean():.3f} (what that power predicts after the adjustment)"
    )
    print(
        f"learnable tickers named winners: {int(learn.winner.sum())} of {len(learn)} ({learn.winner.mean():.3f})"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--universes", type=int, default=8)
    p.add_argument("--learnable", type=int, default=4)
    p.add_argument("--random-walks", type=int, default=16)
    p.add_argument("--bars", type=int, default=8000)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument(
        "--out", help="also write every ticker's row here (.csv, appended universe by universe)"
    )
    p.add_argument("--report-only", action="store_true", help="report the rows of --out only")
    args = p.parse_args()
    if args.report_only:
        if not args.out or not Path(args.out).is_file():
            raise SystemExit("--report-only needs --out with the rows of an earlier run")
        report(pd.read_csv(args.out), args)
        return
    cfg = PRESETS["cpu"].replace(epochs=args.epochs, hidden_size=args.hidden)
    start = time.perf_counter()
    tables = []
    for k in range(args.universes):
        tables.append(one_universe(args.first_seed + 1000 * k, args, cfg))
        t = tables[-1]
        if args.out:  # each universe's rows as soon as they are in: a long run can be cut
            header = not Path(args.out).is_file()
            t.to_csv(args.out, mode="a", header=header, index=False)
        print(
            f"universe {k}: named {list(t[t.winner].ticker)} ({time.perf_counter() - start:.0f} s)",
            flush=True,
        )
    report(pd.concat(tables, ignore_index=True), args)


if __name__ == "__main__":
    main()
