"""``python -m orchestrator.promote``: the sweep's best configs become final models.

    python -m orchestrator.promote --name smoke-20261121-101500 --top-k 3 --seeds 3

For each of the top-k ranked trials of ``results/<name>/leaderboard.parquet``, once per seed:
train on the final split's train part, early-stopping on its val part (after the purge +
embargo gap), then refit from the same seed on train+validation for the best epoch count,
and evaluate once on the untouched test part against every baseline (the naive forecast and
ridge, or the majority class and logistic regression), with a significance test each, a
trading view and the CV score's optimism. All (rank, seed) jobs run inside ONE Ray Train
``TorchTrainer`` (``--workers`` DDP workers, a GPU each when the cluster has them), so
workers start once (``orchestrator.promotion.retrain``).

Writes ``results/<name>/models/<rank>/seed<k>/`` (model.pt, config.json, scaler.json,
training_metrics.json, predictions.parquet), ``models/<rank>/predictions.parquet`` (the seed
ensemble), ``trading.parquet``, ``promoted.json``, ``report.html`` and ``report.md``, and
logs the chosen model (rank 1's seed ensemble) with its verdict to MLflow and its registry.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import time
from pathlib import Path

import pandas as pd
import ray

from orchestrator.models.registry import log_final_model, registry_line
from orchestrator.promotion.baselines import baseline_forecasts, baseline_scores, fit_baselines
from orchestrator.promotion.evaluation import evaluate_runs
from orchestrator.promotion.holdout import (
    HoldoutGuard,
    jsonable,
    load_holdout,
    read_sweep,
    top_configs,
    write_json,
)
from orchestrator.promotion.report import summary_lines, write_report
from orchestrator.promotion.retrain import train_all
from orchestrator.promotion.spec import PromoteSpec
from orchestrator.records.folder_lock import FolderLock
from orchestrator.records.leaderboard import read_leaderboard
from orchestrator.records.names import check_existing_name
from orchestrator.records.universe_record import is_universe
from orchestrator.stats.overfitting import cv_vs_test, pbo_of_sweep
from orchestrator.stats.trading import bars_per_year, trading_view
from orchestrator.tracking.sweep_runs import default_tracking_uri
from trainables.atomic import replace_folder
from trainables.cli import ArgumentParser, command_line, interrupt_exit_code, setting
from trainables.disk import as_disk_error, check_writable
from trainables.errors import ConfigError, TrainingError, UserError

__all__ = ["EXPERIMENT", "PromoteSpec", "main", "promote"]


def _start_ray(spec: PromoteSpec, sweep: dict, log) -> bool:
    if ray.is_initialized():
        return False
    address = spec.address or sweep.get("address")
    if address:
        ray.init(address=address, log_to_driver=False)  # retrain.py relays our lines
    else:
        # "local": our own Ray even where `ray start` runs one (see orchestrator/sweep/run.py).
        # With its dashboard (on a free port, this machine only): Ray Train's placement-group
        # cleaner asks Ray's State API, which that dashboard serves; without one, the API's
        # address is 8265, which may be another Ray's (its token refused: tracebacks).
        # No worker output reaches the terminal (their core workers' warnings stay in Ray's
        # log files); retrain.py relays our own progress lines.
        ray.init(
            address="local",
            num_cpus=spec.num_cpus or os.cpu_count(),
            include_dashboard=True,
            dashboard_host="127.0.0.1",
            logging_level=logging.WARNING,
            logging_config=ray.LoggingConfig(log_level="ERROR"),
            log_to_driver=False,
        )
    log(f"Ray: {ray.cluster_resources().get('CPU', 0):.0f} CPUs")
    return True


# ---------------------------------------------------------------------- MLflow

# The sweep's experiment (orchestrator.sweep.run logs there); the promoted run is a child of the
# sweep's parent run.
EXPERIMENT = "lstm-sweeps"


def promote(spec: PromoteSpec, *, log=print) -> dict:
    """Run a promotion; returns the ``promoted.json`` index (also written to disk)."""
    start = time.perf_counter()
    check_existing_name(spec.name)  # an older sweep's name may break today's rule for new ones
    out_dir = Path(spec.results_dir) / spec.name
    sweep = read_sweep(out_dir)
    check_writable(out_dir, what="the sweep's folder")  # models/, promoted.json, the report
    # The sweep's folder is ours until the promotion ends: not while a sweep or another
    # promotion writes there (orchestrator/records/folder_lock.py).
    with FolderLock(out_dir, purpose="promotion"):
        return _promote(spec, out_dir, sweep, start, log)


def earlier_promotions(out_dir: Path) -> list[dict]:
    """Each earlier promotion of the sweep (each read its test part): when, what it promoted
    and its verdict, from the promoted.json it left (which lists those before it)."""
    path = out_dir / "promoted.json"
    if not path.is_file():
        return []
    try:
        last = json.loads(path.read_text())
        chosen = last.get("chosen", {})
        entry = {
            "created": str(last["created"]),
            "top_k": last.get("top_k"),
            "seeds": last.get("seeds"),
            "settings": last.get("settings", {}),
            "chosen": chosen.get("path"),
            "verdict": chosen.get("verdict"),
        }
        return [*last.get("earlier_promotions", []), entry]
    except (ValueError, KeyError, TypeError, AttributeError):  # damaged: still a read
        return [{"created": "unknown (promoted.json unreadable)", "verdict": None}]


def _promote(spec: PromoteSpec, out_dir: Path, sweep: dict, start: float, log) -> dict:
    data = load_holdout(out_dir, sweep=sweep, data=spec.data, data_env=spec.data_env)
    board = read_leaderboard(out_dir)
    settings = {**spec.overrides, **({"epochs": spec.epochs} if spec.epochs else {})}
    picks = _picks(board, data, spec, settings, log)
    earlier = earlier_promotions(out_dir)
    if earlier:
        when = ", ".join(e["created"].replace("T", " ") for e in earlier)
        log(
            f"warning: the test part of sweep {spec.name!r} was read before, by "
            f"{len(earlier)} earlier promotion(s) ({when}): this verdict is not a first "
            f"read of it, and keeping whichever promotion reads best overstates it "
            f"(promoted.json lists them under earlier_promotions)"
        )
    guard = HoldoutGuard(data)
    table = guard.training_table()
    log(
        f"Promoting the top {len(picks)} of sweep {spec.name!r} x {spec.seeds} seeds on "
        f"{data.source}: {len(table.fit_idx):,} training and {len(table.stop_idx):,} "
        f"early-stopping samples, then a refit on all {len(table.refit_idx):,} "
        f"train+validation samples, from rows 0..{table.n_rows - 1}; the test part "
        f"({len(data.split.test):,} samples from row {data.test_first_row}) stays closed"
    )
    baseline_models = fit_baselines(table, picks[0].cfg)
    staging = out_dir / f".models-partial-{os.getpid()}"
    try:
        jobs, train_wall = _train(spec, sweep, picks, table, staging, log)
        # Training is over: only now does the test part open.
        guard.finish_training()
        # The calendar of the whole table (timestamps only): how many bars a year holds.
        periods = bars_per_year(data.features.index)
        judged = _judge_test_part(
            guard.test_part(), picks, jobs, staging, baseline_models, spec, periods
        )
        # The previous models/ stays until the new one is in place (trainables.atomic).
        replace_folder(staging, out_dir / "models")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    result, baselines, chosen, trading, per_bar = judged
    _write_trading(out_dir, per_bar)
    index = {
        "sweep": spec.name,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "task": data.base.task,
        "objective": sweep.get("objective"),
        "top_k": spec.top_k,
        "seeds": spec.seeds,
        "workers": spec.workers,
        "settings": settings,
        "data": data.summary(),
        "holdout_guard": {**guard.to_dict(), "test_reads_by_promotions": len(earlier) + 1},
        "earlier_promotions": earlier,
        "audit": data.audit().to_dict(orient="records"),
        **result,
        "baselines": baselines,
        "chosen": _chosen_entry(chosen),
        "cv_optimism": {
            **cv_vs_test(board, chosen, data.base.task),
            "pbo": pbo_of_sweep(out_dir, data.base.task),
        },
        "trading": trading,
        "timings": {"train_wall_seconds": train_wall},
    }
    return _publish(spec, sweep, out_dir, index, chosen, start, log)


def _picks(board, data, spec: PromoteSpec, settings: dict, log) -> list:
    picks = top_configs(board, data.base, top_k=spec.top_k, settings=settings)
    if not picks:
        raise ConfigError(f"sweep {spec.name!r} has no completed trial to promote")
    if len(picks) < spec.top_k:
        log(
            f"The sweep has {len(picks)} completed trial(s); promoting those (--top-k {spec.top_k})"
        )
    return picks


def _train(spec: PromoteSpec, sweep: dict, picks, table, staging: Path, log):
    """Every (rank, seed) model, on a Ray that is shut down again before the test part opens;
    returns (job summaries, training seconds)."""
    storage = sweep.get("storage")
    out_dir = Path(spec.results_dir) / spec.name
    storage = f"{storage.rstrip('/')}/{spec.name}" if storage else str(out_dir.resolve())
    started = _start_ray(spec, sweep, log)
    try:
        t0 = time.perf_counter()
        jobs = train_all(
            picks,
            table,
            seeds=spec.seeds,
            workers=spec.workers,
            cpus_per_worker=spec.cpus_per_worker,
            models_dir=staging,
            storage=storage,
            log=log,
        )
        train_wall = time.perf_counter() - t0
    finally:
        if started:
            ray.shutdown()
    for j in jobs:
        if j["status"] == "failed":
            log(f"rank {j['rank']} seed {j['seed']} failed: {j['reason']}")
    if not any(j["status"] == "ok" for j in jobs):
        raise TrainingError("every promoted model failed to train; see the lines above")
    return jobs, train_wall


def _chosen_entry(chosen: dict) -> dict:
    return {
        "rank": chosen["rank"],
        "kind": "seed ensemble (mean of the rank's seeds)",
        "path": chosen["path"],
        "test": chosen["ensemble_test"],
        "comparisons": chosen["comparisons"],
        "verdict": chosen["verdict"],
        "iu_p": chosen["iu_p"],  # the verdict's intersection-union p-value
    }


def _publish(spec: PromoteSpec, sweep: dict, out_dir: Path, index: dict, chosen, start, log):
    """promoted.json, the MLflow run and registered model, the report and the summary lines."""
    write_json(out_dir / "promoted.json", index)
    index["chosen"]["mlflow"] = log_final_model(
        spec.mlflow_uri or sweep.get("mlflow_uri") or default_tracking_uri(Path(spec.results_dir)),
        experiment=EXPERIMENT,
        # a universe's ticker: its sweep's run is "<universe>/<ticker>" (orchestrator/universe/run.py)
        sweep_name=sweep.get("mlflow_run") or spec.name,
        registered_name=spec.registered_name or f"lstm-{spec.name}",
        model_dir=out_dir / chosen["path"],
        index=index,
        sweep=sweep,
        register=spec.register,
        log=log,
    )
    index["timings"]["total_seconds"] = time.perf_counter() - start
    index = jsonable(index)  # what promoted.json holds: plain JSON values
    write_json(out_dir / "promoted.json", index)
    if spec.report:
        html, md = write_report(out_dir)
        log(f"Report: {html} ({md.name})")
    for line in summary_lines(index):
        log(line)
    log(f"Results: {out_dir}/ (models/, promoted.json, report.html, report.md)")
    log(registry_line(index["chosen"]["mlflow"], index["chosen"]))
    return index


def _judge_test_part(test, picks, jobs, models_dir, baseline_models, spec: PromoteSpec, periods):
    """Everything read on the test part: (models and ensembles with their comparisons and
    verdicts, baseline scores, the chosen model, the trading block, its per-bar frame)."""
    forecasts = baseline_forecasts(baseline_models, test)
    baselines = baseline_scores(forecasts, baseline_models, test)
    result, outputs = evaluate_runs(picks, jobs, models_dir, test, forecasts)
    # Chosen by the sweep's CV rank, never by test scores: picking on the test part would
    # make the reported test numbers optimistic.
    chosen = next(m for m in result["models"] if "ensemble_test" in m)
    trading, per_bar = trading_view(
        test,
        outputs[chosen["rank"]],
        forecasts,
        baselines,
        cost_bps=spec.cost_bps,
        periods=periods,
    )
    return result, baselines, chosen, trading, per_bar


def _write_trading(out_dir: Path, per_bar: pd.DataFrame | None) -> None:
    """trading.parquet: per test bar, positions and net returns (the report's equity curves)."""
    path = out_dir / "trading.parquet"
    if per_bar is None:
        path.unlink(missing_ok=True)  # a stale file from an earlier promotion would mislead
        return
    tmp = path.with_name(f".{path.name}.tmp")
    per_bar.to_parquet(tmp, index=False)
    os.replace(tmp, path)


# ---------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    d = PromoteSpec("x")
    p = ArgumentParser(  # its errors are one line (ConfigError), not the whole usage
        prog="python -m orchestrator.promote",
        description="Retrain a sweep's best configs (early stopping on validation, then a "
        "refit on train+validation; several seeds, Ray Train), judge them once on the "
        "untouched test part against every baseline with significance tests, save, "
        "register and report them. See docs/promotion.md.",
    )
    p.add_argument(
        "--name",
        required=True,
        help="the sweep's name (a folder in --results-dir), or a universe's: then every ticker "
        "is promoted and the universe's verdict controls the false discovery rate",
    )
    p.add_argument(
        "--ticker", help="with a universe's --name: promote this ticker only (default: all)"
    )
    p.add_argument("--results-dir", default=d.results_dir, help="default: %(default)s")
    p.add_argument("--top-k", type=int, default=d.top_k, help="configs (default: %(default)s)")
    p.add_argument("--seeds", type=int, default=d.seeds, help="per config (default: %(default)s)")
    p.add_argument(
        "--workers", type=int, default=d.workers, help="DDP workers (default: %(default)s)"
    )
    p.add_argument(
        "--cpus-per-worker", type=int, default=d.cpus_per_worker, help="default: %(default)s"
    )
    p.add_argument("--epochs", type=int, help="max epochs (default: the trial's)")
    p.add_argument("--num-cpus", type=int, help="CPUs for a local Ray (default: all)")
    p.add_argument("--address", help="Ray cluster to attach to (default: the sweep's)")
    p.add_argument("--mlflow-uri", help="tracking store (default: the sweep's)")
    p.add_argument("--registered-name", help="model registry name (default: lstm-<name>)")
    p.add_argument(
        "--cost-bps",
        type=float,
        default=d.cost_bps,
        help="trading view: cost per unit of turnover in basis points (default: %(default)s)",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        type=setting,  # read as orchestrator.tune --set and trainables.train read it
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a training setting for every promoted model, e.g. --set patience=10 "
        "(not the data settings: those stay the sweep's)",
    )
    p.add_argument("--no-report", dest="report", action="store_false")
    p.add_argument(
        "--no-register",
        dest="register",
        action="store_false",
        help="log the MLflow run and model, but register no version (default: register)",
    )
    p.add_argument(
        "--data",
        help="the sweep's database URL with its password, when PGPASSWORD/~/.pgpass do not "
        "hold it (sweep.json keeps the URL without it); the rows must hash as the sweep's",
    )
    p.add_argument(
        "--data-env",
        metavar="VAR",
        help="the same, from an environment variable (default: the sweep's --data-env)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    with command_line(signals=False):
        try:
            args = vars(build_parser().parse_args(argv))
            args["overrides"] = dict(args["overrides"])
            ticker = args.pop("ticker")
            spec = PromoteSpec(**args)
            if is_universe(Path(spec.results_dir) / spec.name):
                from orchestrator.promotion.universe import promote_universe

                promote_universe(spec, ticker=ticker)
            elif ticker is not None:
                raise ConfigError(
                    f"--ticker is for a universe's promotion; {spec.name!r} is a single sweep "
                    "(its ticker is the one it was swept on)"
                )
            else:
                promote(spec)
        except UserError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        except Exception as err:  # a disk that filled up while models were written
            where = Path(args["results_dir"]) / args["name"]
            disk = as_disk_error(err, where=str(where), exit_code=1)
            if disk is None:
                raise
            print(f"error: {disk}", file=sys.stderr)
            return disk.exit_code
        except KeyboardInterrupt as err:
            print(
                "interrupted: no models were written (the staging folder is removed)",
                file=sys.stderr,
            )
            return interrupt_exit_code(err)
    return 0


if __name__ == "__main__":
    sys.exit(main())
