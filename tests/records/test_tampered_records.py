"""An edited or damaged sweep.json (#21 defects 2 and 9): promote and --resume refuse it in
one line naming the file, exit 2, and change nothing (it crashed with KeyError: 'name')."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from orchestrator.promotion.run import main as promote_main
from orchestrator.records.folder_lock import LOCK_FILE
from orchestrator.records.sweep_record import DECIDING, RUNTIME
from orchestrator.sweep.spec import SweepSpec
from orchestrator.tune import main as tune_main

# A record as a sweep writes it (every setting), before the tampering.
_SPEC = SweepSpec(name="h", space="smoke", n_bars=1200, folds=2)
GOOD = {k: getattr(_SPEC, k) for k in (*DECIDING, *RUNTIME, "name")}
SMOKE = {"name": "smoke", "path": "search_spaces/smoke.yaml", "fixed": {}}

TAMPERED = {
    "space replaced": {**GOOD, "space_definition": {"evil": "x"}},
    "unknown parameter": {
        **GOOD,
        "space_definition": {**SMOKE, "params": {"evil": {"type": "int", "low": 1, "high": 2}}},
    },
    "params not a mapping": {**GOOD, "space_definition": {**SMOKE, "params": "x"}},
    "space name": {**GOOD, "space": {"evil": "x"}},
    "trials text": {**GOOD, "trials": "x", "space_definition": {"evil": "x"}},
    "name escapes": {**GOOD, "name": "../../x"},
    "a list": [GOOD],
    "not JSON": "{",
}


def _digest(folder: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in folder.iterdir()
        if p.name != LOCK_FILE
    }


@pytest.mark.parametrize("case", list(TAMPERED))
def test_a_tampered_record_is_one_line_exit_2_for_promote_and_resume(case, tmp_path, capsys):
    folder = tmp_path / "r" / "h"
    folder.mkdir(parents=True)
    content = TAMPERED[case]
    if isinstance(content, dict):
        content = {**content, "status": "interrupted"}
    text = content if isinstance(content, str) else json.dumps(content)
    (folder / "sweep.json").write_text(text)
    before = _digest(folder)
    for run in (
        lambda: promote_main(["--name", "h", "--results-dir", str(tmp_path / "r")]),
        lambda: tune_main(
            ["--resume", "--name", "h", "--results-dir", str(tmp_path / "r"), "--no-dashboard"]
        ),
    ):
        code = run()
        captured = capsys.readouterr()
        err = captured.err.strip().splitlines()
        assert code == 2, captured.out[-2000:] + captured.err[-2000:]
        assert len(err) == 1 and err[0].startswith("error: "), captured.err
        assert "sweep.json" in err[0] and "Traceback" not in captured.err, err[0]
        assert "Ray:" not in captured.out
    assert _digest(folder) == before
