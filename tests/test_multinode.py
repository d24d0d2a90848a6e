"""Multi-node on one machine: a real Ray head and a second Ray node, each started with
`ray start` as its own process tree, and sweeps attached to them with ``--address``.

The two raylets share this machine, so the second node gets its own loopback address
(127.0.0.2): Tune's ``node_ip`` in each trial's result.json then names the node that ran it.
The cluster runs with token authentication, as cluster.yaml does. Every process a test
starts is killed by process id in a ``finally``: ``ray stop`` would kill every Ray on the
machine, other people's included.

``RayCluster`` and the helpers below are reused by tests/test_fault_tolerance.py.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest
import yaml

from orchestrator.records.leaderboard import read_leaderboard
from orchestrator.tracking.sweep_runs import default_tracking_uri, find_child_runs

ROOT = Path(__file__).resolve().parents[1]
RAY_CLI = [sys.executable, "-m", "ray.scripts.scripts"]
WORKER_IP = "127.0.0.2"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not sys.platform.startswith("linux"), reason="needs Linux (/proc, 127.0.0.2, ray start)"
    ),
]

# Connects to the cluster and waits until argv[2] nodes are alive; prints their addresses.
_WAIT_FOR_NODES = """
import json, sys, time
import ray
deadline = time.time() + float(sys.argv[3])
while True:
    try:
        ray.init(address=sys.argv[1], log_to_driver=False)
        break
    except ConnectionError:
        if time.time() > deadline:
            raise
        time.sleep(1)
while sum(n["Alive"] for n in ray.nodes()) < int(sys.argv[2]):
    if time.time() > deadline:
        sys.exit(f"only {sum(n['Alive'] for n in ray.nodes())} nodes alive")
    time.sleep(0.5)
print(json.dumps(sorted(n["NodeManagerAddress"] for n in ray.nodes() if n["Alive"])))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (Ray puts its workers in process groups of their own)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue  # the process ended while we looked
        children.setdefault(ppid, []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        kids = children.get(todo.pop(), [])
        found += kids
        todo += kids
    return found


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL ``proc`` and everything below it at once, like a machine losing power."""
    if proc.poll() is None:  # once reaped, its pid may belong to someone else's process
        for pid in [*descendants(proc.pid), proc.pid]:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # anything started since, in its session
    proc.wait(timeout=60)


class RayCluster:
    """A Ray head plus worker nodes, each a ``ray start --block`` process in its own session."""

    def __init__(self, root: Path) -> None:
        self.root = root  # short: Ray's socket paths under it must stay below 108 characters
        token = root / "auth_token"
        token.write_text(secrets.token_hex(32))
        token.chmod(0o600)
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
        # As in cluster.yaml: token auth on every node and driver, the token from a file.
        self.env = {
            **env,
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN_PATH": str(token),
            "PYTHONUNBUFFERED": "1",
        }
        self.nodes: dict[str, subprocess.Popen] = {}
        self.address = f"127.0.0.1:{free_port()}"
        self.head_ip: str | None = None

    def _start(self, name: str, args: list[str]) -> None:
        log = open(self.root / f"{name}.log", "w")  # noqa: SIM115 - closed with the process
        self.nodes[name] = subprocess.Popen(
            [*RAY_CLI, "start", "--block", "--disable-usage-stats", *args],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()

    def start(self, *, workers: int = 1, cpus: int = 1, head_cpus: int = 1) -> None:
        port = self.address.rsplit(":", 1)[1]
        head = ["--head", "--port", port, "--num-cpus", str(head_cpus)]
        head += ["--include-dashboard", "false"]
        self._start("head", [*head, "--temp-dir", str(self.root / "h")])
        for i in range(workers):
            self.add_worker(f"worker{i}", ip=f"127.0.0.{2 + i}", cpus=cpus)
        ips = self.wait_for_nodes(1 + workers)
        others = [ip for ip in ips if not ip.startswith("127.0.0.")]
        self.head_ip = others[0] if others else "127.0.0.1"

    def add_worker(self, name: str, *, ip: str, cpus: int = 1) -> None:
        args = ["--address", self.address, "--num-cpus", str(cpus), "--node-ip-address", ip]
        self._start(name, [*args, "--temp-dir", str(self.root / name)])

    def wait_for_nodes(self, n: int, timeout: float = 120) -> list[str]:
        out = subprocess.run(
            [sys.executable, "-c", _WAIT_FOR_NODES, self.address, str(n), str(timeout)],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout + 60,
        )
        if out.returncode != 0:
            logs = "".join(p.read_text()[-2000:] for p in self.root.glob("*.log"))
            raise RuntimeError(f"Ray cluster did not come up: {out.stderr[-3000:]}\n{logs}")
        return json.loads(out.stdout.strip().splitlines()[-1])

    def kill_node(self, name: str) -> None:
        """The node dies: its raylet, object store and every trial process on it."""
        kill_tree(self.nodes.pop(name))

    def stop(self) -> None:
        for name in list(self.nodes):
            self.kill_node(name)


@contextmanager
def ray_cluster(*, workers: int = 1, head_cpus: int = 1) -> Iterator[RayCluster]:
    root = Path(tempfile.mkdtemp(prefix="rc", dir="/tmp"))
    cluster = RayCluster(root)
    try:
        cluster.start(workers=workers, head_cpus=head_cpus)
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


def uniform_space(path: Path, *, epochs: int) -> Path:
    """A space whose trials all cost the same (only the learning rate varies), so two
    concurrent trials finish their folds at about the same time."""
    space = {
        "name": "uniform",
        "fixed": {
            "epochs": epochs,
            "patience": 0,  # no early stopping: every fold runs all its epochs
            "num_layers": 1,
            "hidden_size": 16,
            "sequence_length": 8,
            "batch_size": 32,
            "scheduler": "none",
        },
        "params": {"learning_rate": {"type": "float", "low": 1e-3, "high": 1e-2, "log": True}},
    }
    path.write_text("# python -m orchestrator.tune --space uniform.yaml\n" + yaml.safe_dump(space))
    return path


def sweep_cmd(results: Path, name: str, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "orchestrator.tune",
        "--scheduler",
        "none",
        "--results-dir",
        str(results),
        "--name",
        name,
        *args,
    ]


def trial_rows(experiment: Path) -> dict[str, list[dict]]:
    """Each trial's finished-fold reports in a Tune experiment's result.json files, by id.

    Mid-fold reports (per-epoch estimates for the scheduler) have no fold_objective and are
    left out, so there is one row per fold a trial finished, in the order it finished them.
    """
    rows = {}
    for path in experiment.glob("*/result.json"):
        lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        folds = [row for row in lines if "fold_objective" in row]
        if folds:
            rows[folds[0]["trial_id"]] = folds
    return rows


def trial_id_of(line: str) -> str:
    """The trial id in a progress line: '[   5.9s] trial 0c95ea71 fold 1/2 ...'."""
    return line.split(" trial ", 1)[1].split()[0]


def test_sweep_with_address_runs_trials_on_both_nodes(tmp_path):
    # `--address` attaches to a running 2-node cluster; trials run on both nodes, all complete,
    # and the Tune experiment goes to --storage (a directory both nodes share here).
    results, storage = tmp_path / "results", tmp_path / "shared"
    with ray_cluster(workers=1) as cluster:
        cmd = sweep_cmd(
            results,
            "mn",
            *["--space", str(uniform_space(tmp_path / "uniform.yaml", epochs=3))],
            *["--trials", "4", "--folds", "2", "--max-concurrent", "2"],
            *["--address", cluster.address, "--storage", str(storage)],
        )
        done = subprocess.run(
            cmd, env=cluster.env, cwd=ROOT, capture_output=True, text=True, timeout=400
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        head_ip = cluster.head_ip
    assert f"attached to {cluster.address}; 2 CPUs" in done.stdout
    board = read_leaderboard(results / "mn")
    assert len(board) == 4 and set(board.status) == {"completed"}
    rows = trial_rows(storage / "mn" / "tune")
    assert sorted(rows) == sorted(board.trial_id)
    assert all([r["folds_done"] for r in trial] == [1, 2] for trial in rows.values())
    nodes = {r["node_ip"] for trial in rows.values() for r in trial}
    assert nodes == {head_ip, WORKER_IP}  # both nodes ran trials
    runs = find_child_runs(default_tracking_uri(results), "lstm-sweeps", "mn")
    assert sorted(r.info.run_name for r in runs) == sorted(board.trial_id)


def test_cluster_with_token_auth_refuses_a_driver_without_the_token(tmp_path):
    # A driver that lacks the cluster's token cannot attach: the sweep fails before any trial.
    with ray_cluster(workers=0) as cluster:
        env = {k: v for k, v in cluster.env.items() if not k.startswith("RAY_AUTH")}
        env["HOME"] = str(tmp_path)  # no ~/.ray/auth_token to fall back on
        cmd = sweep_cmd(
            tmp_path / "results", "noauth", "--smoke-test", "--address", cluster.address
        )
        done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    out = done.stdout + done.stderr
    assert done.returncode != 0, out[-3000:]
    assert "InvalidAuthToken" in out  # refused by the cluster, not merely unreachable
    assert "fold 1/" not in out


def test_a_universe_with_address_runs_its_trials_on_both_nodes(tmp_path):
    # One universe (two tickers, each its own sweep) on a 2-node cluster: its trials land on
    # both nodes, the tickers' data reaching the other node through the object store.
    from tests.bars_db import users_bars

    bars = tmp_path / "universe.parquet"
    users_bars({"AAA": 0, "BRK.B": 1}, 900).to_parquet(bars, index=False)
    results, storage = tmp_path / "results", tmp_path / "shared"
    with ray_cluster(workers=1) as cluster:
        cmd = sweep_cmd(
            results,
            "mnu",
            *["--space", str(uniform_space(tmp_path / "uniform.yaml", epochs=3))],
            *["--data", str(bars), "--tickers", "all"],
            *["--trials", "2", "--folds", "2", "--max-concurrent", "2"],
            *["--address", cluster.address, "--storage", str(storage)],
        )
        done = subprocess.run(
            cmd, env=cluster.env, cwd=ROOT, capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        head_ip = cluster.head_ip
    record = json.loads((results / "mnu" / "universe.json").read_text())
    assert {m["status"] for m in record["members"].values()} == {"finished"}
    rows = trial_rows(storage / "mnu" / "tune")
    tickers = {r["config"]["ticker"] for trial in rows.values() for r in trial}
    assert tickers == {"AAA", "BRK.B"} and len(rows) == 4
    nodes = {r["node_ip"] for trial in rows.values() for r in trial}
    assert nodes == {head_ip, WORKER_IP}  # both nodes ran trials of the universe
    for ticker in ("AAA", "BRK.B"):
        folder = results / "mnu" / "tickers" / record["members"][ticker]["folder"]
        board = read_leaderboard(folder)
        assert len(board) == 2 and set(board.status) == {"completed"}
