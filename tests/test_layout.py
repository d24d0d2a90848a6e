"""The tree as the architecture (issue 24): which room may import which, and old paths kept.

docs/architecture.md states the import rule; ``ALLOWED`` below is the same rule, checked on
every import of every module (lazy ones inside functions included). Old module paths, as
Tune's pickled experiment state, pickles and registered models name them, still import.
"""

from __future__ import annotations

import ast
import importlib
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("orchestrator", "trainables")
FIXTURES = Path(__file__).resolve().parent / "fixtures"

# The commands: may import anything (they are where the rooms meet).
COMMANDS = {
    "orchestrator.tune",
    "orchestrator.promote",
    "orchestrator.predict",
    "orchestrator.report",
    "orchestrator.show",
    "orchestrator.cluster",
    "trainables.train",
    "trainables.synthetic",
}
TRAINABLES = {
    "trainables.errors",
    "trainables.atomic",
    "trainables.disk",
    "trainables.cli",
    "trainables.artifacts",
    "trainables.bars",
    "trainables.prep",
    "trainables.parameters",
    "trainables.training",
}
# room (or top-level module) -> the other rooms of the project it may import. A room always
# imports itself; trainables.old_paths (the aliases) is open to all; the commands to none.
ALLOWED = {
    "trainables": set(),
    "trainables.errors": set(),
    "trainables.atomic": set(),
    "trainables.old_paths": set(),
    "trainables.disk": {"trainables.errors"},
    "trainables.parameters": {"trainables.errors"},
    "trainables.bars": {"trainables.errors", "trainables.atomic", "trainables.cli"},
    "trainables.prep": {"trainables.errors", "trainables.bars", "trainables.parameters"},
    "trainables.training": {"trainables.errors", "trainables.parameters", "trainables.prep"},
    "trainables.cli": {"trainables.errors", "trainables.bars", "trainables.parameters"},
    "trainables.artifacts": {
        "trainables.errors",
        "trainables.parameters",
        "trainables.prep",
        "trainables.training",
    },
    # orchestrator's rooms may import any of trainables' (listed in TRAINABLES), plus:
    "orchestrator": set(),
    "orchestrator.stats": set(),
    "orchestrator.tracking": set(),
    "orchestrator.records": {"orchestrator.stats"},
    "orchestrator.runtime": set(),
    "orchestrator.models": {"orchestrator.stats", "orchestrator.records", "orchestrator.tracking"},
    "orchestrator.sweep": {
        "orchestrator.stats",
        "orchestrator.records",
        "orchestrator.tracking",
        "orchestrator.runtime",
    },
    "orchestrator.universe": {
        "orchestrator.stats",
        "orchestrator.records",
        "orchestrator.tracking",
        "orchestrator.runtime",
        "orchestrator.sweep",
    },
    "orchestrator.promotion": {
        "orchestrator.stats",
        "orchestrator.records",
        "orchestrator.tracking",
        "orchestrator.runtime",
        "orchestrator.sweep",
        "orchestrator.models",
    },
}
# Module-to-module exceptions to the room rule, each with its reason (docs/architecture.md).
EXCEPTIONS = {
    # A source's query columns are checked against the feature names.
    ("trainables.bars.sources", "trainables.prep.features"),
    # Ray is started with the resources a sweep's spec asks for.
    ("orchestrator.runtime.ray_session", "orchestrator.sweep.spec"),
    # The sweep's CV baselines are promotion's baselines, fit on the sweep's folds.
    ("orchestrator.sweep.cv_baselines", "orchestrator.promotion.baselines"),
    ("orchestrator.sweep.cv_baselines", "orchestrator.promotion.holdout"),
}
# The rooms that may import Ray; nothing in trainables does.
RAY_ROOMS = {
    "orchestrator.runtime",
    "orchestrator.sweep",
    "orchestrator.universe",
    "orchestrator.promotion",
}


def room_of(module: str) -> str:
    """``orchestrator.sweep.trial`` -> ``orchestrator.sweep``; a top-level module is its own."""
    return ".".join(module.split(".")[:2])


def _is_module(name: str) -> bool:
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _defines(package: str, name: str) -> bool:
    init = ROOT.joinpath(*package.split("."), "__init__.py")
    tree = ast.parse(init.read_text())
    for node in tree.body:
        targets = []
        if isinstance(node, ast.Assign):
            targets = [t.id for t in node.targets if isinstance(t, ast.Name)]
        elif isinstance(node, ast.FunctionDef | ast.ClassDef):
            targets = [node.name]
        elif isinstance(node, ast.ImportFrom | ast.Import):
            targets = [(a.asname or a.name).split(".")[0] for a in node.names]
        if name in targets:
            return True
    return False


def imports_of(source: str) -> list[tuple[int, str, str | None]]:
    """(line, module imported, name taken from it) for every project import in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name, None) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found += [(node.lineno, node.module, a.name) for a in node.names]
    return found


def violations(module: str, source: str) -> list[str]:
    """What breaks the rule in ``module`` (dotted name) whose text is ``source``."""
    room, bad = room_of(module), []
    for line, target, name in imports_of(source):
        top = target.split(".")[0]
        where = f"{module}:{line} imports {target}" + (f".{name}" if name else "")
        if top == "ray" and (room.startswith("trainables") or room not in RAY_ROOMS | COMMANDS):
            bad.append(f"{where}: Ray outside {sorted(RAY_ROOMS)}")
        if top not in PACKAGES:
            continue
        if name and _is_module(f"{target}.{name}"):
            target = f"{target}.{name}"  # from package import module
        if not _is_module(target) or (name and not _plain_name_ok(target, name)):
            bad.append(f"{where}: no such module (an old path? see trainables/old_paths.py)")
            continue
        other = room_of(target)
        if name and name.startswith("_") and other != room and room not in COMMANDS:
            bad.append(f"{where}: a private name of another room (make it public or keep it)")
            continue
        if room in COMMANDS or other in (room, "trainables.old_paths"):
            continue
        if (module, target) in EXCEPTIONS:
            continue
        allowed = ALLOWED[room] | (TRAINABLES if room.startswith("orchestrator") else set())
        if other not in allowed:
            bad.append(f"{where}: {room} may not import {other}")
    return bad


def _plain_name_ok(target: str, name: str) -> bool:
    # `from orchestrator.sweep import x`: x must be a submodule or defined in the __init__
    # itself, not a name the package only forwards for old paths.
    path = ROOT.joinpath(*target.split("."))
    if not (path / "__init__.py").is_file():
        return True  # a module: its names are checked by importing it
    return _is_module(f"{target}.{name}") or _defines(target, name)


def _project_modules():
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            yield module, path


def test_every_room_has_a_rule():
    rooms = {room_of(m) for m, _ in _project_modules()} - COMMANDS
    assert rooms == set(ALLOWED), "a new room needs its line in ALLOWED and docs/architecture.md"


def test_every_import_follows_the_rule():
    bad = [v for module, path in _project_modules() for v in violations(module, path.read_text())]
    assert bad == []


@pytest.mark.parametrize(
    ("module", "source", "needle"),
    [
        ("trainables.bars.files", "from trainables.training.trainer import fit", "may not import"),
        ("trainables.prep.splits", "def f():\n    import ray\n", "Ray outside"),
        ("trainables.training.trainer", "from trainables.bars.sources import read_bars", "may not"),
        ("trainables.parameters.values", "from trainables.prep import splits", "may not import"),
        ("trainables.errors", "from orchestrator.stats.fdr import by_adjust", "may not import"),
        ("orchestrator.stats.verdicts", "from orchestrator.sweep.run import run_sweep", "may not"),
        ("orchestrator.stats.fdr", "import ray.tune", "Ray outside"),
        ("orchestrator.records.names", "from orchestrator.tracking.store import x", "may not"),
        ("orchestrator.sweep.trial", "from orchestrator.promote import promote", "may not import"),
        ("orchestrator.sweep.trial", "from orchestrator.promotion.run import promote", "may not"),
        ("orchestrator.models.predict", "from orchestrator.schedulers import X", "no such module"),
        ("orchestrator.sweep.trial", "from orchestrator.sweep import run_sweep", "no such module"),
        ("orchestrator.sweep.trial", "from trainables import fast_paths", "no such module"),
        ("orchestrator.universe.run", "from orchestrator.sweep.run import _write", "private"),
    ],
)
def test_the_rule_fails_on_an_import_that_breaks_it(module, source, needle):
    found = violations(module, source)
    assert len(found) == 1 and needle in found[0], found


def test_the_rule_lets_through_what_it_allows():
    assert violations("orchestrator.sweep.trial", "from orchestrator.stats import objective") == []
    assert violations("orchestrator.tune", "from orchestrator.promotion.run import promote") == []
    assert violations("trainables.prep.labels", "from trainables.bars.provenance import x") == []


# Every module path before issue 24's move -> where it is now.
OLD_PATHS = {
    "orchestrator.baselines": "orchestrator.promotion.baselines",
    "orchestrator.cv_baselines": "orchestrator.sweep.cv_baselines",
    "orchestrator.distributed": "orchestrator.sweep.distributed",
    "orchestrator.evaluation": "orchestrator.promotion.evaluation",
    "orchestrator.fdr": "orchestrator.stats.fdr",
    "orchestrator.folder_lock": "orchestrator.records.folder_lock",
    "orchestrator.head": "orchestrator.runtime.head",
    "orchestrator.holdout": "orchestrator.promotion.holdout",
    "orchestrator.jobs": "orchestrator.sweep.jobs",
    "orchestrator.leaderboard": "orchestrator.records.leaderboard",
    "orchestrator.mlflow_store": "orchestrator.tracking.store",
    "orchestrator.names": "orchestrator.records.names",
    "orchestrator.objective": "orchestrator.stats.objective",
    "orchestrator.outcome": "orchestrator.sweep.results",
    "orchestrator.overfitting": "orchestrator.stats.overfitting",
    "orchestrator.plots": "orchestrator.promotion.plots",
    "orchestrator.predict": "orchestrator.models.predict",
    "orchestrator.preflight": "orchestrator.sweep.preflight",
    "orchestrator.prepare": "orchestrator.sweep.prepare",
    "orchestrator.progress": "orchestrator.sweep.progress",
    "orchestrator.promote": "orchestrator.promotion.run",
    "orchestrator.promote_spec": "orchestrator.promotion.spec",
    "orchestrator.pyfunc_model": "orchestrator.models.pyfunc_model",
    "orchestrator.ray_auth": "orchestrator.runtime.ray_auth",
    "orchestrator.ray_compat": "orchestrator.runtime.ray_compat",
    "orchestrator.ray_session": "orchestrator.runtime.ray_session",
    "orchestrator.ray_start": "orchestrator.runtime.ray_start",
    "orchestrator.record": "orchestrator.records.sweep_record",
    "orchestrator.registry": "orchestrator.models.registry",
    "orchestrator.report": "orchestrator.promotion.report",
    "orchestrator.report_layout": "orchestrator.promotion.report_layout",
    "orchestrator.retrain": "orchestrator.promotion.retrain",
    "orchestrator.ridge": "orchestrator.promotion.ridge",
    "orchestrator.schedulers": "orchestrator.sweep.schedulers",
    "orchestrator.show_universe": "orchestrator.universe.show",
    "orchestrator.significance": "orchestrator.stats.significance",
    "orchestrator.spaces": "orchestrator.sweep.spaces",
    "orchestrator.spec": "orchestrator.sweep.spec",
    "orchestrator.state_seal": "orchestrator.records.state_seal",  # new on main as the move began
    "orchestrator.study_search": "orchestrator.sweep.study_search",
    "orchestrator.sweep": "orchestrator.sweep.run",
    "orchestrator.sweep_data": "orchestrator.sweep.data_source",
    "orchestrator.tickers": "orchestrator.records.tickers",
    "orchestrator.tracking": "orchestrator.tracking.sweep_runs",
    "orchestrator.tracking_thread": "orchestrator.tracking.writer_thread",
    "orchestrator.trading": "orchestrator.stats.trading",
    "orchestrator.trial": "orchestrator.sweep.trial",
    "orchestrator.trial_reports": "orchestrator.sweep.trial_reports",
    "orchestrator.tuner": "orchestrator.sweep.tuner",
    "orchestrator.universe": "orchestrator.universe.run",
    "orchestrator.universe_members": "orchestrator.universe.members",
    "orchestrator.universe_predict": "orchestrator.models.universe_predict",
    "orchestrator.universe_progress": "orchestrator.universe.progress",
    "orchestrator.universe_promote": "orchestrator.promotion.universe",
    "orchestrator.universe_record": "orchestrator.records.universe_record",
    "orchestrator.universe_registry": "orchestrator.models.universe_registry",
    "orchestrator.universe_report": "orchestrator.promotion.universe_report",
    "orchestrator.universe_scheduler": "orchestrator.universe.scheduler",
    "orchestrator.universe_search": "orchestrator.universe.search",
    "orchestrator.universe_summary": "orchestrator.universe.summary",
    "orchestrator.universe_trial": "orchestrator.universe.trial",
    "orchestrator.verdicts": "orchestrator.stats.verdicts",
    "trainables.bar_checks": "trainables.bars.checks",
    "trainables.config": "trainables.parameters.train_config",
    "trainables.data": "trainables.bars.files",
    "trainables.database": "trainables.bars.database",
    "trainables.dataset": "trainables.prep.dataset",
    "trainables.ddp": "trainables.training.ddp",
    "trainables.devices": "trainables.training.devices",
    "trainables.fast_paths": "trainables.training.fast_paths",
    "trainables.features": "trainables.prep.features",
    "trainables.fold_checks": "trainables.prep.fold_checks",
    "trainables.gpu_probe": "trainables.training.gpu_probe",
    "trainables.inference": "trainables.training.inference",
    "trainables.labels": "trainables.prep.labels",
    "trainables.losses": "trainables.training.losses",
    "trainables.metrics": "trainables.training.metrics",
    "trainables.model": "trainables.training.network",
    "trainables.naive": "trainables.prep.naive",
    "trainables.oom": "trainables.training.oom",
    "trainables.optim": "trainables.training.optim",
    "trainables.origin": "trainables.bars.provenance",
    "trainables.params": "trainables.parameters.fields",
    "trainables.presets": "trainables.parameters.presets",
    "trainables.scaling": "trainables.prep.scaling",
    "trainables.schedules": "trainables.training.schedules",
    "trainables.sources": "trainables.bars.sources",
    "trainables.splits": "trainables.prep.splits",
    "trainables.synthetic": "trainables.bars.synthetic",
    "trainables.table": "trainables.prep.model_table",
    "trainables.timestamps": "trainables.bars.timestamps",
    "trainables.trainer": "trainables.training.trainer",
    "trainables.universe_bars": "trainables.bars.universe",
    "trainables.values": "trainables.parameters.values",
    "trainables.windows": "trainables.prep.windows",
}
# Old modules whose path is now a package of that name or a command: their names forward.
FORWARDED = {
    "orchestrator.sweep",
    "orchestrator.universe",
    "orchestrator.tracking",
    "orchestrator.promote",
    "orchestrator.predict",
    "orchestrator.report",
    "trainables.synthetic",
}


def test_every_old_module_path_still_imports():
    assert len(OLD_PATHS) == 95
    for old, new in OLD_PATHS.items():
        module, moved = importlib.import_module(old), importlib.import_module(new)
        if old in FORWARDED:
            # (a name that is also a submodule of the new package, like the function
            # cv_baselines beside orchestrator.sweep.cv_baselines, is the submodule now)
            public = [
                n for n in vars(moved) if not n.startswith("_") and not _is_module(f"{old}.{n}")
            ]
            assert public and all(getattr(module, n) is getattr(moved, n) for n in public), old
        else:
            assert module is moved and sys.modules[old] is moved, old
            assert moved.__name__ == new and moved.__spec__.name == new


def test_a_pickle_made_before_the_move_loads_into_the_moved_classes():
    # Made by the code before the move (tests/fixtures/sweep_before_layout/README.md).
    data = (FIXTURES / "pickled_before_layout.pkl").read_bytes()
    assert b"trainables.config" in data and b"orchestrator.spec" in data
    objects = pickle.loads(data)
    from orchestrator.sweep.spec import SweepSpec
    from trainables.parameters.train_config import TrainConfig
    from trainables.prep.scaling import StandardScaler
    from trainables.prep.splits import PurgedWalkForward

    assert type(objects["config"]) is TrainConfig and objects["config"].hidden_size == 24
    assert objects["config"] == TrainConfig(hidden_size=24, learning_rate=0.0026)
    assert type(objects["scaler"]) is StandardScaler
    np.testing.assert_allclose(
        objects["scaler"].transform(np.ones((1, 2))), [[-1.1710801, -1.4638501]], rtol=1e-6
    )
    assert type(objects["splitter"]) is PurgedWalkForward
    assert type(objects["spec"]) is SweepSpec and objects["spec"].trials == 3


def test_a_class_pickled_by_its_old_path_is_the_moved_class():
    from orchestrator.sweep.schedulers import FoldRaceASHA
    from trainables.bars.synthetic import make_bars

    assert pickle.loads(b"corchestrator.schedulers\nFoldRaceASHA\n.") is FoldRaceASHA
    assert pickle.loads(b"ctrainables.synthetic\nmake_bars\n.") is make_bars
    assert pickle.loads(pickle.dumps(FoldRaceASHA)) is FoldRaceASHA  # new ones by new path
    assert b"orchestrator.sweep.schedulers" in pickle.dumps(FoldRaceASHA)


def test_importing_a_package_imports_none_of_its_rooms():
    # The aliases cost nothing until an old path is asked for (start-up time, benchmarks/
    # startup.py); an old path loads its module and what that module needs, not the rest.
    code = (
        "import sys, json, orchestrator, trainables; a = sorted(sys.modules);"
        "import orchestrator.names; b = sorted(sys.modules);"
        "print(json.dumps([a, b]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout
    first, after = (
        [m for m in mods if m.split(".")[0] in PACKAGES] for mods in __import__("json").loads(out)
    )
    assert first == ["orchestrator", "trainables", "trainables.old_paths"]
    assert "orchestrator.records.names" in after and "orchestrator.sweep" not in after


def test_packaging_installs_every_room():
    from setuptools import find_packages

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    found = set(find_packages(where=str(ROOT), include=config["packages"]["find"]["include"]))
    on_disk = {
        ".".join(p.parent.relative_to(ROOT).parts)
        for package in PACKAGES
        for p in (ROOT / package).rglob("__init__.py")
    }
    assert found == on_disk and "orchestrator.sweep" in found and "trainables.prep" in found


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_keeps_its_python_m_name(command):
    done = subprocess.run(
        [sys.executable, "-m", command, "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith(f"usage: python -m {command}"), done.stdout[:200]
