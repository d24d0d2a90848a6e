"""``python -m orchestrator.tune``: sweep LSTM hyperparameters over purged time-series CV.

Examples::

    python -m orchestrator.tune --smoke-test              # tiny sweep, well under a minute
    python -m orchestrator.tune --trials 50               # default space, built-in data
    python -m orchestrator.tune --data bars.parquet --ticker AAPL --space daily --trials 100
    python -m orchestrator.tune --data-env BARS_DB --table vw_ticker_timeseries --ticker AAPL
    python -m orchestrator.tune --resume --name default-20261121-101500
    python -m orchestrator.tune --smoke-test --promote    # then retrain + test the top configs

``--resume --name X`` continues sweep X exactly as results/X/sweep.json recorded it (data,
space, trials, ...): a setting that decides the answer may not be given with another value;
where and how fast it runs (resources, --address, --storage) may change.
"""

from __future__ import annotations

import argparse
import re
import signal
import sys
from dataclasses import MISSING, fields, replace
from pathlib import Path

from orchestrator.promotion.spec import PromoteSpec
from orchestrator.records.names import check_existing_name, check_new_name
from orchestrator.records.state_seal import seal_problem
from orchestrator.records.sweep_record import (
    DECIDING,
    RECORD_FILE,
    RUNTIME,
    check_resume,
    read_record,
)
from orchestrator.records.universe_record import (
    UNIVERSE_FILE,
    is_universe,
    read_universe_record,
)
from orchestrator.runtime.head import head_for
from orchestrator.sweep.jobs import submit_sweep
from orchestrator.sweep.prepare import CV_SCHEMES
from orchestrator.sweep.run import run_sweep
from orchestrator.sweep.spec import SCHEDULERS, SweepSpec, resolve_space
from trainables.bars.sources import add_source_arguments
from trainables.cli import ArgumentParser, bar_options, command_line, setting
from trainables.errors import ConfigError, UserError
from trainables.parameters.train_config import choices_of

__all__ = ["main", "parse_args", "parse_duration"]

_DEFAULTS = {f.name: f.default for f in fields(SweepSpec) if f.default is not MISSING}
_PROMOTE_DEFAULTS = {f.name: f.default for f in fields(PromoteSpec) if f.default is not MISSING}
# Command-line names of the promotion options; they are not SweepSpec fields.
_PROMOTE_ARGS = ("promote", "top_k", "seeds", "promote_workers", "promote_epochs", "cost_bps")
# Options of the command that are not SweepSpec fields either.
_CLI_ARGS = (*_PROMOTE_ARGS, "job")
# What --smoke-test changes, unless the flag is given explicitly.
SMOKE = {"space": "smoke", "trials": 4, "folds": 2, "epochs": 2, "n_bars": 1200}


def parse_duration(text: str) -> float:
    """'90' or '90s', '30m', '2h', '1h30m' -> seconds."""
    parts = re.fullmatch(
        r"\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s?)?\s*", text
    )
    if not text.strip() or parts is None or not any(parts.groups()):
        raise argparse.ArgumentTypeError(
            f"--time-budget takes a duration such as 30m, 2h, 1h30m or 600 (seconds), but got {text!r}"
        )
    h, m, s = (float(g) if g else 0.0 for g in parts.groups())
    return h * 3600 + m * 60 + s


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(  # its errors are one line (ConfigError), not the whole usage
        prog="python -m orchestrator.tune",
        description="Ray Tune + Optuna sweep of LSTM models over purged time-series CV folds. "
        "Regression trials are ranked by mse_ratio: each target's MSE over its naive "
        "forecast's (persistence for prices, the training mean for returns) in original "
        "units, pooled over folds (< 1 beats the naive forecast; skill = 1 - mse_ratio). "
        "The final test part of the data is never touched by a sweep.",
        epilog="--resume --name NAME continues sweep NAME as results/NAME/sweep.json recorded "
        "it (data, space, trials, task, CV, seed, --set, scheduler): those flags may not be "
        "given with other values, and changed data is refused; the resources and where it "
        "runs may change. Ctrl-C and SIGTERM stop a sweep cleanly and print that command. "
        "See docs/sweeps.md.",
        allow_abbrev=False,
    )
    _what_to_sweep(p)
    _resources(p)
    _where(p)
    _promotion(p)
    return p


def _what_to_sweep(p: argparse.ArgumentParser) -> None:
    """The settings that decide a sweep's answer (--resume restores them)."""
    d = _DEFAULTS
    g = p.add_argument_group("what to sweep")
    g.add_argument("--trials", type=int, help=f"number of trials (default: {d['trials']})")
    g.add_argument(
        "--space",
        help="search space: auto, a name in search_spaces/ (cpu, gpu, quick, daily, smoke) or a "
        "YAML path (default: auto: gpu with a CUDA GPU, else cpu)",
    )
    g.add_argument(
        "--data",
        help="bars as CSV or Parquet, or a database URL (postgresql://user@host:5432/db, "
        "sqlite:///bars.db) with --table or --query (default: the built-in generated data)",
    )
    g.add_argument(
        "--bars",
        dest="n_bars",
        type=int,
        metavar="N",
        help=f"length of the built-in generated data, in hourly bars; not with --data "
        f"(default: {d['n_bars']:,})",
    )
    g.add_argument("--ticker", help="ticker to pick from multi-ticker data (default: none)")
    g.add_argument(
        "--tickers",
        metavar="all|A,B,C|@FILE",
        help="a universe: tune every ticker of the data (all), a list, or the tickers in a "
        "file (one a line), each its own sweep, all in one Tune run on one Ray; --trials is "
        "per ticker (docs/sweeps.md, Universes) (default: none)",
    )
    add_source_arguments(g, snapshot=True)
    bar_options(g, explicit=True)  # None unless given: --resume tells given from default
    g.add_argument(
        "--task",
        choices=choices_of("task"),
        help="what to predict (default: the space's, else regression: next-bar close)",
    )
    g.add_argument("--epochs", type=int, help="max epochs per fold (default: the space's)")
    g.add_argument(
        "--set",
        dest="overrides",
        type=setting,  # read as `python -m trainables.train --key value` reads it
        action="append",
        metavar="KEY=VALUE",
        help="any training setting for every trial, e.g. --set horizon=5 --set "
        "f_cols=close,volume,log_return (see docs/parameters.md; default: none)",
    )
    g.add_argument("--cv", choices=CV_SCHEMES, help=f"CV scheme (default: {d['cv']})")
    g.add_argument(
        "--folds",
        type=int,
        help=f"CV folds (groups for cpcv, which evaluates every pair) (default: {d['folds']})",
    )
    g.add_argument(
        "--inner-val",
        type=float,
        help="share of each fold's training samples held out, after a purge gap, for early "
        f"stopping and mid-fold pruning (default: {d['inner_val']})",
    )
    g.add_argument(
        "--scheduler",
        choices=SCHEDULERS,
        help=f"early stopping of bad trials (default: {d['scheduler']})",
    )
    g.add_argument(
        "--asha-eta",
        type=float,
        help="ASHA reduction factor: at each rung only the best 1/eta of trials go on "
        f"(default: {d['asha_eta']:g})",
    )
    g.add_argument(
        "--asha-grace",
        type=float,
        help="ASHA's first rung in folds; < 1 also prunes inside the first fold "
        f"(default: {d['asha_grace']:g}: after a quarter of its epochs)",
    )
    g.add_argument(
        "--race-margin",
        type=float,
        help="with asha: after each fold, stop a trial whose objective is this much "
        "(relative) worse than the best finished trial's on the same folds; 0 = plain ASHA "
        f"(default: {d['race_margin']:g})",
    )
    g.add_argument("--seed", type=int, help=f"Optuna TPE seed and data seed (default: {d['seed']})")
    g.add_argument(
        "--name", help="sweep name, its folder in --results-dir (default: <space>-<time>)"
    )
    g.add_argument(
        "--smoke-test",
        action="store_true",
        help="tiny version of the whole sweep: smoke space, 4 trials, 2 folds, 2 epochs, "
        "1,200 bars; flags given explicitly win",
    )


def _resources(p: argparse.ArgumentParser) -> None:
    """Where and how fast: free to change on --resume."""
    d = _DEFAULTS
    r = p.add_argument_group("resources (may change on --resume)")
    r.add_argument(
        "--time-budget",
        type=parse_duration,
        help="e.g. 30m or 2h: no new trial starts once it is spent; running trials stop "
        "cleanly and --resume goes on with them (default: none)",
    )
    r.add_argument(
        "--max-concurrent",
        type=int,
        help="trials at once (default: CPUs / (cpus-per-trial x workers-per-trial))",
    )
    r.add_argument(
        "--cpus-per-trial",
        type=float,
        help=f"CPUs a trial reserves; torch uses that many threads (default: {d['cpus_per_trial']:g})",
    )
    r.add_argument(
        "--gpus-per-trial",
        type=float,
        help="GPUs a trial reserves; fractions let several small LSTMs share a GPU, e.g. 0.25 "
        f"(default: {d['gpus_per_trial']:g})",
    )
    r.add_argument(
        "--workers-per-trial",
        type=int,
        help=">1 trains each fold with Ray Train's TorchTrainer (DDP) "
        f"(default: {d['workers_per_trial']})",
    )
    r.add_argument(
        "--max-retries",
        type=int,
        help=f"retries of a crashed trial, from its last finished fold (default: {d['max_retries']})",
    )
    r.add_argument("--num-cpus", type=int, help="CPUs for a local Ray (default: all cores)")
    r.add_argument(
        "--no-dashboard",
        dest="dashboard",
        action="store_const",
        const=False,
        help="do not start the Ray dashboard of a local Ray (default: start it)",
    )


def _where(p: argparse.ArgumentParser) -> None:
    """Ray, storage, results and MLflow: free to change on --resume."""
    d = _DEFAULTS
    w = p.add_argument_group("where (may change on --resume)")
    w.add_argument(
        "--address",
        help="attach to a running Ray cluster, e.g. auto or ray://host:10001 "
        "(default: start a private local Ray)",
    )
    w.add_argument(
        "--no-job",
        dest="job",
        action="store_const",
        const=False,
        help="with --address of a head started by `python -m orchestrator.cluster start`: run "
        "the sweep in this process (listed on the dashboard without its output; Ctrl-C stops "
        "it) instead of as a Ray job of that head (default: a job, its output on the "
        "dashboard; Ctrl-C detaches)",
    )
    w.add_argument(
        "--storage",
        help="Tune storage: a shared dir or cloud URI (s3://...), needed for multi-node "
        "(default: results/<name>/tune)",
    )
    w.add_argument(
        "--results-dir", help=f"where results/<name>/ goes (default: {d['results_dir']})"
    )
    w.add_argument(
        "--mlflow-uri",
        help="MLflow tracking URI (default: sqlite:///<results-dir>/mlflow.db)",
    )
    w.add_argument(
        "--resume",
        action="store_true",
        help="continue sweep --name as its sweep.json recorded it (finished trials are kept)",
    )
    w.add_argument(
        "--trust-state",
        action="store_true",
        help="with --resume: resume a folder this user's key did not seal (one made before "
        "sweeps were sealed, or elsewhere), whose Tune state is unpickled; only for folders "
        "whose origin you know",
    )


def _promotion(p: argparse.ArgumentParser) -> None:
    """Promotion right after the sweep."""
    q = p.add_argument_group("promotion right after the sweep (docs/promotion.md)")
    q.add_argument(
        "--promote",
        action="store_true",
        help="retrain the top configs and judge them once on the untouched test part",
    )
    q.add_argument(
        "--top-k",
        type=int,
        default=_PROMOTE_DEFAULTS["top_k"],
        help="configs to promote (default: %(default)s)",
    )
    q.add_argument(
        "--seeds",
        type=int,
        default=_PROMOTE_DEFAULTS["seeds"],
        help="models per config (default: %(default)s)",
    )
    q.add_argument(
        "--promote-workers",
        type=int,
        default=_PROMOTE_DEFAULTS["workers"],
        help="DDP workers per promoted model (default: %(default)s)",
    )
    q.add_argument(
        "--promote-epochs", type=int, help="max epochs of promoted models (default: the trial's)"
    )
    q.add_argument(
        "--cost-bps",
        type=float,
        default=_PROMOTE_DEFAULTS["cost_bps"],
        help="trading view: cost per unit of turnover in basis points (default: %(default)g)",
    )


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
        cost_bps=args.cost_bps,
        num_cpus=spec.num_cpus,
        address=spec.address,
        mlflow_uri=spec.mlflow_uri,
        # In memory only: the password of a --data URL, which sweep.json does not keep.
        data=spec.data,
        data_env=spec.data_env,
    )


def _given(argv: list[str] | None) -> dict:
    """The SweepSpec settings the command line gives explicitly (nothing else)."""
    args = vars(build_parser().parse_args(argv))
    for key in _CLI_ARGS:
        args.pop(key)
    given = {k: v for k, v in args.items() if v is not None and v is not False}
    # --no-dashboard stores False: given, unlike a store_true flag left out.
    if args.get("dashboard") is False:
        given["dashboard"] = False
    if "overrides" in given:
        given["overrides"] = dict(given["overrides"])
    if given.pop("smoke_test", False):
        given["smoke_test"] = True
    return given


def parse_args(argv: list[str] | None = None) -> SweepSpec:
    given = _given(argv)
    if given.get("resume"):
        return _resume_spec(given)
    if given.get("trust_state"):
        raise ConfigError("--trust-state goes with --resume (it vouches for a folder resumed)")
    settings = dict(given)
    if "n_bars" in given and (given.get("data") or given.get("data_env")):
        flag = "--data" if given.get("data") else "--data-env"
        raise ConfigError(f"--bars sets the length of the built-in data; with {flag} the bars are yours")
    if settings.get("smoke_test"):
        for key, value in SMOKE.items():
            if key == "epochs" and "epochs" in settings.get("overrides", {}):
                continue  # --set epochs=... is explicit too
            settings.setdefault(key, value)
    spec = resolve_space(SweepSpec(**settings))
    check_new_name(spec.sweep_name)  # before any work (run_sweep checks it again)
    return replace(spec, name=spec.sweep_name)  # fixed now, so every message names it


def _resume_spec(given: dict) -> SweepSpec:
    """--resume: the recorded sweep, with only where/how-fast settings taken from the flags."""
    if not given.get("name"):
        raise ConfigError("--resume needs --name of the sweep to continue (see results/)")
    results_dir = given.get("results_dir", _DEFAULTS["results_dir"])
    check_existing_name(given["name"])  # an older sweep's name may break today's rule
    folder = Path(results_dir) / given["name"]
    universe = is_universe(folder)
    record = read_universe_record(folder) if universe else read_record(folder)
    trusted = given.pop("trust_state", False)
    problem = seal_problem(record, folder / (UNIVERSE_FILE if universe else RECORD_FILE))
    if problem and not trusted and record.get("status") != "finished":
        raise ConfigError(problem)  # a finished sweep's resume unpickles nothing
    if given.get("space") == "auto":
        given.pop("space")  # the record says which space auto picked
    check_resume(record, {k: v for k, v in given.items() if k in DECIDING})
    names = {f.name for f in fields(SweepSpec)}
    settings = {k: record[k] for k in (*DECIDING, *RUNTIME) if k in record and k in names}
    settings.update({k: v for k, v in given.items() if k in RUNTIME})
    try:
        return SweepSpec(**settings, name=given["name"], resume=True)
    except (TypeError, ValueError, AttributeError) as err:  # an edited record: one line
        raise ConfigError(
            f"{Path(results_dir) / given['name'] / 'sweep.json'}: a setting has a value of "
            f"the wrong type ({err}); the record was edited or is damaged"
        ) from None


_received: list[int] = []


def _after_interrupt(spec: SweepSpec | None) -> str:
    """What a user can do after an interruption outside Tune's own graceful stop."""
    folder = Path(spec.results_dir) / (spec.name or "") if spec is not None else None
    if folder is None or not ((folder / "sweep.json").is_file() or is_universe(folder)):
        return "the sweep had not started: nothing was written"
    hint = f"python -m orchestrator.tune --resume --name {spec.name}"
    if spec.results_dir != _DEFAULTS["results_dir"]:
        hint += f" --results-dir {spec.results_dir}"
    return f"continue with: {hint}"


def _on_sigterm(signum, frame) -> None:
    """SIGTERM (timeout, schedulers, cloud shutdowns) stops a sweep the way Ctrl-C does."""
    _received.append(signum)
    signal.raise_signal(signal.SIGINT)


def main(argv: list[str] | None = None, *, fast_start: bool = False) -> int:
    """The command; ``fast_start`` (``python -m``: a process that ends with it): Ray starts
    beside the data and a data error exits without waiting for it (run_sweep)."""
    with command_line(signals=False):  # one-line data warnings; Ray Tune handles Ctrl-C
        return _main(argv, fast_start=fast_start)


def _main(argv: list[str] | None, *, fast_start: bool = False) -> int:
    if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, _on_sigterm)
    _received.clear()
    try:
        spec = parse_args(argv)
        promotion = promote_spec(argv, spec)  # bad promotion options fail before the sweep
        as_job = build_parser().parse_args(argv).job is not False
        head = head_for(spec.address) if as_job else None
        if head is not None:  # our persistent head: the sweep runs there as a Ray job
            return submit_sweep(sys.argv[1:] if argv is None else argv, spec, head)
        if spec.tickers is not None:
            return _universe(spec, promotion)
        outcome = run_sweep(spec, fast_start=fast_start)
        if outcome.first_failure:
            print(
                f"error: every trial of sweep {outcome.name!r} failed; the first: "
                f"{outcome.first_failure}",
                file=sys.stderr,
            )
            return 1
        if promotion is not None and outcome.interrupted:
            print("the sweep was interrupted: not promoting", file=sys.stderr)
        elif promotion is not None:
            # Promotion's modules (Ray Train, scikit-learn, statsmodels, matplotlib) load
            # only when it runs: a sweep alone starts seconds sooner without them.
            from orchestrator.promotion.run import promote

            promote(replace(promotion, name=outcome.name))
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return getattr(err, "exit_code", 2)  # a full disk once trials ran: 1
    except KeyboardInterrupt:
        what = "terminated" if _received else "interrupted"
        print(f"{what}; {_after_interrupt(spec if 'spec' in locals() else None)}", file=sys.stderr)
        return 128 + (_received[0] if _received else signal.SIGINT)
    if outcome.interrupted and not outcome.stopped_by_budget:
        return 128 + (_received[0] if _received else signal.SIGINT)
    return 0


def _universe(spec: SweepSpec, promotion: PromoteSpec | None) -> int:
    """A universe's run and its exit code: 1 when a ticker failed in training (every trial of
    it failed), 130/143 when interrupted (not by its time budget), else 0."""
    from orchestrator.universe.run import run_universe  # here: it loads MLflow (not before Ray)

    outcome = run_universe(spec)
    if outcome.failed:
        names = ", ".join(outcome.failed)
        print(
            f"error: {len(outcome.failed)} of {len(outcome.board)} tickers of universe "
            f"{outcome.name!r} failed in training ({names}); the others' results are written",
            file=sys.stderr,
        )
        return 1
    if outcome.interrupted and not outcome.stopped_by_budget:
        return 128 + (_received[0] if _received else signal.SIGINT)
    if promotion is not None and outcome.interrupted:
        print("the universe was interrupted: not promoting", file=sys.stderr)
    elif promotion is not None:
        from orchestrator.promotion.universe import promote_universe

        promote_universe(replace(promotion, name=outcome.name))
    return 0


if __name__ == "__main__":
    from orchestrator.runtime.ray_session import exit_without_teardown

    exit_without_teardown(main(fast_start=True))
