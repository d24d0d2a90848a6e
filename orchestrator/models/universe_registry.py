"""A universe's registered models after its verdict: ``champion`` only for the FDR's winners.

Each ticker's promotion registers its model as a version of ``lstm-<universe>-<folder>``
(orchestrator/models/registry.py) with ``champion`` when it beats every baseline on its own test
part. Across many tickers some do so by chance, so once the universe's verdict is in
(orchestrator/promotion/universe.py) a ticker keeps ``champion`` only if it also survives the
Benjamini-Yekutieli adjustment; a ticker that beat its baselines alone but not after the
adjustment gets ``candidate`` on that version instead (``models:/<name>@champion`` then
loads nothing rather than a chance winner). Every version registered by the universe is
tagged with the universe, its adjusted p-value and whether it is a winner.

Tracking problems print one line; they never fail a promotion.
"""

from __future__ import annotations

import contextlib

from mlflow.tracking import MlflowClient

from orchestrator.models.registry import CANDIDATE, CHAMPION
from orchestrator.stats.verdicts import fmt_p
from orchestrator.tracking.store import fast_fail_http, short_reason
from orchestrator.tracking.sweep_runs import TRACKING_ERRORS

__all__ = ["alias_line", "settle_aliases"]


def settle_aliases(uri: str, verdict: dict, *, log=print) -> dict[str, str]:
    """Tag each registered ticker's version with the universe's verdict and move
    ``champion`` to ``candidate`` where the ticker is not a winner; returns ticker -> the
    version's alias now (tickers without a registered version are left out)."""
    registered = {t: row["mlflow"] for t, row in verdict["tickers"].items() if _version(row)}
    if not registered:
        return {}
    try:
        client = MlflowClient(tracking_uri=uri)
        with fast_fail_http():  # a dead server: one line in seconds, not minutes of retries
            client.get_registered_model(next(iter(registered.values()))["registered_model"])
        return {t: _settle(client, verdict, t, info) for t, info in registered.items()}
    except TRACKING_ERRORS as err:
        log(
            f"MLflow at {uri}: the universe's verdict is not on the registered versions ({short_reason(err)})"
        )
        return {}


def _version(row: dict) -> bool:
    info = row.get("mlflow") or {}
    return bool(info.get("registered_model")) and info.get("version") is not None


def _settle(client: MlflowClient, verdict: dict, ticker: str, info: dict) -> str:
    name, version = info["registered_model"], str(info["version"])
    row = verdict["tickers"][ticker]
    for key, value in (
        ("universe", verdict["universe"]),
        ("universe_adjusted_p", f"{row['adjusted_p']:.4g}"),
        ("universe_winner", str(bool(row["winner"])).lower()),
    ):
        client.set_model_version_tag(name, version, key, value)
    if info.get("alias") != CHAMPION or row["winner"]:
        return info.get("alias") or CANDIDATE
    with contextlib.suppress(*TRACKING_ERRORS):  # it may have moved on already
        if str(client.get_model_version_by_alias(name, CHAMPION).version) == version:
            client.delete_registered_model_alias(name, CHAMPION)
    client.set_registered_model_alias(name, CANDIDATE, version)
    client.set_model_version_tag(name, version, "alias_after_universe_verdict", CANDIDATE)
    return CANDIDATE


def alias_line(ticker: str, row: dict, alias: str | None) -> str | None:
    """Why a ticker's registered version is not the champion its own test made it."""
    if alias != CANDIDATE or (row.get("mlflow") or {}).get("alias") != CHAMPION:
        return None
    info = row["mlflow"]
    return (
        f"  {ticker}: models:/{info['registered_model']}@{CANDIDATE} (version {info['version']}): "
        f"it beat every baseline alone but not after the adjustment "
        f"({fmt_p(row['adjusted_p'])} adjusted), so not champion"
    )
