"""``python -m orchestrator.promote --name <universe> [--ticker T]``: a universe's promotion.

Each ticker is promoted exactly as a single sweep is (``orchestrator.promotion.run.promote`` on its
folder: its best configs retrained, its own holdout guard, its own test part read once,
every baseline with its test, its report and registered model ``lstm-<universe>-<folder>``),
one after another on one Ray. Then the universe's verdict: each ticker's
intersection-union p-value through Benjamini-Yekutieli (orchestrator/stats/fdr.py), "k of N tickers
beat the baselines at FDR 10%", the winners named, and a universe report
(``universe_report.html`` / ``.md``: one row per ticker with its verdict against every
baseline, its skill with its interval, and a plot of the skills across tickers) beside
``universe_promoted.json``.

The family is every ticker the universe swept (not those refused before any work): a ticker
that could not be promoted (no completed trial, or its promotion failed) counts as tested
and not a winner (p = 1), so skipping a ticker never makes the others look better.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import ray

from orchestrator.models.universe_registry import alias_line, settle_aliases
from orchestrator.promotion.holdout import read_sweep, write_json
from orchestrator.promotion.run import PromoteSpec, _start_ray, promote
from orchestrator.promotion.universe_report import write_universe_report
from orchestrator.records.folder_lock import FolderLock
from orchestrator.records.tickers import TICKERS_DIR, member_ticker, ticker_dir
from orchestrator.records.universe_record import read_universe_record
from orchestrator.stats.fdr import FDR_LEVEL, METHOD_NAME, WHY, adjust, iu_p_of
from orchestrator.stats.verdicts import fmt_p
from orchestrator.tracking.sweep_runs import SweepTracker, default_tracking_uri
from trainables.errors import ConfigError, UserError

__all__ = ["UNIVERSE_PROMOTED", "promote_universe", "universe_verdict"]

UNIVERSE_PROMOTED = "universe_promoted.json"
_SWEPT = ("finished", "interrupted", "failed")  # ran trials: part of the family


def promote_universe(spec: PromoteSpec, *, ticker: str | None = None, log=print) -> dict:
    """Promote every swept ticker of universe ``spec.name`` (or only ``ticker``), then write
    the universe's verdict over every ticker promoted so far; returns it."""
    out_dir = Path(spec.results_dir) / spec.name
    record = read_universe_record(out_dir)
    members = record["members"]
    swept = [t for t, m in members.items() if m["status"] in _SWEPT]
    if ticker is not None:
        ticker = member_ticker(members, ticker, universe=spec.name)
    if ticker is not None and ticker not in swept:
        raise ConfigError(
            f"--ticker {ticker!r} of universe {spec.name!r} has no trials to promote "
            f"(status {members[ticker]['status']})"
        )
    with FolderLock(out_dir, purpose="universe promotion"):
        sweep = read_sweep(ticker_dir(out_dir, swept[0])) if swept else {}
        started = _start_ray(spec, sweep, log) if swept else False
        try:
            for name in [ticker] if ticker is not None else swept:
                _promote_ticker(spec, out_dir, name, members[name], log)
        finally:
            if started:
                ray.shutdown()
        verdict = universe_verdict(out_dir, record)
        _settle(spec, record, verdict, log)
        write_json(out_dir / UNIVERSE_PROMOTED, verdict)
        html, md = write_universe_report(out_dir, verdict)
    _track(spec, record, verdict, log)
    for line in verdict_lines(verdict):
        log(line)
    log(f"Universe report: {html} ({md.name}); {out_dir / UNIVERSE_PROMOTED}")
    return verdict


def _promote_ticker(spec: PromoteSpec, out_dir: Path, ticker: str, member: dict, log) -> None:
    folder = member["folder"]
    one = replace(
        spec,
        name=folder,
        results_dir=str(out_dir / TICKERS_DIR),
        # one registered model per ticker: a shared name would pass champion between them
        registered_name=f"{spec.registered_name or 'lstm-' + spec.name}-{folder}",
    )
    log(f"--- {ticker}: promotion of {out_dir / TICKERS_DIR / folder}")
    try:
        promote(
            one, log=lambda text: log("\n".join(f"{ticker}: {ln}" for ln in str(text).splitlines()))
        )
    except UserError as err:  # its own line; the other tickers are promoted
        log(f"{ticker}: not promoted: {err}")


def universe_verdict(out_dir: Path, record: dict) -> dict:
    """Every swept ticker's verdict (from its promoted.json) and the FDR across them."""
    rows = {}
    for ticker, member in record["members"].items():
        if member["status"] not in _SWEPT:
            continue
        rows[ticker] = _ticker_entry(ticker_dir(out_dir, ticker) / "promoted.json")
    adjusted = adjust({t: r.get("iu_p") for t, r in rows.items()})
    for ticker, row in rows.items():
        row.update(adjusted[ticker])
    winners = [t for t, r in rows.items() if r["winner"]]
    return {
        "universe": record["name"],
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "fdr": {
            "method": METHOD_NAME,
            "why": WHY,
            "level": FDR_LEVEL,
            "family": len(rows),
            "promoted": sum(r["status"] == "promoted" for r in rows.values()),
            "winners": winners,
        },
        "headline": headline(len(winners), len(rows)),
        "tickers": rows,
        "refused": {
            t: m.get("reason") for t, m in record["members"].items() if m["status"] == "refused"
        },
    }


def _ticker_entry(path: Path) -> dict:
    """What the universe keeps of one ticker's promotion (or why there is none)."""
    if not path.is_file():
        return {"status": "not promoted", "iu_p": None, "reason": "no promotion (yet)"}
    index = json.loads(path.read_text())
    chosen = index["chosen"]
    deciding = [c for c in chosen["comparisons"] if c.get("decides")]
    return {
        "status": "promoted",
        "path": str(path.parent.name),
        "verdict": chosen["verdict"]
        if isinstance(chosen["verdict"], str)
        else chosen["verdict"].get("text"),
        "beats": all(c["outcome"] == "better" for c in deciding) and bool(deciding),
        "iu_p": iu_p_of(index),
        "comparisons": [
            {
                k: c.get(k)
                for k in (
                    "baseline",
                    "measure",
                    "estimate",
                    "ci_low",
                    "ci_high",
                    "p_value",
                    "outcome",
                )
            }
            for c in deciding
        ],
        "test": chosen.get("test", {}),
        "mlflow": chosen.get("mlflow"),  # its registered version, if any
        "n_test": index.get("data", {}).get("n_test"),
    }


def headline(winners: int, family: int) -> str:
    return (
        f"{winners} of {family} tickers beat the baselines at FDR {FDR_LEVEL:.0%} "
        f"({METHOD_NAME} over the tickers' intersection-union p-values)"
    )


def verdict_lines(verdict: dict) -> list[str]:
    lines = [verdict["headline"] + ":"]
    for ticker, row in verdict["tickers"].items():
        if row["status"] != "promoted":
            lines.append(f"  {ticker}: not promoted ({row.get('reason')}); counted as not a winner")
            continue
        mark = (
            "WINNER"
            if row["winner"]
            else ("beats alone, not after the adjustment" if row["beats"] else "does not beat")
        )
        lines.append(
            f"  {ticker}: {mark}; intersection-union {fmt_p(row['iu_p'])}, adjusted "
            f"{fmt_p(row['adjusted_p'])}"
        )
        demoted = alias_line(ticker, row, row.get("alias"))
        if demoted:
            lines.append(demoted)
    return lines


def _tracking_uri(spec: PromoteSpec, record: dict) -> str:
    return (
        spec.mlflow_uri or record.get("mlflow_uri") or default_tracking_uri(Path(spec.results_dir))
    )


def _settle(spec: PromoteSpec, record: dict, verdict: dict, log) -> None:
    """Champion only for the FDR's winners (orchestrator/models/universe_registry.py)."""
    aliases = settle_aliases(_tracking_uri(spec, record), verdict, log=log)
    for ticker, row in verdict["tickers"].items():
        if ticker in aliases:
            row["alias"] = aliases[ticker]


def _track(spec: PromoteSpec, record: dict, verdict: dict, log) -> None:
    """The universe's MLflow run gets the verdict's numbers (never fails the promotion)."""
    uri = _tracking_uri(spec, record)
    metrics = {
        "fdr_winners": float(len(verdict["fdr"]["winners"])),
        "fdr_family": float(verdict["fdr"]["family"]),
    }
    with SweepTracker(
        uri, experiment="lstm-sweeps", run_name=record["name"], params={}, resume=True, log=log
    ) as tracker:
        tracker.log_summary(metrics, [Path(spec.results_dir) / spec.name / UNIVERSE_PROMOTED])
