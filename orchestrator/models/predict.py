"""``python -m orchestrator.predict``: forecasts from a promoted model for new bars.

    python -m orchestrator.predict --model results/<name>/models/1 --data new.parquet --out p.parquet
    python -m orchestrator.predict --model results/<name>/models/1/seed0      # one seed
    python -m orchestrator.predict --model results/<name>/models/1            # built-in data
    python -m orchestrator.predict --model results/<name>/models/1 \
        --data-env BARS_DB --table vw_ticker_timeseries --ticker AAPL --start 2026-01-01
    python -m orchestrator.predict --name <universe> --data new.parquet    # every ticker's model
    python -m orchestrator.predict --name <universe> --ticker AAPL --data new.parquet

``--model`` is a seed folder (one saved run: that model) or a rank folder (``models/<rank>``:
the mean of its seeds' outputs, the promoted "seed ensemble"; class probabilities are
averaged, i.e. a soft vote). Each run uses its own saved scaler and settings. ``--data`` is a
file or a database URL (with ``--table``/``--query``, as for a sweep: trainables.bars.sources);
without it the built-in data of the sweep that made the model is used. Data lacking a column
the model was trained on is refused with one line naming the missing columns (exit 2).

Every bar that ends a full window gets a forecast for ``horizon`` bars later. Without
``--out`` the predictions are written to stdout as CSV; ``--out`` takes .parquet, .pq or
.csv and is written under a temporary name in the same folder, then renamed, so it is
either complete or absent. A NaN/inf forecast is never written: the run is refused (exit 2).
The data flags (--timezone, --dst, --max-jump) are those of the sweep (docs/data.md): give
the model's sweep's values for bars of the same kind.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from orchestrator.records.names import check_existing_name
from orchestrator.records.universe_record import is_universe
from trainables.artifacts import LoadedRun, load_run, predict
from trainables.atomic import write_file
from trainables.bars.files import REQUIRED_COLUMNS
from trainables.bars.provenance import at_row, source_of
from trainables.bars.sources import BarSource, add_source_arguments, read_bars
from trainables.bars.synthetic import BUILTIN_SOURCE, make_bars
from trainables.cli import ArgumentParser, bar_options, command_line, interrupt_exit_code
from trainables.disk import check_writable
from trainables.errors import ConfigError, DataError, UserError
from trainables.prep.features import FEATURES, build_features, warmup_rows

__all__ = ["OUT_SUFFIXES", "load_model", "main", "needed_columns", "predict_bars"]

OUT_SUFFIXES = (".parquet", ".pq", ".csv")


def load_model(path: str | Path) -> list[LoadedRun]:
    """The runs behind ``path``: one for a seed folder, every ``seed*`` run of a rank folder."""
    path = Path(path)
    if (path / "model.pt").is_file():
        return [load_run(path)]
    seeds = sorted(
        (d for d in path.glob("seed*") if (d / "model.pt").is_file()),
        key=lambda d: int(d.name.removeprefix("seed") or 0),
    )
    if not seeds:
        raise ConfigError(
            f"--model {path}: neither a saved run (no model.pt) nor a rank folder with seed*/ "
            f"runs; use results/<name>/models/<rank> or .../models/<rank>/seed<k>"
        )
    runs = [load_run(d) for d in seeds]
    first = runs[0]
    for run in runs[1:]:
        if (run.feature_names, run.target_names, run.task) != (
            first.feature_names,
            first.target_names,
            first.task,
        ):
            raise ConfigError(
                f"--model {path}: {run.path.name} predicts something else than {first.path.name}"
            )
    return runs


def needed_columns(runs: list[LoadedRun]) -> list[str]:
    """Bar columns the model's features are built from: OHLCV plus any custom input column."""
    cfg = runs[0].config
    names = [*runs[0].feature_names, *([cfg.target_col] if cfg.target_col else [])]
    return [*REQUIRED_COLUMNS, *dict.fromkeys(n for n in names if n not in FEATURES)]


def _file_columns(path: Path) -> list[str] | None:
    """The file's column names without reading it, or None if that cannot be done cheaply."""
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            names = pq.read_schema(path).names
        else:
            names = list(pd.read_csv(path, nrows=0).columns)
    except (OSError, ValueError):
        return None  # load_bars will say what is wrong with the file
    return [str(n).strip().lower() for n in names]


def _check_columns(path: Path, runs: list[LoadedRun], model: str) -> None:
    have = _file_columns(path)
    if have is None:
        return
    missing = [c for c in needed_columns(runs) if c not in have]
    if missing:
        raise DataError(
            f"{path}: missing column(s) {missing} that the model {model} was trained on "
            f"(it needs {needed_columns(runs)}; the file has {have})"
        )


def _builtin_bars(model: Path, runs: list[LoadedRun]) -> pd.DataFrame:
    """The sweep's built-in data: its n_bars and seed from sweep.json above the model (or
    the default series for a bare ``trainables.train`` run, whose config names it)."""
    for parent in [model, *model.resolve().parents][:4]:
        sweep = parent / "sweep.json"
        if sweep.is_file():
            spec = json.loads(sweep.read_text())
            if spec.get("data") or spec.get("data_env"):
                trained_on = spec.get("data") or f"${spec['data_env']}"
                raise ConfigError(
                    f"--model {model} was trained on {trained_on}, not the built-in data; "
                    f"pass --data (or --data-env)"
                )
            return make_bars(int(spec.get("n_bars", 4000)), seed=int(spec.get("seed", 0)))
    # No sweep above: a run of `python -m trainables.train`, whose config says what it read.
    trained_on = runs[0].info.get("origin", {}).get("data")
    if trained_on == BUILTIN_SOURCE:
        return make_bars()  # what a bare trainables.train run reads
    if trained_on is None:
        raise ConfigError(
            f"--model {model}: no sweep.json above it (moved out of its sweep?), so which "
            f"built-in bars it was trained on is unknown; pass --data, or give the model "
            f"inside its sweep's folder (results/<sweep>/models/...)"
        )
    raise ConfigError(f"--model {model} was trained on {trained_on}; pass --data (or --data-env)")


def predict_bars(runs: list[LoadedRun], bars: pd.DataFrame) -> pd.DataFrame:
    """Forecasts for every bar that ends a full window; several runs are averaged.

    Regression: ``predicted_<target>`` in original units (with several runs also
    ``predicted_<target>_std``, the spread over seeds); classification: ``p_down, p_flat,
    p_up`` and ``predicted`` (0 down, 1 flat, 2 up). Index: the bar's timestamp; the column
    ``target_timestamp`` is the bar forecast, when it lies inside ``bars``.
    """
    cfg = runs[0].config
    names = runs[0].feature_names
    extra = [cfg.target_col] if cfg.target_col else []
    features = build_features(bars, names, sma_window=cfg.sma_window, extra=extra)
    sequence_length = max(run.sequence_length for run in runs)
    if len(features) < sequence_length:
        warmup = warmup_rows([*names, *extra], sma_window=cfg.sma_window)
        raise DataError(
            f"{source_of(bars, 'the built-in data')}: {len(bars):,} bars give {len(features):,} feature"
            f" rows after the {warmup}-row warm-up, fewer than one window of sequence_length={sequence_length};"
            f" the model needs at least {sequence_length + warmup:,} bars"
        )
    frames = [predict(run, features) for run in runs]
    common = frames[0].index
    for f in frames[1:]:
        common = common.intersection(f.index)
    if runs[0].task == "classification":
        cols = ["p_down", "p_flat", "p_up"]
        proba = np.mean([f.loc[common, cols].to_numpy() for f in frames], axis=0)
        out = pd.DataFrame(proba, columns=cols, index=common)
        out["predicted"] = proba.argmax(axis=1)
    else:
        cols = [c for c in frames[0].columns if c.startswith("predicted_")]
        stack = np.stack([f.loc[common, cols].to_numpy() for f in frames])  # [runs, n, T]
        out = pd.DataFrame(stack.mean(axis=0), columns=cols, index=common)
        if len(frames) > 1:
            for k, c in enumerate(cols):
                out[f"{c}_std"] = stack[:, :, k].std(axis=0, ddof=1)
    h = runs[0].horizon
    rows = features.index.get_indexer(common) + h
    target = pd.Series(pd.NaT, index=common, dtype=features.index.dtype)
    inside = rows < len(features)
    target[inside] = features.index[rows[inside]]
    out.insert(0, "target_timestamp", target.to_numpy())
    out.index.name = "timestamp"
    _check_forecasts(out, features, bars, runs)
    return out


def _check_forecasts(
    out: pd.DataFrame, features: pd.DataFrame, bars: pd.DataFrame, runs: list[LoadedRun]
) -> None:
    """A NaN/inf forecast is refused, never written: broken weights or bars beyond the model."""
    values = out.drop(columns="target_timestamp").to_numpy(dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(values).all(axis=1))
    if len(bad):
        model = runs[0].path if len(runs) == 1 else runs[0].path.parent
        position = int(features.index.get_indexer(out.index[bad[:1]])[0])
        raise DataError(
            f"{model}: {len(bad):,} of {len(out):,} forecasts for"
            f" {source_of(bars, 'the built-in data')} are NaN/inf, first for"
            f" {at_row(features, position)}; refusing to write them (are the model's weights"
            " or these bars broken?)"
        )


def _parser() -> ArgumentParser:
    p = ArgumentParser(
        prog="python -m orchestrator.predict",
        description="Forecasts from a promoted model (a seed folder, or a rank folder: the "
        "mean of its seeds) for new bars, with the model's saved scaler and settings.",
    )
    p.add_argument("--model", help="results/<name>/models/<rank>[/seed<k>]")
    p.add_argument(
        "--name",
        help="instead of --model: a promoted sweep in --results-dir (its rank --rank), or a "
        "universe: every promoted ticker's model forecasts its own bars of --data (a long "
        "table with a ticker column), or only --ticker's (orchestrator/models/universe_predict.py)",
    )
    p.add_argument("--results-dir", default="results", help="with --name (default: %(default)s)")
    p.add_argument(
        "--rank", type=int, default=1, help="with --name: the promoted rank (default: %(default)s)"
    )
    p.add_argument(
        "--data",
        help="bars as CSV or Parquet, or a database URL with --table/--query "
        "(default: the sweep's built-in data)",
    )
    p.add_argument("--ticker", help="ticker to pick from multi-ticker data")
    add_source_arguments(p)
    p.add_argument("--out", help="write .parquet, .pq or .csv here (default: CSV on stdout)")
    bar_options(p)
    return p


def run(argv: list[str] | None = None, *, log=print) -> pd.DataFrame:
    """Everything ``main`` does, raising UserError instead of exiting."""
    args = _parser().parse_args(argv)
    out = Path(args.out) if args.out else None
    if out is not None and out.suffix.lower() not in OUT_SUFFIXES:
        raise ConfigError(
            f"--out {out}: unknown file type {out.suffix or '(no suffix)'!r}; use"
            f" {', '.join(OUT_SUFFIXES)}"
        )
    if out is not None and out.is_dir():
        raise ConfigError(f"--out {out} is a folder; name a file, e.g. {out}/predictions.parquet")
    if out is not None:
        check_writable(out.parent, what="--out")  # before the model and the bars are read
    if (args.model is None) == (args.name is None):
        raise ConfigError(
            "give --model (one promoted model) or --name (a promoted sweep, or a universe)"
        )
    if args.name is not None:
        check_existing_name(args.name)  # only folders of --results-dir
    if args.name is not None and is_universe(Path(args.results_dir) / args.name):
        preds = _universe(args, log)
        _emit(preds, out, log, what=f"universe {args.name}")
        return preds
    model = Path(args.model) if args.name is None else _sweep_model(args)
    if not model.exists():
        raise ConfigError(f"--model {model}: no such folder")
    runs = load_model(model)
    needed = tuple(c for c in needed_columns(runs) if c not in REQUIRED_COLUMNS)
    source = BarSource.from_flags(args, columns=needed)
    if source.is_database or args.data:
        if not source.is_database:
            _check_columns(Path(args.data), runs, str(model))
        bars = read_bars(source)
    else:
        bars = _builtin_bars(model, runs)
    preds = predict_bars(runs, bars)
    _emit(preds, out, log, what=f"{len(runs)} model(s)")
    return preds


def _sweep_model(args) -> Path:
    """--name of a single sweep: its promoted rank ``--rank`` (results/<name>/models/<rank>)."""
    folder = Path(args.results_dir) / args.name
    if not (folder / "sweep.json").is_file():
        raise ConfigError(
            f"--name {args.name}: no sweep or universe at {folder} (check --name and --results-dir)"
        )
    model = folder / "models" / str(args.rank)
    if not model.is_dir():
        raise ConfigError(
            f"sweep {args.name!r} has no promoted model at {model}: run python -m "
            f"orchestrator.promote --name {args.name}"
            + (f" --top-k {args.rank}" if args.rank > 1 else "")
            + " first"
        )
    return model


def _emit(preds: pd.DataFrame, out: Path | None, log, *, what: str) -> None:
    if out is not None:
        _write_atomic(preds, out)
        log(f"{len(preds):,} predictions from {what} -> {out}")
    else:
        preds.to_csv(sys.stdout)


def _universe(args, log) -> pd.DataFrame:
    """--name: a universe's promoted models (one ticker's with --ticker) on --data's bars."""
    from orchestrator.models.universe_predict import universe_models, universe_predictions

    models = universe_models(Path(args.results_dir) / args.name, rank=args.rank, ticker=args.ticker)
    if args.data is None and args.data_env is None:
        raise ConfigError(f"--name {args.name}: give the new bars with --data (or --data-env)")
    runs = {t: load_model(m) for t, m in models.items()}
    needed = tuple(
        dict.fromkeys(
            c for r in runs.values() for c in needed_columns(r) if c not in REQUIRED_COLUMNS
        )
    )
    if args.ticker is not None:  # one ticker: exactly what --model <its models/rank> gives
        source = BarSource.from_flags(args, columns=needed)
        (stored,) = runs  # the ticker as the universe stored it (--ticker may differ in case)
        return predict_bars(runs[stored], read_bars(source))
    source = BarSource.from_flags(args, ticker=None, columns=needed)
    return universe_predictions(runs, source, predict_one=predict_bars, log=log)


def _write_atomic(preds: pd.DataFrame, out: Path) -> None:
    """Write under a temporary name in the same folder, then rename: complete or absent."""

    def write(tmp: Path) -> None:
        if out.suffix.lower() == ".csv":
            preds.to_csv(tmp)
        else:
            preds.to_parquet(tmp)

    try:
        write_file(out, write)
    except OSError as err:  # a full disk, a read-only folder: the user's to fix
        raise ConfigError(f"--out {out}: cannot write ({err.strerror or err})") from err


def main(argv: list[str] | None = None) -> int:
    with command_line():
        try:
            run(argv, log=lambda msg: print(msg, file=sys.stderr))
        except UserError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        except KeyboardInterrupt as err:
            print("interrupted: no predictions were written", file=sys.stderr)
            return interrupt_exit_code(err)
        except BrokenPipeError:
            # `... | head` stopped reading: not an error; keep Python from complaining at exit.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


if __name__ == "__main__":
    sys.exit(main())
