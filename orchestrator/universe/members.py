"""A universe's tickers before the run: each one's bars, data, folds and records.

``prepare_members`` reads every ticker once (trainables/bars/universe.py) and prepares each
as a single-ticker sweep of it would (``orchestrator.sweep.run``'s data step: features, targets,
the holdout cut, the CV folds and their checks), with the ticker's own spec: ``ticker`` set,
its own seed (orchestrator/records/tickers.py), its folder as its name. A ticker refused on the way
(too few bars, a flat stretch, a bad value) is kept with its line; the others go on.

``open_records`` writes ``universe.json`` and each ticker's ``sweep.json`` (what a sweep of
that ticker alone would write, plus the universe it belongs to), the universe's first
write, under its folder lock. On ``--resume`` both are read back: a ticker keeps the rows it
started on (cut at its recorded last bar, or its snapshot) and its fingerprint must match.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd

from orchestrator.records.state_seal import resealed
from orchestrator.records.sweep_record import (
    RUNTIME,
    SweepRecord,
    absolute_data,
    read_record,
    refuse_existing,
    resume_hint,
)
from orchestrator.records.tickers import parse_tickers, ticker_dir, ticker_seed
from orchestrator.records.universe_record import UniverseRecord
from orchestrator.stats.objective import objective_of
from orchestrator.sweep.cv_baselines import cv_baselines
from orchestrator.sweep.data_source import (
    SNAPSHOT,
    bar_source,
    checks_of,
    data_record,
    sweep_columns,
    write_snapshot,
)
from orchestrator.sweep.prepare import SweepData
from orchestrator.sweep.run import sweep_data_for
from orchestrator.sweep.spaces import space_to_dict
from orchestrator.sweep.spec import SweepSpec, base_config
from orchestrator.sweep.tuner import experiment_path
from trainables.bars.files import bars_fingerprint, load_bars
from trainables.bars.sources import public_url
from trainables.bars.universe import read_universe
from trainables.errors import ConfigError, UserError
from trainables.parameters.train_config import TrainConfig

__all__ = ["DONE", "Baselines", "Member", "open_records", "prepare_members", "ticker_spec"]

DONE = ("finished", "failed")  # a ticker in one of these has run every trial


@dataclass
class Member:
    """One ticker of a universe that runs."""

    ticker: str
    folder: Path  # results/<universe>/tickers/<folder>/
    universe_dir: Path
    spec: SweepSpec  # the ticker's single-sweep spec
    base: TrainConfig
    kept: dict  # what its sweep.json keeps of its data (data, end, data_fingerprint)
    summary: str  # the data line
    n_folds: int
    test_first_row: int
    timestamps: str
    data: SweepData | None = None  # on the driver until it is put in the object store
    ref: object = None  # the ObjectRef of ``data``
    baselines: list = field(default_factory=list)
    record: SweepRecord | None = None
    bars: pd.DataFrame | None = None  # kept for --snapshot until the record is written


def ticker_spec(spec: SweepSpec, ticker: str, out_dir: Path, tracking_uri: str) -> SweepSpec:
    """The spec of a single-ticker sweep of ``ticker`` with the universe's settings: its own
    seed, its folder as name, the universe's MLflow store."""
    folder = ticker_dir(out_dir, ticker)
    return replace(
        spec,
        ticker=ticker,
        tickers=None,
        seed=ticker_seed(spec.seed, ticker),
        name=folder.name,
        results_dir=str(folder.parent),
        mlflow_uri=tracking_uri,
    )


def prepare_members(
    spec: SweepSpec, space, base, out_dir: Path, previous: dict | None, tracking_uri: str
) -> tuple[dict[str, Member], dict[str, str]]:
    """(ticker -> Member, ticker -> why refused), in the universe's order (module doc)."""
    source = bar_source(spec, columns=sweep_columns(space, base))
    refused: dict[str, str] = {}
    if previous is None:
        wanted = parse_tickers(spec.tickers)
    else:
        kept = previous["members"]
        refused = {t: m.get("reason", "") for t, m in kept.items() if m["status"] == "refused"}
        # finished tickers are left alone: not read, not prepared, their files untouched
        wanted = [t for t, m in kept.items() if m["status"] not in ("refused", *DONE)]
        ends = [pd.Timestamp(kept[t]["end"]) for t in wanted if kept[t].get("end")]
        if ends and source is not None:  # the rows the tickers started on, none later
            source = replace(source, end=max(ends).isoformat())
        if not wanted:  # every ticker has run all its trials: nothing to read
            return {}, refused
    read = read_universe(source, wanted)
    refused.update(read.refused)
    members = {}
    for ticker, bars in read.bars.items():
        try:
            members[ticker] = _member(spec, space, out_dir, ticker, bars, previous, tracking_uri)
        except UserError as err:
            if previous is not None:  # a ticker that ran must go on with its own rows
                raise ConfigError(f"ticker {ticker!r}: {err}") from None
            refused[ticker] = str(err)
    if previous is not None:
        lost = [t for t in wanted if t not in members]
        if lost:
            raise ConfigError(
                f"--resume: ticker {lost[0]!r} of universe {previous.get('name')!r} cannot be "
                f"read again: {refused.get(lost[0], 'no rows')}"
            )
    return members, refused


def _member(spec, space, out_dir, ticker, bars, previous, tracking_uri) -> Member:
    spec_t = ticker_spec(spec, ticker, out_dir, tracking_uri)
    base_t = base_config(spec_t, space)
    folder = ticker_dir(out_dir, ticker)
    if previous is not None:
        bars = _resumed_bars(previous["members"][ticker], folder, bars, ticker, spec)
    data = sweep_data_for(spec_t, space, base_t, bars)
    return Member(
        ticker=ticker,
        folder=folder,
        universe_dir=Path(out_dir),
        spec=spec_t,
        base=base_t,
        kept=data_record(spec_t, bars),
        summary=data.summary,
        n_folds=len(data.folds),
        test_first_row=data.test_first_row,
        timestamps=data.timestamps,
        data=data,
        bars=bars if spec.snapshot and previous is None else None,
    )


def _resumed_bars(member: dict, folder: Path, bars: pd.DataFrame, ticker: str, spec):
    """The rows the ticker started on: its snapshot if kept, else its rows up to its recorded
    last bar; ConfigError when their fingerprint is not the recorded one."""
    snapshot = folder / SNAPSHOT
    if snapshot.is_file():
        bars = load_bars(snapshot, max_jump=checks_of(spec)["max_jump"])
    elif member.get("end"):
        bars = bars[bars.index <= pd.Timestamp(member["end"])]
    if bars_fingerprint(bars) != member.get("data_fingerprint"):
        raise ConfigError(
            "its rows are not the ones the universe read (their hash changed since it "
            "started: rewritten or removed bars); --resume needs them: run a new universe, "
            "or keep the rows with --snapshot next time"
        )
    return bars


def _member_entry(member: Member) -> dict:
    return {
        "folder": member.folder.name,
        "seed": member.spec.seed,
        "status": "pending",
        "data_fingerprint": member.kept["data_fingerprint"],
        "end": member.kept["end"],
    }


def open_records(spec, out_dir: Path, previous, space, base, members, refused, lock):
    """universe.json and each ticker's sweep.json (module doc); returns the universe's."""
    exp = "/".join(experiment_path(spec, out_dir, out_dir.name))
    hint = resume_hint(out_dir.name, spec.results_dir)
    runtime = {k: getattr(spec, k) for k in RUNTIME if hasattr(spec, k)}
    if previous is not None:
        record = UniverseRecord(out_dir, previous)
        record.update(
            status="running", experiment_path=exp, **runtime, **resealed(out_dir, previous)
        )
        for member in members.values():
            member.record = SweepRecord(member.folder, read_record(member.folder))
            ticker_runtime = {k: getattr(member.spec, k) for k in RUNTIME if hasattr(spec, k)}
            member.record.update(status="running", experiment_path=exp, **ticker_runtime)
        return record
    lock.acquire()
    refuse_existing(out_dir, out_dir.name)  # again, now that nothing else can start here
    objective, mode = objective_of(base.task)
    data = absolute_data(public_url(spec.data, mask=False) if spec.data else None)
    entries = {t: _member_entry(m) for t, m in members.items()}
    entries.update({t: {"status": "refused", "reason": r} for t, r in refused.items()})
    record = UniverseRecord.create(
        out_dir,
        replace(spec, name=out_dir.name, data=data),
        kind="universe",
        objective=objective,
        mode=mode,
        data_source=data,
        space_definition=space_to_dict(space),
        experiment_path=exp,
        resume_command=hint,
        members=entries,
    )
    for member in members.values():
        member.record = _ticker_record(member, space, objective, mode, exp, hint)
    return record


def _ticker_record(member: Member, space, objective, mode, exp: str, hint: str) -> SweepRecord:
    """The ticker's sweep.json: a single sweep's record of it, plus its universe."""
    kept = member.kept
    universe = member.universe_dir.name
    record = SweepRecord.create(
        member.folder,
        replace(member.spec, data=absolute_data(kept["data"]), end=kept["end"]),
        objective=objective,
        mode=mode,
        data_source=absolute_data(kept["data"]),
        data_fingerprint=kept["data_fingerprint"],
        data_summary=member.summary,
        space_definition=space_to_dict(space),
        test_first_row=member.test_first_row,
        timestamps=member.timestamps,
        experiment_path=exp,
        resume_command=hint,
        universe=universe,
        mlflow_run=f"{universe}/{member.ticker}",
    )
    if member.bars is not None:
        write_snapshot(member.bars, member.folder)
        member.bars = None
    return record


class Baselines:
    """Each ticker's baselines on its own folds (orchestrator/sweep/cv_baselines.py), computed one
    ticker after another in a thread of the driver while the trials run: about a second a
    ticker, which before the first trial would hold a universe of 500 tickers up for minutes.
    They are reference rows: no trial waits for them; ``collect`` waits for the last one
    before the results are written."""

    def __init__(self, members: dict[str, Member], space, log) -> None:
        self.log = log
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="universe-baselines")
        self.futures: dict[str, Future] = {
            t: self._pool.submit(cv_baselines, m.data, m.base, space) for t, m in members.items()
        }

    def when_ready(self, ticker: str, then) -> None:
        """Call ``then(baselines)`` once the ticker's baselines are in (at once if they are)."""
        future = self.futures[ticker]
        future.add_done_callback(lambda f: f.exception() is None and then(f.result()))

    def collect(self, members: dict[str, Member]) -> None:
        """Wait for every ticker's baselines and keep them in its member and its sweep.json;
        a ticker whose baselines fail keeps none, with one line (never the trials' results)."""
        for ticker, future in self.futures.items():
            try:
                baselines = future.result()
            except Exception as err:  # noqa: BLE001 - reference rows must not cost the results
                self.log(f"{ticker}: its baselines could not be computed ({err}); none shown")
                baselines = []
            member = members[ticker]
            member.baselines = baselines
            if member.record is not None:
                member.record.update(baselines=[b.to_dict() for b in baselines])
        self._pool.shutdown(wait=True)

    def cancel(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
