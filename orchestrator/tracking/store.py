"""Small MLflow store helpers of the tracking layer: finding runs, quoting, timing out fast.

Split from orchestrator/tracking/sweep_runs.py (which holds the tracker and the promoted model's run).
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mlflow.entities import Run, ViewType
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

__all__ = [
    "TRIAL_ID_TAG",
    "UNIVERSE_TAG",
    "artifact_location",
    "as_text",
    "child_runs",
    "fast_fail_http",
    "find_parent",
    "now_ms",
    "quote",
    "short_reason",
    "sqlite_path",
    "trial_id",
    "truncate",
]

TRIAL_ID_TAG = "trial_id"
# A universe's ticker sweep is a run below the universe's run, tagged with the universe's name:
# find_parent finds it by name like a top-level sweep (orchestrator/universe/run.py).
UNIVERSE_TAG = "lstm.universe"
# How long the start-up probe may wait on an HTTP store. MLflow's own defaults (7 retries with
# exponential backoff, 120 s timeout) would hang a sweep for minutes on a dead server.
_PROBE_TIMEOUT_S = 5


def find_parent(client: MlflowClient, experiment_id: str, run_name: str) -> Run | None:
    runs = client.search_runs(
        [experiment_id],
        filter_string=f"attributes.run_name = {quote(run_name)}",
        run_view_type=ViewType.ACTIVE_ONLY,
        order_by=["attributes.start_time DESC"],
    )
    parents = [
        r for r in runs if MLFLOW_PARENT_RUN_ID not in r.data.tags or UNIVERSE_TAG in r.data.tags
    ]
    return parents[0] if parents else None


def child_runs(client: MlflowClient, experiment_id: str, parent_id: str) -> list[Run]:
    runs: list[Run] = []
    token = None
    while True:
        page = client.search_runs(
            [experiment_id],
            filter_string=f"tags.`{MLFLOW_PARENT_RUN_ID}` = {quote(parent_id)}",
            run_view_type=ViewType.ACTIVE_ONLY,
            order_by=["attributes.start_time ASC"],
            page_token=token,
        )
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def trial_id(run: Run) -> str:
    return run.data.tags.get(TRIAL_ID_TAG, run.info.run_name)


@contextmanager
def fast_fail_http() -> Iterator[None]:
    """For the probe only: no retries and a short timeout, so a dead server fails in seconds."""
    settings = {
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": str(_PROBE_TIMEOUT_S),
    }
    saved = {key: os.environ.get(key) for key in settings}
    os.environ.update(settings)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def sqlite_path(uri: str) -> Path | None:
    if not uri.startswith("sqlite:///"):
        return None
    path = uri.removeprefix("sqlite:///").split("?", 1)[0]
    if path in ("", ":memory:"):
        return None
    return Path(path).resolve()


def artifact_location(uri: str) -> str | None:
    # Keep artifacts next to the sqlite file; MLflow's default is ./mlruns in the current folder.
    db = sqlite_path(uri)
    return (db.parent / "mlartifacts").as_uri() if db is not None else None


def as_text(value: Any) -> str:
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, default=str)
    return str(value)


def truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    note = f"...[truncated from {len(text)} chars]"
    return text[: limit - len(note)] + note


def quote(value: str) -> str:
    # MLflow's filter grammar has no escapes: pick the quote the value does not contain.
    return f'"{value}"' if "'" in value else f"'{value}'"


def short_reason(err: BaseException) -> str:
    """The useful part of a long MLflow/requests message, e.g. '[Errno 111] Connection refused'."""
    text = str(err)
    errno = re.search(r"\[Errno [^\]]+\][^'\")]*", text)
    if errno:
        return errno.group(0).strip()
    first = text.strip().splitlines()[0] if text.strip() else type(err).__name__
    return first if len(first) <= 200 else first[:197] + "..."


def now_ms() -> int:
    return int(time.time() * 1000)
