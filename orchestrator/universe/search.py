"""One Tune searcher for a universe: one Optuna study per ticker behind it.

``UniverseSearch`` keeps one ``FoldOptunaSearch`` (orchestrator/sweep/study_search.py) per ticker,
each with its own study (named after the ticker) in the universe's one ``optuna.db`` and its
own TPE seed (the ticker's seed, orchestrator/records/tickers.py). ``suggest`` picks the first
ticker, in the universe's order, that still has trials to ask for, asks that ticker's
searcher, and adds ``ticker`` to the config; results and completions go back to the searcher
of the trial's ticker. A ticker's searcher only ever sees its own trials, in the order they
happen, so with one trial at a time a ticker's sampling is exactly a single-ticker sweep's
with the same seed (tests/universe/test_universe.py checks it). Tune's one ``ConcurrencyLimiter``
(``max_concurrent_trials``) bounds the trials running across the universe.

Tickers are taken one after the other (the next one starts when the previous one has asked
for all its trials), so at any time only a few tickers are open; a ticker's searcher is made
when it asks for its first trial and dropped once its last trial finished. Tune pickles the
searcher into its experiment state after every fold checkpoint, and that state then holds
the open tickers' studies only, not the universe's (docs/scaling.md measures it).

``save``/``restore`` pickle the instance's ``__dict__`` (the open searchers, the quotas, the
trial -> ticker map, the finished tickers), as Ray's own searchers do: ``--resume`` goes on
with the tickers left. That pickle sits beside Tune's own pickled state and is read only by
``Tuner.restore`` on ``--resume``, which first checks that this user's sweeps sealed the
folder (``orchestrator.records.state_seal``): a folder received from elsewhere is refused.
"""

from __future__ import annotations

import pickle

import optuna
from ray.tune.search import Searcher

from orchestrator.sweep.study_search import FoldOptunaSearch

__all__ = ["UniverseSearch"]


class UniverseSearch(Searcher):
    """A Tune ``Searcher`` that routes each trial to its ticker's own study (module doc)."""

    def __init__(
        self,
        *,
        space: dict,
        seeds: dict[str, int],
        trials: int,
        storage: str,
        metric: str,
        mode: str,
    ) -> None:
        super().__init__(metric=metric, mode=mode)
        self.space = space  # the Optuna distributions every ticker samples
        self.seeds = dict(seeds)  # ticker -> TPE seed, in the universe's order
        self.left = {t: int(trials) for t in seeds}  # ticker -> trials still to ask for
        self.storage_url = storage
        self.open: dict[str, FoldOptunaSearch] = {}  # tickers with trials asked, not all done
        self.live: dict[str, set[str]] = {}  # ticker -> its trials asked and not finished
        self.ticker_of: dict[str, str] = {}  # trial id -> ticker
        self.closed: list[str] = []  # tickers whose every trial finished
        self._storage = None  # one RDBStorage (one engine) shared by every study

    # -- Tune's searcher interface -----------------------------------------------------------

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        return False  # the space, metric and mode were given at construction

    def suggest(self, trial_id: str) -> dict | str | None:
        ticker = self.ticker_of.get(trial_id) or next(
            (t for t, n in self.left.items() if n > 0), None
        )
        if ticker is None:
            return Searcher.FINISHED
        config = self._searcher(ticker).suggest(trial_id)
        if config is None:
            return None
        if trial_id not in self.ticker_of:
            self.left[ticker] -= 1
            self.ticker_of[trial_id] = ticker
            self.live.setdefault(ticker, set()).add(trial_id)
        return {**config, "ticker": ticker}

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        searcher = self.open.get(self._ticker(trial_id, result) or "")
        if searcher is not None:
            searcher.on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False):
        ticker = self._ticker(trial_id, result)
        searcher = self.open.get(ticker or "")
        if searcher is None:
            return
        searcher.on_trial_complete(trial_id, result=result, error=error)
        live = self.live.get(ticker, set())
        live.discard(trial_id)
        if not live and self.left.get(ticker, 0) == 0:  # the ticker's last trial: close it
            del self.open[ticker]
            self.live.pop(ticker, None)
            self.closed.append(ticker)
            # its trials are done: the state Tune snapshots keeps the open tickers' only
            self.ticker_of = {t: k for t, k in self.ticker_of.items() if k != ticker}

    def save(self, checkpoint_path: str) -> None:
        state = {k: v for k, v in self.__dict__.items() if k != "_storage"}
        with open(checkpoint_path, "wb") as f:
            pickle.dump(state, f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            self.__dict__.update(pickle.load(f))

    # -- what the driver asks --------------------------------------------------------------

    def tickers_open(self) -> list[str]:
        return list(self.open)

    # -- internals ---------------------------------------------------------------------------

    def _ticker(self, trial_id: str, result: dict | None) -> str | None:
        if trial_id in self.ticker_of:
            return self.ticker_of[trial_id]
        return ((result or {}).get("config") or {}).get("ticker")  # (a closed ticker's)

    def _searcher(self, ticker: str) -> FoldOptunaSearch:
        if ticker not in self.open:
            optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "A new study created"
            if self._storage is None:
                self._storage = optuna.storages.RDBStorage(self.storage_url)
            self.open[ticker] = FoldOptunaSearch(
                space=self.space,
                metric=self.metric,
                mode=self.mode,
                seed=self.seeds[ticker],
                study_name=ticker,
                storage=self._storage,
            )
        return self.open[ticker]
