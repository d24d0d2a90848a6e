"""What a sweep's start-up costs: the modules it loads (issue #23).

A sweep loads what it runs: promotion's modules (Ray Train's trainer, scikit-learn,
statsmodels, matplotlib, the report and its plots) load only when a promotion runs; torch
only in the trials' processes; MLflow on the tracker's own thread once Ray is up.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Modules only promotion needs; each costs from 0.1 s to seconds of start-up.
PROMOTION_ONLY = (
    "sklearn",
    "matplotlib",
    "statsmodels",
    "orchestrator.promote",
    "orchestrator.promotion.run",  # the code of `python -m orchestrator.promote`
    "orchestrator.promotion.evaluation",
    "orchestrator.promotion.plots",
    "orchestrator.report",
    "orchestrator.promotion.report",
    "orchestrator.stats.significance",
    "orchestrator.promotion.retrain",
    "orchestrator.models.registry",  # since #25: the promoted model's run and registry entry
    "orchestrator.models.pyfunc_model",
    "orchestrator.promotion.report_layout",
    "orchestrator.show",
)

_SWEEP_PATH = """
import json, sys
from orchestrator.tune import build_parser, parse_args
from orchestrator.sweep.run import base_config, run_sweep
from orchestrator.sweep.cv_baselines import cv_baselines
from orchestrator.sweep.spaces import load_space
from orchestrator.sweep.run import sweep_data_for
from orchestrator.sweep.data_source import load_sweep_bars

build_parser().format_help()  # what --help does
parse_args(["--trials", "50"])  # the bare command: --space auto asks for a CUDA GPU
spec = parse_args(["--smoke-test", "--folds", "3"])
space = load_space(spec.space)
base = base_config(spec, space)
data = sweep_data_for(spec, space, base, load_sweep_bars(spec, space, base))
cv_baselines(data, base, space)  # the ridge baseline every regression sweep fits
print(json.dumps(sorted(sys.modules)))
"""


def test_a_sweep_loads_no_promotion_module():
    # --help, parsing, the data, the folds and the ridge baseline of a smoke sweep: none of
    # them loads scikit-learn, matplotlib, statsmodels or promotion's own modules.
    out = subprocess.run(
        [sys.executable, "-c", _SWEEP_PATH],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    loaded = set(json.loads(out.stdout.strip().splitlines()[-1]))
    assert "orchestrator.sweep.run" in loaded and "orchestrator.promotion.ridge" in loaded
    found = sorted(m for m in loaded if m.split(".")[0] in PROMOTION_ONLY or m in PROMOTION_ONLY)
    assert not found, f"a sweep loaded promotion-only modules: {found}"
    # Nor torch (the trials' processes load it; on a machine without a GPU driver --space
    # auto needs no torch to know there is no CUDA GPU), nor MLflow before Ray is up.
    assert "torch" not in loaded or _gpu_driver(), "the sweep's driver loaded torch"
    assert "mlflow" not in loaded, "MLflow loaded before the tracker's thread"


def _gpu_driver() -> bool:
    from orchestrator.sweep.spec import gpu_driver_present

    return gpu_driver_present()


def test_the_cuda_probe_agrees_with_torch():
    # Where no GPU driver is found, torch finds no CUDA device either.
    import torch

    from orchestrator.sweep.spec import cuda_available

    assert cuda_available() == torch.cuda.is_available()


def test_a_data_error_while_ray_starts_is_one_line_at_once(tmp_path):
    # The command starts Ray beside reading the data (orchestrator/runtime/ray_start.py): a data
    # error is still the only line (Ray's own warnings are held back), exit 2, nothing
    # written; and no process of that Ray outlives the command (the raylet's agents used to
    # live on for a minute or more: the command exited without shutting Ray down).
    from trainables.bars.synthetic import make_bars

    bars = make_bars(1200)
    bars.iloc[600, bars.columns.get_loc("close")] = 1e300
    bars.to_csv(tmp_path / "huge.csv")
    results = tmp_path / "results"
    cmd = [sys.executable, "-m", "orchestrator.tune", "--smoke-test", "--name", "x"]
    cmd += ["--data", str(tmp_path / "huge.csv"), "--results-dir", str(results)]
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "CUDA_VISIBLE_DEVICES": ""}
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=env)
    assert out.returncode == 2, out.stderr[-2000:]
    assert out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {tmp_path / 'huge.csv'}: column")
    assert not results.exists()
    # Ray's processes run in the command's folder: none is left once it has exited (a few
    # seconds' grace for the kernel to reap them; the agents left behind lived 60 s and more).
    deadline = time.monotonic() + 10
    while _processes_in(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _processes_in(tmp_path) == [], "Ray processes outlived the command"


def test_a_late_data_error_shuts_down_the_ray_started_beside_it(tmp_path):
    # A data error found once Ray is up (here: 600,000 built-in bars are generated, then
    # found too few for the window --set asks for): one line, exit 2, and no process of
    # that Ray outlives the command (its agents used to live on for a minute or more).
    cmd = [sys.executable, "-m", "orchestrator.tune", "--bars", "600000", "--no-dashboard"]
    cmd += ["--set", "sequence_length=300000", "--results-dir", str(tmp_path / "results")]
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "CUDA_VISIBLE_DEVICES": ""}
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=env)
    assert out.returncode == 2, out.stderr[-2000:]
    lines = [line for line in out.stderr.splitlines() if "Token authentication" not in line]
    assert len(lines) == 1 and "600,000 bars are too few" in lines[0], out.stderr[-2000:]
    deadline = time.monotonic() + 10
    while _processes_in(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _processes_in(tmp_path) == [], "Ray processes outlived the command"


def _processes_in(folder: Path) -> list[str]:
    """The command lines of this user's processes whose working folder is ``folder``."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if Path(os.readlink(proc / "cwd")) == folder.resolve():
                found.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode())
        except OSError:  # gone meanwhile, or another user's
            continue
    return found


def test_main_thread_imports_go_on_while_ray_starts_beside_them(tmp_path, monkeypatch):
    # The main thread reads the data while Ray starts on its own thread: imports there
    # (a module of its own, and standard-library modules nothing loaded yet) neither wait
    # for Ray nor hold its start up (an import guard that waited in a sys.meta_path finder
    # held Python's global import lock, which Ray's forks need: Ray came up only after the
    # guard's 120 s bound). Ray's lines come after, in order; stop() ends the start thread.
    import ray

    from orchestrator.runtime.ray_start import BackgroundRay
    from orchestrator.sweep.spec import SweepSpec

    fresh = [m for m in ("xml.dom.minidom", "wave", "tabnanny") if m not in sys.modules]
    (tmp_path / "late_module_23.py").write_text("".join(f"import {m}\n" for m in fresh))
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = SweepSpec(num_cpus=1, dashboard=False)
    early = BackgroundRay(spec, {"job_name": "t"}).start()
    try:
        import late_module_23  # noqa: F401 - imported while Ray starts

        assert early.ready.wait(timeout=100), "Ray's start waited for the main thread's import"
        lines: list[str] = []
        started, _ = early.wait(lines.append)
        assert started and ray.is_initialized()
        assert any(line.startswith("Ray: local; 1 CPUs") for line in lines)
    finally:
        early.ready.wait(timeout=100)
        ray.shutdown()
        early.stop()
    early.thread.join(timeout=10)
    assert not early.thread.is_alive()
