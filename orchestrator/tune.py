"""``python -m orchestrator.tune``: sweep LSTM hyperparameters over purged time-series CV.

Examples::

    python -m orchestrator.tune --smoke-test              # tiny sweep, well under a minute
    python -m orchestrator.tune --trials 50               # default space, built-in data
    python -m orchestrator.tune --data bars.parquet --ticker AAPL --space daily --trials 100
    python -m orchestrator.tune --resume --name default-20261121-101500
    python -m orchestrator.tune --smoke-test --promote    # then retrain + test the top configs
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import MISSING, fields, replace

from orchestrator.prepare import CV_SCHEMES
from orchestrator.promote import PromoteSpec, promote
from orchestrator.sweep import SCHEDULERS, SweepSpec, run_sweep
from trainables.cli import ArgumentParser, bar_options, command_line
from trainables.config import parse_value
from trainables.errors import ConfigError, OrchestratorError

__all__ = ["main", "parse_args"]

_DEFAULTS = {f.name: f.default for f in fields(SweepSpec) if f.default is not MISSING}
_PROMOTE_DEFAULTS = {f.name: f.default for f in fields(PromoteSpec) if f.default is not MISSING}
# Command-line names of the promotion options; they are not SweepSpec fields.
_PROMOTE_ARGS = ("promote", "top_k", "seeds", "promote_workers", "promote_epochs")


def _key_value(text: str) -> tuple[str, object]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"takes KEY=VALUE (e.g. --set epochs=20), not {text!r}")
    key, value = text.split("=", 1)
    # Typed from TrainConfig's fields, exactly as `python -m trainables.train --key value`.
    return key.strip(), parse_value(key.strip(), value)


def build_parser() -> argparse.ArgumentParser:
    d = _DEFAULTS
    p = ArgumentParser(  # its errors are one line (ConfigError), not the whole usage
        prog="python -m orchestrator.tune",
        description="Ray Tune + Optuna sweep of LSTM models over purged time-series CV folds. "
        "The final test part of the data is never touched by a sweep.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    g = p.add_argument_group("what to sweep")
    g.add_argument("--trials", type=int, default=d["trials"], help="number of trials")
    g.add_argument(
        "--space", default=d["space"], help="search space: a name in search_spaces/ or a YAML path"
    )
    g.add_argument(
        "--data", default=None, help="bars as CSV or Parquet (default: the built-in generated data)"
    )
    g.add_argument("--ticker", default=None, help="ticker to pick from a multi-ticker file")
    bar_options(g)
    g.add_argument(
        "--task",
        choices=["regression", "classification"],
        default=None,
        help="default: regression (next-bar close)",
    )
    g.add_argument("--epochs", type=int, default=None, help="max epochs per fold")
    g.add_argument(
        "--set",
        dest="overrides",
        type=_key_value,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any training setting for every trial, e.g. "
        "--set horizon=5 --set f_cols=close,volume,log_return (see docs/parameters.md)",
    )
    g.add_argument("--cv", choices=CV_SCHEMES, default=d["cv"], help="CV scheme")
    g.add_argument(
        "--folds",
        type=int,
        default=d["folds"],
        help="CV folds (groups for cpcv, which evaluates every pair of groups)",
    )
    g.add_argument(
        "--scheduler",
        choices=SCHEDULERS,
        default=d["scheduler"],
        help="early stopping of bad trials after each fold",
    )
    g.add_argument(
        "--asha-eta",
        type=float,
        default=d["asha_eta"],
        help="ASHA reduction factor: at each rung only the best 1/eta of trials go on",
    )
    g.add_argument(
        "--asha-grace",
        type=float,
        default=d["asha_grace"],
        help="ASHA's first rung in folds; <1 also prunes inside the first fold "
        "(e.g. 0.25: after a quarter of its epochs)",
    )
    g.add_argument(
        "--race-margin",
        type=float,
        default=d["race_margin"],
        help="with asha: after each fold, stop a trial whose mean is this much (relative) "
        "worse than the best finished trial's on the same folds; 0 = plain ASHA",
    )
    g.add_argument("--seed", type=int, default=d["seed"], help="Optuna TPE seed and data seed")
    g.add_argument("--name", default=None, help="sweep name (default: <space>-<timestamp>)")
    g.add_argument(
        "--smoke-test",
        action="store_true",
        help="tiny version of the whole sweep (smoke space, 2 folds, 2 epochs)",
    )
    r = p.add_argument_group("resources")
    r.add_argument(
        "--max-concurrent",
        type=int,
        default=None,
        help="trials at once (default: CPUs / cpus-per-trial)",
    )
    r.add_argument("--cpus-per-trial", type=float, default=d["cpus_per_trial"])
    r.add_argument(
        "--gpus-per-trial",
        type=float,
        default=d["gpus_per_trial"],
        help="fractional values let several small LSTMs share a GPU, e.g. 0.25",
    )
    r.add_argument(
        "--workers-per-trial",
        type=int,
        default=d["workers_per_trial"],
        help=">1 trains each fold with Ray Train's TorchTrainer (DDP)",
    )
    r.add_argument(
        "--max-retries",
        type=int,
        default=d["max_retries"],
        help="retries of a crashed trial, from its last finished fold",
    )
    r.add_argument("--num-cpus", type=int, default=None, help="CPUs for a local Ray (default: all)")
    r.add_argument(
        "--no-dashboard",
        dest="dashboard",
        action="store_false",
        help="do not start the Ray dashboard (local Ray)",
    )
    w = p.add_argument_group("where")
    w.add_argument(
        "--address",
        default=None,
        help="attach to a running Ray cluster, e.g. auto or ray://host:10001",
    )
    w.add_argument(
        "--storage",
        default=None,
        help="Tune storage: local dir or cloud URI (s3://...), needed for multi-node",
    )
    w.add_argument("--results-dir", default=d["results_dir"])
    w.add_argument(
        "--mlflow-uri",
        default=None,
        help="MLflow tracking URI (default: sqlite:///<results-dir>/mlflow.db)",
    )
    w.add_argument(
        "--resume",
        action="store_true",
        help="continue the interrupted sweep --name (finished trials are kept)",
    )
    q = p.add_argument_group("promotion right after the sweep (docs/promotion.md)")
    q.add_argument(
        "--promote",
        action="store_true",
        help="retrain the top configs on train+validation and judge them on the test part",
    )
    q.add_argument("--top-k", type=int, default=_PROMOTE_DEFAULTS["top_k"])
    q.add_argument("--seeds", type=int, default=_PROMOTE_DEFAULTS["seeds"])
    q.add_argument(
        "--promote-workers",
        type=int,
        default=_PROMOTE_DEFAULTS["workers"],
        help="DDP workers per promoted model",
    )
    q.add_argument(
        "--promote-epochs", type=int, default=None, help="max epochs (default: the trial's)"
    )
    return p


def promote_spec(argv: list[str] | None, spec: SweepSpec) -> PromoteSpec | None:
    """The promotion asked for on the command line (None without --promote); its name is
    the sweep's, known once the sweep has run."""
    args = build_parser().parse_args(argv)
    if not args.promote:
        return None
    return PromoteSpec(
        name=spec.name or "",
        results_dir=spec.results_dir,
        top_k=args.top_k,
        seeds=args.seeds,
        workers=args.promote_workers,
        epochs=args.promote_epochs,
        num_cpus=spec.num_cpus,
        address=spec.address,
        mlflow_uri=spec.mlflow_uri,
    )


def parse_args(argv: list[str] | None = None) -> SweepSpec:
    args = vars(build_parser().parse_args(argv))
    for key in _PROMOTE_ARGS:
        args.pop(key)
    smoke = args.pop("smoke_test")
    overrides = dict(args.pop("overrides"))
    if args["resume"] and not args["name"]:
        raise ConfigError("--resume needs --name of the sweep to continue (see results/)")
    spec = SweepSpec(**args, overrides=overrides)
    return spec.smoke() if smoke else spec


def main(argv: list[str] | None = None) -> int:
    with command_line(signals=False):  # Ray Tune handles Ctrl-C itself
        return _main(argv)


def _main(argv: list[str] | None) -> int:
    try:
        spec = parse_args(argv)
        promotion = promote_spec(argv, spec)  # bad promotion options fail before the sweep
        outcome = run_sweep(spec)
        if promotion is not None and outcome.interrupted:
            print("the sweep was interrupted: not promoting", file=sys.stderr)
        elif promotion is not None:
            promote(replace(promotion, name=outcome.name))
    except OrchestratorError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; continue with --resume --name <sweep>", file=sys.stderr)
        return 130
    return 130 if outcome.interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
