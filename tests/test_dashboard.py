"""The Ray dashboard as the results browser, used as a person would use it.

One head, started with ``python -m orchestrator.cluster start`` in a private temp dir
($TMPDIR, so ``--address auto`` and a plain ``ray.init()`` find this head and no one
else's) with its own token file and free ports. Smoke sweeps run against it with
``--address auto`` from another directory; headless Chromium logs in to the dashboard with
the token and finds the sweep on the Jobs page; ``stop`` ends this head and nothing else.

The screenshots go to a temp dir; ``UPDATE_SCREENSHOTS=1 python -m pytest -m slow
tests/test_dashboard.py -k chromium`` writes them to docs/ (docs/dashboard-jobs.png,
docs/dashboard-job-log.png).
"""

from __future__ import annotations

import importlib.util
import json
import os
import queue
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from tests.browser import chromium, has_browser
from tests.test_multinode import RayCluster, free_port

ROOT = Path(__file__).resolve().parents[1]
SWEEP = "dash-smoke"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs Linux (ray start)"),
]


@dataclass
class Setup:
    root: Path
    env: dict
    work: Path  # where the person runs their commands (relative --results-dir)
    gcs_port: int
    url: str
    token_path: Path
    started: subprocess.CompletedProcess

    @property
    def temp(self) -> Path:
        return self.root / "t" / "ray"

    def token(self) -> str:
        return self.token_path.read_text().strip()

    def headers(self) -> dict:
        return {"Authorization": f"Bearer {self.token()}"}

    def run(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", *args],
            env=self.env,
            cwd=self.work,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def jobs(self) -> list:
        from ray.job_submission import JobSubmissionClient

        return JobSubmissionClient(self.url, headers=self.headers()).list_jobs()

    def job(self, name: str):
        found = [j for j in self.jobs() if (j.metadata or {}).get("job_name") == name]
        assert len(found) == 1, [j.metadata for j in self.jobs()]
        return found[0]


def _kill_leftovers(state_file: Path) -> None:
    """If `stop` failed, end the head's process tree by its recorded pid."""
    with suppress(OSError, ValueError, KeyError, psutil.Error):
        state = json.loads(state_file.read_text())
        proc = psutil.Process(state["pid"])
        if abs(proc.create_time() - state["create_time"]) < 1:
            for p in [*proc.children(recursive=True), proc]:
                with suppress(psutil.Error):
                    p.kill()


@pytest.fixture(scope="module")
def head() -> Iterator[Setup]:
    root = Path(tempfile.mkdtemp(prefix="db", dir="/tmp"))  # short: Ray's socket paths
    (root / "t").mkdir()
    (root / "work").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(
        TMPDIR=str(root / "t"), RAY_AUTH_TOKEN_PATH=str(root / "token"), PYTHONUNBUFFERED="1"
    )
    gcs, dash, client, agent = (free_port() for _ in range(4))
    setup = Setup(root, env, root / "work", gcs, f"http://127.0.0.1:{dash}", root / "token", None)
    try:
        setup.started = setup.run(
            *["orchestrator.cluster", "start", "--num-cpus", "2"],
            *["--port", str(gcs), "--dashboard-port", str(dash), "--"],
            *["--ray-client-server-port", str(client), "--dashboard-agent-listen-port", str(agent)],
            timeout=300,
        )
        assert setup.started.returncode == 0, setup.started.stdout + setup.started.stderr
        yield setup
    finally:
        setup.run("orchestrator.cluster", "stop", timeout=120)
        _kill_leftovers(setup.temp / "lstm-orchestrator-head.json")
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def sweep(head: Setup) -> subprocess.CompletedProcess:
    """The person's sweep: the smoke space on the head, results relative to their directory."""
    done = head.run(
        *["orchestrator.tune", "--smoke-test", "--address", "auto"],
        *["--results-dir", "res", "--name", SWEEP],
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def _get(url: str, headers: dict | None = None) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {})) as r:
            return r.status
    except urllib.error.HTTPError as err:
        return err.code


def test_start_turns_on_token_auth_and_says_how_to_log_in(head):
    # Rule: the head has token authentication on (a new owner-only token where Ray looks
    # for it), its dashboard refuses a browser without the token, and `start` prints the
    # dashboard with how to log in; a second `start` changes nothing.
    out = head.started.stdout
    assert (
        f"dashboard    {head.url} (this machine only; log in with the token in "
        f"{head.token_path} (`ray get-auth-token` prints it))" in out
    )
    assert "sweeps       python -m orchestrator.tune --address auto ..." in out
    assert stat.S_IMODE(head.token_path.stat().st_mode) == 0o600
    assert _get(f"{head.url}/api/jobs/") == 401
    assert _get(f"{head.url}/api/jobs/", {"Authorization": "Bearer wrong"}) == 403
    assert _get(f"{head.url}/api/jobs/", head.headers()) == 200

    again = head.run("orchestrator.cluster", "start", timeout=120)
    assert again.returncode == 0
    assert "already runs" in again.stdout
    # The Ray CLI line that `start` prints works as printed.
    cli = subprocess.run(
        [sys.executable, "-m", "ray.scripts.scripts", "job", "list", "--address", head.url],
        env={**head.env, "RAY_AUTH_MODE": "token"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert cli.returncode == 0, cli.stderr[-2000:]


def test_sweep_on_the_head_is_a_job_with_its_settings_and_output(head, sweep):
    # Rule: `--address auto` on our head runs the sweep as a Ray job named after the sweep,
    # with its settings as metadata and its progress lines and leaderboard in the job's
    # logs; relative paths mean what they mean where the command ran.
    assert f"Sweep {SWEEP!r} runs on the Ray head at" in sweep.stdout
    assert "Top trials by mse_ratio (min) over 2 purged CV folds" in sweep.stdout
    assert (head.work / "res" / SWEEP / "leaderboard.csv").is_file()

    job = head.job(SWEEP)
    assert job.type == "SUBMISSION" and job.status == "SUCCEEDED"
    assert job.submission_id.startswith(f"{SWEEP}-")
    assert job.metadata == {
        "job_name": SWEEP,
        "space": "smoke",
        "trials": "4",
        "objective": "mse_ratio (min)",
        "results": str(head.work / "res" / SWEEP),
    }
    from ray.job_submission import JobSubmissionClient

    logs = JobSubmissionClient(head.url, headers=head.headers()).get_job_logs(job.submission_id)
    assert re.search(r"trial \w{8} fold 1/2 fold_mse_ratio=", logs)
    assert re.search(r"\| 4/4 done: \d completed, \d pruned, 0 failed \| best ", logs)
    assert "Top trials by mse_ratio (min)" in logs and re.search(r"\brank +trial_id\b", logs)

    status = head.run("orchestrator.cluster", "status", timeout=120)
    assert status.returncode == 0
    assert re.search(rf"SUCCEEDED +{SWEEP} +{job.submission_id}", status.stdout), status.stdout


def test_no_job_runs_the_sweep_as_a_plain_driver(head, sweep):
    # Rule: with --no-job the sweep runs in the terminal; the dashboard lists it by name with
    # its metadata, but Ray keeps no output of a driver it did not start.
    done = head.run(
        *["orchestrator.tune", "--smoke-test", "--trials", "1", "--address", "auto"],
        *["--results-dir", "res", "--name", "plain", "--no-job"],
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "runs on the Ray head" not in done.stdout
    assert "Top trials by mse_ratio (min)" in done.stdout
    job = head.job("plain")
    assert job.type == "DRIVER" and job.status == "SUCCEEDED"
    assert job.metadata["space"] == "smoke" and job.metadata["trials"] == "1"
    assert _get(f"{head.url}/api/jobs/{job.job_id}/logs", head.headers()) == 400


def _lines(proc: subprocess.Popen) -> queue.Queue:
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    return lines


def test_ctrl_c_detaches_and_the_sweep_goes_on(head):
    # Rule: Ctrl-C on the terminal that follows a sweep on the head detaches (exit 130, with
    # how to follow and stop it); the sweep itself goes on to its end.
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchestrator.tune", "--smoke-test", "--address", "auto"]
        + ["--results-dir", "res", "--name", "detached"],
        env=head.env,
        cwd=head.work,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines, seen = _lines(proc), []
    try:
        while not any("Its output follows" in line for line in seen):
            seen.append(lines.get(timeout=120))
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
    detached_at = time.time()
    time.sleep(1)
    while not lines.empty():
        seen.append(lines.get())
    assert any("Detached: the sweep goes on as job detached-" in line for line in seen), seen
    assert any("Stop it: RAY_AUTH_MODE=token ray job stop --address" in line for line in seen)

    # The command printed to follow it again works as printed, to the sweep's end.
    follow = next(line for line in seen if "Follow it: " in line).split("Follow it: ")[1]
    env = {**head.env, "PATH": f"{Path(sys.executable).parent}:{head.env['PATH']}"}
    followed = subprocess.run(
        ["bash", "-c", follow], env=env, capture_output=True, text=True, timeout=600
    )
    assert followed.returncode == 0, followed.stderr[-2000:]
    assert "Top trials by mse_ratio (min)" in followed.stdout
    job = head.job("detached")
    assert job.status == "SUCCEEDED", job.message
    assert job.end_time / 1000 > detached_at  # it went on after the client left
    assert (head.work / "res" / "detached" / "leaderboard.csv").is_file()


def test_a_local_sweep_keeps_to_its_own_ray_while_the_head_runs(head, sweep):
    # Rule: without --address a sweep starts its own Ray, although a plain ray.init() here
    # would attach to the head (and refuse num_cpus); the head gets no job from it. Its own
    # dashboard comes with the line that says how to log in.
    before = {j.submission_id or j.job_id for j in head.jobs()}
    done = head.run(
        *["orchestrator.tune", "--smoke-test", "--trials", "2", "--num-cpus", "1"],
        *["--results-dir", "res", "--name", "local-one"],
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Ray: local; 1 CPUs" in done.stdout
    assert (
        f"Ray dashboard: token authentication on; log in with the token in {head.token_path}"
        in done.stdout
    )
    assert {j.submission_id or j.job_id for j in head.jobs()} == before
    assert (head.work / "res" / "local-one" / "leaderboard.csv").is_file()


def _has_browser() -> bool:
    return has_browser()


def _log_in(driver, token: str) -> None:
    """The dashboard's token dialog: type the token, Submit, and the dialog closes."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, 120)
    field = wait.until(EC.visibility_of_element_located((By.CSS_SELECTOR, "input[type=password]")))
    assert "Authentication Token Required" in driver.find_element(By.TAG_NAME, "body").text
    field.send_keys(token)
    driver.find_element(By.XPATH, "//button[normalize-space()='Submit']").click()
    wait.until(EC.invisibility_of_element_located((By.CSS_SELECTOR, "input[type=password]")))


def _page_text(driver) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.TAG_NAME, "body").text


@pytest.mark.skipif(
    not _has_browser(),
    reason="needs chromium and chromedriver (apt-get install -y chromium chromium-driver) "
    "and selenium (pip install -e '.[test]')",
)
def test_jobs_page_in_chromium_lists_the_sweep_with_its_output(head, sweep, tmp_path):
    # Rule: a person who opens the dashboard URL that `start` printed, and types the token
    # into the dialog, sees the sweep by name on the Jobs page; its page shows its
    # metadata and, at the end of the driver log, the leaderboard.
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    shots = ROOT / "docs" if os.environ.get("UPDATE_SCREENSHOTS") == "1" else tmp_path
    job = head.job(SWEEP)
    with chromium(tmp_path / "profile") as driver:
        driver.get(f"{head.url}/#/jobs")
        _log_in(driver, head.token())
        wait = WebDriverWait(driver, 120)
        row = wait.until(
            EC.presence_of_element_located((By.XPATH, f"//tr[td[normalize-space()='{SWEEP}']]"))
        )
        assert job.submission_id in row.text and "SUCCEEDED" in row.text
        time.sleep(1)  # let the table finish drawing
        driver.save_screenshot(str(shots / "dashboard-jobs.png"))

        driver.get(f"{head.url}/#/jobs/{job.submission_id}")
        wait.until(lambda d: "Runtime env is setting up" in _page_text(d))
        assert f'"job_name": "{SWEEP}"' in _page_text(driver)
        # The driver log is a scrolled box that draws only the lines in view: scroll to its
        # end, as a person would, to read the leaderboard.
        driver.execute_script(
            "for (const e of document.querySelectorAll('*'))"
            "  if (e.scrollHeight > e.clientHeight + 5 && e.innerText.includes("
            "      'Runtime env is setting up') && getComputedStyle(e).overflowY !== 'visible')"
            "    e.scrollTop = e.scrollHeight;"
        )
        wait.until(lambda d: "Top trials by mse_ratio" in _page_text(d))
        logs = driver.find_element(By.XPATH, "//*[@role='tab'][contains(., 'river')]")
        driver.execute_script("arguments[0].scrollIntoView({block: 'start'});", logs)
        time.sleep(1)
        driver.save_screenshot(str(shots / "dashboard-job-log.png"))
    assert (shots / "dashboard-jobs.png").stat().st_size > 10_000


def _serve(cmd: list[str], env: dict, cwd: Path, url: str, timeout: float = 180) -> str:
    """Run a web UI, return the body of ``url`` once it answers, then stop the UI."""
    proc = subprocess.Popen(
        cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.time() + timeout
        while True:
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    return response.read().decode()
            except (urllib.error.URLError, OSError):
                assert proc.poll() is None, f"{cmd} exited with {proc.returncode}"
                assert time.time() < deadline, f"{cmd} did not answer at {url}"
                time.sleep(1)
    finally:
        proc.terminate()
        with suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=30)
        if proc.poll() is None:
            proc.kill()


@pytest.mark.skipif(
    importlib.util.find_spec("optuna_dashboard") is None,
    reason="needs optuna-dashboard (pip install -e '.[ui]')",
)
def test_the_other_browsers_open_the_sweep(head, sweep):
    # Rule: README's "Browse results" commands, run where the sweep ran, open its study
    # (optuna-dashboard) and its runs (MLflow UI).
    port = free_port()
    bin_dir = Path(sys.executable).parent
    body = _serve(
        [str(bin_dir / "optuna-dashboard"), f"sqlite:///res/{SWEEP}/optuna.db"]
        + ["--port", str(port), "--server", "wsgiref"],
        head.env,
        head.work,
        f"http://127.0.0.1:{port}/api/studies",
    )
    assert json.loads(body)["study_summaries"][0]["study_name"] == SWEEP

    port = free_port()
    body = _serve(
        [str(bin_dir / "mlflow"), "ui", "--backend-store-uri", "sqlite:///res/mlflow.db"]
        + ["--port", str(port)],
        head.env,
        head.work,
        f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/search?max_results=10",
    )
    assert "lstm-sweeps" in body


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is not "in use"
        try:
            s.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def test_stop_ends_our_head_and_nothing_else(head, sweep):
    # Rule: `stop` ends the head that `start` started, every process of it, and forgets it
    # (status: none; `--address auto` finds nothing); another Ray on the machine runs on.
    other = RayCluster(Path(tempfile.mkdtemp(prefix="do", dir="/tmp")))
    try:
        other.start(workers=0)
        state = json.loads((head.temp / "lstm-orchestrator-head.json").read_text())
        ours = psutil.Process(state["pid"])
        tree = [ours, *ours.children(recursive=True)]
        assert len(tree) > 3  # gcs_server, raylet, dashboard, ...
        theirs = psutil.Process(other.nodes["head"].pid)
        their_tree = [theirs, *theirs.children(recursive=True)]

        done = head.run("orchestrator.cluster", "stop", timeout=180)
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"Stopped the Ray head (pid {state['pid']}" in done.stdout
        assert "MLflow and results/<sweep>/ keep every sweep" in done.stdout
        assert not [p.pid for p in tree if p.is_running()]
        assert all(p.is_running() for p in their_tree)
        assert _port_free(head.gcs_port)
        assert not (head.temp / "lstm-orchestrator-head.json").exists()
        assert not (head.temp / "ray_current_cluster").exists()
        assert head.run("orchestrator.cluster", "status", timeout=120).returncode == 1
    finally:
        other.stop()
        shutil.rmtree(other.root, ignore_errors=True)
