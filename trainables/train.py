"""Train one model on a chronological train / val / test split and save the run.

    python -m trainables.train                                   # built-in synthetic bars
    python -m trainables.train --data bars.csv --ticker AAPL --preset parameters
    python -m trainables.train --data-env BARS_DB --table vw_ticker_timeseries --ticker AAPL
    python -m trainables.train --config cfg.json --hidden_size 128 --epochs 50 --out runs/a

Trains on the train part, early-stops on val, reports metrics on the untouched test part.
Every TrainConfig parameter can be set as ``--name value`` (docs/parameters.md); settings
apply in the order preset < --config file < command line. A user error prints one line on
stderr and exits with code 2; the output directory appears only when the run is complete.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

from trainables.artifacts import save_run
from trainables.config import PRESETS, TrainConfig, parse_value
from trainables.dataset import prepare_fold
from trainables.errors import ConfigError, OrchestratorError
from trainables.labels import describe_targets
from trainables.sources import BarSource, add_source_arguments, read_bars, run_columns
from trainables.synthetic import make_bars
from trainables.table import build_table, holdout_split
from trainables.trainer import fit

__all__ = ["build_config", "main", "run"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line and exit 2 via main(), not argparse's usage dump
        raise ConfigError(message)


def _parser() -> _Parser:
    p = _Parser(
        prog="python -m trainables.train",
        description="Train one LSTM/GRU on a chronological train/val/test split.",
        epilog="Any training parameter: --NAME VALUE, e.g. --hidden_size 128 --f_cols open,close "
        f"--batch_size auto. Names: {', '.join(TrainConfig.field_names())}. See docs/parameters.md.",
        allow_abbrev=False,
    )
    p.add_argument(
        "--data",
        help="bars file (.csv or .parquet) or a database URL with --table/--query "
        "(postgresql://user@host/db, sqlite:///bars.db); default: built-in synthetic bars",
    )
    p.add_argument("--ticker", help="ticker to pick from multi-ticker data")
    add_source_arguments(p)
    p.add_argument(
        "--preset", choices=sorted(PRESETS), default="guide", help="defaults to start from"
    )
    p.add_argument("--config", help="JSON or YAML file of training parameters")
    p.add_argument("--out", help="run directory to create (default results/train/<ticker>-<time>)")
    return p


def _overrides(tokens: list[str]) -> dict:
    """``--name value`` / ``--name=value`` pairs -> {name: typed value}."""
    out, i = {}, 0
    while i < len(tokens):
        token = tokens[i]
        if not token.startswith("--") or token == "--":
            raise ConfigError(
                f"unexpected argument {token!r}; parameters are given as --name value"
            )
        key, eq, value = token[2:].partition("=")
        if not eq:
            if i + 1 >= len(tokens):
                raise ConfigError(f"--{key} needs a value")
            value, i = tokens[i + 1], i + 1
        name = key.replace("-", "_")
        out[name] = parse_value(name, value)
        i += 1
    return out


def _read_config_file(path: str) -> dict:
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as err:
        raise ConfigError(f"--config {path}: cannot read ({err.strerror})") from err
    try:
        if p.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except ValueError as err:  # json.JSONDecodeError and yaml.YAMLError are ValueErrors
        raise ConfigError(f"--config {path}: not valid JSON/YAML ({err})") from err
    if not isinstance(data, dict):
        raise ConfigError(f"--config {path}: expected a mapping of parameter: value")
    return data


def build_config(argv: list[str] | None = None) -> tuple[TrainConfig, argparse.Namespace]:
    """Preset, then the --config file, then --name value flags, validated once at the end."""
    opts, rest = _parser().parse_known_args(argv)
    cfg = PRESETS[opts.preset]
    if opts.config:
        cfg = cfg.replace(**_read_config_file(opts.config))
    flags = _overrides(rest)
    if opts.ticker is not None:
        flags["ticker"] = opts.ticker
    return cfg.replace(**flags), opts


def run(argv: list[str] | None = None, *, log=print) -> Path:
    """Everything ``main`` does, raising OrchestratorError instead of exiting."""
    cfg, opts = build_config(argv)
    source = BarSource(
        data=opts.data,
        data_env=opts.data_env,
        table=opts.table,
        query=opts.query,
        ticker=cfg.ticker,
        start=opts.start,
        end=opts.end,
        columns=run_columns(cfg.f_cols, [cfg.target_col]),
    )
    builtin = opts.data is None and opts.data_env is None
    name = cfg.ticker or ("synthetic" if builtin else _stem(opts))
    out = Path(opts.out or Path("results", "train", f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"))
    if out.exists():
        raise ConfigError(f"--out {out} already exists; choose a new directory")

    bars = make_bars() if builtin else read_bars(source)
    features, targets = build_table(bars, cfg)
    split = holdout_split(len(features), cfg)
    fold = prepare_fold(
        features,
        targets,
        split.train,
        split.val,
        f_cols=list(cfg.f_cols),
        seq_len=cfg.sequence_length,
        scaler=cfg.scaler,
    )
    source = "built-in synthetic bars" if builtin else source.describe()
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
        f"Model: {cfg.cell.upper()} hidden={cfg.hidden_size}, layers={cfg.num_layers}, seq_len={cfg.sequence_length}"
    )
    result = fit(cfg, fold, log=log)

    # Write beside the target and rename at the end: no half-written run directory.
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    try:
        save_run(tmp, result=result, cfg=cfg, fold=fold, index=features.index, test_idx=split.test)
        tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    log(_test_summary(out))
    log(
        f"Artifacts: {out}/ (model.pt, config.json, scaler.json, training_metrics.json, predictions.parquet)"
    )
    return out


def _stem(opts: argparse.Namespace) -> str:
    """A run folder's name for data without a ticker: the table, "query" or the file's stem."""
    if opts.table:
        return opts.table.replace('"', "").split(".")[-1]
    return "query" if opts.query else Path(opts.data or "data").stem


def _test_summary(out: Path) -> str:
    metrics = json.loads((out / "training_metrics.json").read_text()).get("test_metrics") or {}
    if "macro_f1" in metrics:
        return f"Test: accuracy {metrics['accuracy']:.4f}, macro F1 {metrics['macro_f1']:.4f}"
    parts = [
        f"{k} {metrics[k]:.6g}"
        for k in ("mse", "mae", "r2", "directional_accuracy")
        if k in metrics
    ]
    if "persistence_mse" in metrics:
        parts.append(
            f"persistence mse {metrics['persistence_mse']:.6g} (skill {metrics['skill']:+.4f})"
        )
    return "Test: " + ", ".join(parts)


def main(argv: list[str] | None = None) -> int:
    try:
        run(argv)
    except OrchestratorError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
