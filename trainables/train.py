"""Train one model on a chronological train / val / test split and save the run.

    python -m trainables.train                                   # built-in synthetic bars
    python -m trainables.train --data bars.csv --ticker AAPL --preset parameters
    python -m trainables.train --data-env BARS_DB --table vw_ticker_timeseries --ticker AAPL
    python -m trainables.train --config cfg.json --hidden_size 128 --epochs 50 --out runs/a

Trains on the train part, early-stops on val, reports metrics on the untouched test part.
Every TrainConfig parameter can be set as ``--name value`` (docs/parameters.md); settings
apply in the order preset < --config file < command line. Without ``--preset`` the preset
is ``guide`` with a CUDA device and ``cpu`` without one (printed first, kept in
config.json). A user error prints one line on stderr and exits with code 2; Ctrl-C
(SIGINT) and SIGTERM print one line and exit 130 and 143. The output directory appears only
when the run is complete: it is written under a temporary name and renamed at the end.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from trainables.artifacts import save_run
from trainables.atomic import partial_name
from trainables.bars.provenance import at_row, origin_of
from trainables.bars.sources import BarSource, add_source_arguments, read_bars, run_columns
from trainables.bars.synthetic import BUILTIN_SOURCE, make_bars
from trainables.cli import (
    ArgumentParser,
    bar_options,
    command_line,
    interrupt_exit_code,
    parse_value,
)
from trainables.disk import as_disk_error, check_writable
from trainables.errors import ConfigError, DataError, UserError
from trainables.parameters.fields import Spec, default_text, range_text
from trainables.parameters.presets import PRESETS
from trainables.parameters.train_config import (
    ALIASES,
    SECTIONS,
    TrainConfig,
    specs,
    unknown_parameter,
)
from trainables.parameters.values import read_mapping_file
from trainables.prep.dataset import Targets, prepare_fold_for
from trainables.prep.labels import describe_targets
from trainables.prep.model_table import build_table, holdout_split
from trainables.prep.naive import naive_forecast, naive_kind
from trainables.prep.splits import FinalSplit
from trainables.training.trainer import fit

__all__ = ["add_training_flags", "build_config", "default_preset", "main", "run"]


def default_preset() -> tuple[str, str]:
    """(preset, why) when none is given: the guide's model needs a GPU to train in minutes."""
    if torch.cuda.is_available():
        return "guide", "a CUDA device is present"
    return "cpu", "no CUDA device here; --preset guide trains the guide's full-size model"


def _parser() -> ArgumentParser:
    p = ArgumentParser(
        prog="python -m trainables.train",
        usage="%(prog)s [--data DATA] [--preset NAME] [--config FILE] [--out DIR] "
        "[--NAME VALUE ...]",
        description="Train one LSTM/GRU on a chronological train/val/test split.",
        epilog="Settings apply in the order --preset < --config file < flags; a flag may also "
        "be written --name=value or with dashes (--seq-len 30). See docs/parameters.md.",
        allow_abbrev=False,
    )
    p.add_argument(
        "--data",
        help="bars file (.csv or .parquet) or a database URL with --table/--query "
        "(postgresql://user@host/db, sqlite:///bars.db); default: built-in synthetic bars",
    )
    add_source_arguments(p)
    p.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default=None,
        help="defaults to start from (default: guide with a CUDA device, cpu without one)",
    )
    p.add_argument(
        "--config", help="JSON or YAML file of training parameters (name: value, as below)"
    )
    p.add_argument("--out", help="run directory to create (default results/train/<ticker>-<time>)")
    bar_options(p)
    add_training_flags(p)
    return p


def add_training_flags(p: argparse.ArgumentParser) -> None:
    """One ``--name VALUE`` flag per TrainConfig field, grouped as docs/parameters.md is,
    its help, range and defaults taken from the field; aliases work but stay out of --help.
    A flag not given is absent from the namespace (the preset or --config file decides)."""
    groups = {s: p.add_argument_group(f"training parameters: {s.lower()}") for s in SECTIONS}
    for name, spec in specs().items():
        group = groups[spec.param.section]
        group.add_argument(
            f"--{name}",
            type=partial(parse_value, name),
            default=argparse.SUPPRESS,
            metavar=_metavar(spec),
            help=_flag_help(spec),
        )
        for alias in spec.aliases:
            group.add_argument(
                f"--{alias}",
                type=partial(parse_value, alias),
                default=argparse.SUPPRESS,
                help=argparse.SUPPRESS,
            )


def _metavar(spec: Spec) -> str:
    if spec.param.choices:
        return "{" + ",".join(spec.param.choices) + "}"
    kinds = {bool: "{true,false}", int: "N", float: "X", tuple: "A,B,..."}
    text = kinds.get(spec.kind, "TEXT")
    return "|".join([text, *spec.param.words])


def _flag_help(spec: Spec) -> str:
    """``units per layer; takes integer in [1, 8192] (default: 256; cpu preset: 64)``."""
    p = spec.param
    text = p.help if p.choices or spec.kind is bool else f"{p.help}; takes {range_text(spec)}"
    notes = [f"default: {default_text(spec.default)}"]
    notes += [
        f"{name} preset: {default_text(getattr(cfg, spec.name))}"
        for name, cfg in PRESETS.items()
        if getattr(cfg, spec.name) != spec.default
    ]
    notes += [f"alias --{a}" for a in p.aliases]
    return f"{text} ({'; '.join(notes)})".replace("%", "%%")  # argparse formats help with %


def _underscored(argv: list[str]) -> list[str]:
    """``--seq-len`` -> ``--sequence_length``: a parameter's flag may be written with dashes."""
    known = {*specs(), *ALIASES}
    out = []
    for token in argv:
        name, eq, value = token[2:].partition("=")
        if token.startswith("--") and name.replace("-", "_") in known:
            token = f"--{name.replace('-', '_')}{eq}{value}"
        out.append(token)
    return out


def build_config(argv: list[str] | None = None) -> tuple[TrainConfig, argparse.Namespace]:
    """Preset, then the --config file, then --name value flags, validated once at the end.

    ``opts.preset`` is the preset used and ``opts.preset_reason`` why it was chosen.
    """
    argv = sys.argv[1:] if argv is None else argv
    opts, rest = _parser().parse_known_args(_underscored(argv))
    if rest:
        name = rest[0][2:].partition("=")[0].replace("-", "_")
        if rest[0].startswith("--") and name:
            raise ConfigError(unknown_parameter(name))
        raise ConfigError(f"unexpected argument {rest[0]!r}; parameters are given as --name value")
    if opts.preset is None:
        opts.preset, opts.preset_reason = default_preset()
    else:
        opts.preset_reason = "--preset"
    cfg = PRESETS[opts.preset]
    if opts.config:
        cfg = cfg.replace(**read_mapping_file(opts.config, what=f"--config {opts.config}"))
    flags = {k: v for k, v in vars(opts).items() if k in specs() or k in ALIASES}
    return cfg.replace(**flags), opts


def run(argv: list[str] | None = None, *, log=print) -> Path:
    """Everything ``main`` does, raising UserError instead of exiting."""
    cfg, opts = build_config(argv)
    log(f"Preset: {opts.preset} ({opts.preset_reason})")
    # The ticker is a training setting (a flag, a preset or --config), not only a flag.
    columns = run_columns(cfg.f_cols, [cfg.target_col])
    source = BarSource.from_flags(opts, ticker=cfg.ticker, columns=columns)
    builtin = opts.data is None and opts.data_env is None
    name = cfg.ticker or ("synthetic" if builtin else _stem(opts))
    out = Path(opts.out or Path("results", "train", f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"))
    if out.exists():
        raise ConfigError(f"--out {out} already exists; choose a new directory")
    check_writable(out.parent, what="--out")  # before the data are read or a model trains

    bars = make_bars() if builtin else read_bars(source)
    source = BUILTIN_SOURCE if builtin else source.describe()
    features, targets = build_table(bars, cfg)
    try:
        split = holdout_split(len(features), cfg)
    except DataError as err:  # too few rows: say which data
        raise DataError(
            f"{source}: {len(bars):,} bars ({len(features):,} feature rows after the warm-up)"
            f" are too few for the split: {err}"
        ) from err
    _check_naive_error(features, targets, split, source)
    fold = prepare_fold_for(cfg, features, targets, split.train, split.val)
    what = "down/flat/up" if cfg.task == "classification" else ", ".join(fold.target_names)
    log(
        f"Data: {source}: {len(bars):,} bars {bars.index[0]} .. {bars.index[-1]}; "
        f"train {len(split.train):,} / val {len(split.val):,} / test {len(split.test):,} samples "
        f"(purge {split.purge}, embargo {split.embargo}); predicting {what} "
        f"+{cfg.horizon} bar(s) ahead from {len(cfg.f_cols)} features"
    )
    if cfg.task == "classification":
        log(f"Classes (train): {describe_targets(targets, split.train)}")
    log(
        f"Model: {cfg.cell.upper()} hidden={cfg.hidden_size}, layers={cfg.num_layers}, sequence_length={cfg.sequence_length}"
    )
    if opts.preset in _GPU_PRESETS and not torch.cuda.is_available():
        log(
            f"warning: preset {opts.preset} is sized for a GPU ({cfg.num_layers}x"
            f"{cfg.hidden_size} {cfg.cell.upper()}, up to {cfg.epochs} epochs); on this CPU "
            "it is slow (an estimate follows epoch 1); --preset cpu is sized for a CPU"
        )
    result = fit(cfg, fold, log=log, on_epoch=_estimate(cfg, log))

    summary = _save(
        out,
        result=result,
        cfg=cfg,
        fold=fold,
        index=features.index,
        test_idx=split.test,
        meta=_origin(opts, bars, source),
    )
    log(summary)
    log(
        f"Artifacts: {out}/ (model.pt, config.json, scaler.json, training_metrics.json, predictions.parquet)"
    )
    return out


# Presets sized for a GPU (docs/parameters.md, "Presets"): a CPU gets a warning line.
_GPU_PRESETS = ("guide", "parameters")


def _estimate(cfg: TrainConfig, log):
    """An on_epoch callback that says, after epoch 1, how long the whole run may take."""

    def after(record) -> None:
        if record.epoch != 1 or cfg.epochs <= 1:
            return
        left = (cfg.epochs - 1) * record.seconds
        stop = (
            f"; early stopping after {cfg.patience} epochs without improvement may end it sooner"
            if cfg.patience
            else ""
        )
        log(
            f"Epoch 1 took {record.seconds:.1f}s: the other {cfg.epochs - 1} epochs take up to "
            f"~{_duration(left)} at this pace{stop}"
        )

    return after


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def _stem(opts: argparse.Namespace) -> str:
    """A run folder's name for data without a ticker: the table, "query" or the file's stem."""
    if opts.table:
        return opts.table.replace('"', "").split(".")[-1]
    return "query" if opts.query else Path(opts.data or "data").stem


def _origin(opts: argparse.Namespace, bars: pd.DataFrame, source: str) -> dict:
    """Where the run came from, for config.json: the preset and how the data were read."""
    origin = origin_of(bars)
    return {
        "preset": opts.preset,
        "preset_reason": opts.preset_reason,
        "data": source,
        "timestamps": origin.timestamps if origin else "naive (built-in data)",
        "timezone": opts.timezone,
        "dst": opts.dst,
        "max_jump": opts.max_jump,
    }


def _save(out: Path, **run_files) -> str:
    """Write the run beside ``out`` and rename it at the end: no half-written run folder,
    also after Ctrl-C or SIGTERM (they raise KeyboardInterrupt, see trainables.cli).
    Returns the test summary line."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = partial_name(out)
    try:
        save_run(tmp, **run_files)
        summary = _test_summary(tmp)
        tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return summary


def _check_naive_error(
    features: pd.DataFrame, targets: Targets, split: FinalSplit, source: str
) -> None:
    """A val or test part on which the naive forecast is exact cannot judge any model."""
    if targets.task != "regression":
        return
    now = features[list(targets.names)].to_numpy(dtype=np.float64)
    train_mean = targets.values[split.train].mean(axis=0)
    for part, idx in (("validation", split.val), ("test", split.test)):
        naive = naive_forecast(targets.names, now[idx], train_mean)
        mse = np.mean((targets.values[idx] - naive) ** 2, axis=0)
        zero = np.flatnonzero(mse == 0)
        if len(zero):
            target = targets.names[int(zero[0])]
            raise DataError(
                f"{source}: the {part} part ({len(idx):,} samples, {at_row(features, idx[0])}"
                f" to {at_row(features, idx[-1])}) has zero naive error for {target!r}"
                f" ({naive_kind(target)} is exact: the value does not change there), so no"
                " model can be judged on it; use bars where it moves, or other split fractions"
            )


def _fmt(value, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def _test_summary(out: Path) -> str:
    metrics = json.loads((out / "training_metrics.json").read_text()).get("test_metrics") or {}
    if "macro_f1" in metrics:
        return (
            f"Test: accuracy {_fmt(metrics['accuracy'], '.4f')},"
            f" macro F1 {_fmt(metrics['macro_f1'], '.4f')}"
        )
    parts = [
        f"{k} {_fmt(metrics[k], '.6g')}"
        for k in ("mse", "mae", "r2", "directional_accuracy")
        if k in metrics
    ]
    if "naive_mse" in metrics:
        # skill is against the naive forecast that fits the target (trainables.prep.naive):
        # persistence for a price level, the training mean for a return
        naive = " and ".join(dict.fromkeys(metrics.get("naive") or ["naive"]))
        parts.append(
            f"{naive} mse {_fmt(metrics['naive_mse'], '.6g')}"
            f" (skill {_fmt(metrics['skill'], '+.4f')})"
        )
    return "Test: " + ", ".join(parts)


def main(argv: list[str] | None = None) -> int:
    with command_line():
        try:
            run(argv)
        except UserError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        except OSError as err:  # the disk filled up while the run was saved
            disk = as_disk_error(err, where="--out", exit_code=1)
            if disk is None:
                raise
            print(f"error: {disk}", file=sys.stderr)
            return disk.exit_code
        except KeyboardInterrupt as err:
            print("interrupted: no run folder was written", file=sys.stderr)
            return interrupt_exit_code(err)
    return 0


if __name__ == "__main__":
    sys.exit(main())
