"""A throwaway PostgreSQL server for the tests: its own cluster, port and password.

Used by ``tests/conftest.py`` (when ``LSTM_TEST_PG_URL`` is not set) and by ``.ci/run``::

    eval "$(python tests/pgserver.py start)"   # exports LSTM_TEST_PG_URL and LSTM_TEST_PG_DIR
    python tests/pgserver.py stop "$LSTM_TEST_PG_DIR"

The server runs from Debian's ``postgresql`` package binaries (``initdb``/``pg_ctl``). It
refuses to run as root, so as root the cluster belongs to the ``postgres`` user and every
server command runs under ``runuser -u postgres``. It listens on 127.0.0.1 only, on a free
port, with password (scram) authentication over TCP, so tests exercise a real login; the
superuser reaches it only through the cluster's own Unix socket.
"""

from __future__ import annotations

import glob
import os
import secrets
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROLE = "lstm"
DATABASE = "lstm_test"


@dataclass
class Server:
    url: str  # postgresql://lstm:<password>@127.0.0.1:<port>/lstm_test
    dir: Path  # cluster, socket and log; removed by stop()
    port: int


def bindir() -> Path | None:
    """The newest PostgreSQL server binaries: Debian's /usr/lib/postgresql/<v>/bin, or PATH."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[4])
    )
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


def _as_owner(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def _run(cmd: list[str], what: str) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start() -> Server:
    """initdb + pg_ctl start + a login role and database; RuntimeError if it cannot."""
    bins = bindir()
    if bins is None:
        raise RuntimeError("no PostgreSQL server binaries (apt-get install -y postgresql)")
    if os.geteuid() == 0 and not shutil.which("runuser"):
        raise RuntimeError("running as root needs runuser to start PostgreSQL as postgres")
    root = Path(tempfile.mkdtemp(prefix="lstm-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    try:
        _run(
            _as_owner(
                [
                    str(bins / "initdb"),
                    "-D",
                    str(root / "data"),
                    "-U",
                    "postgres",
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    "-E",
                    "UTF8",
                    "--locale=C",
                    "--no-sync",
                ]
            ),
            "initdb",
        )
        port = _free_port()
        options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
        _run(
            _as_owner(
                [
                    str(bins / "pg_ctl"),
                    "-D",
                    str(root / "data"),
                    "-l",
                    str(root / "server.log"),
                    "-o",
                    options,
                    "-w",
                    "-t",
                    "60",
                    "start",
                ]
            ),
            "pg_ctl start",
        )
        _wait_ready(bins, root, port)
        password = secrets.token_hex(12)
        psql = [str(bins / "psql"), "-h", str(root), "-p", str(port), "-U", "postgres", "-q"]
        psql += ["-c", f"CREATE ROLE {ROLE} LOGIN PASSWORD '{password}'"]
        psql += ["-c", f"CREATE DATABASE {DATABASE} OWNER {ROLE}"]  # not in a transaction
        _run([*psql, "-v", "ON_ERROR_STOP=1"], "creating the test role")
    except BaseException:
        stop(root)
        raise
    return Server(f"postgresql://{ROLE}:{password}@127.0.0.1:{port}/{DATABASE}", root, port)


def _wait_ready(bins: Path, root: Path, port: int, timeout: float = 60) -> None:
    isready = bins / "pg_isready"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if subprocess.run([str(isready), "-q", "-h", str(root), "-p", str(port)]).returncode == 0:
            return
        time.sleep(0.2)
    raise RuntimeError(f"PostgreSQL on port {port} not ready after {timeout:.0f}s")


def stop(root: str | Path) -> None:
    """Stop the server of ``start()`` (if it runs) and remove its folder."""
    root = Path(root)
    bins = bindir()
    if bins is not None and (root / "data" / "postmaster.pid").exists():
        subprocess.run(
            _as_owner([str(bins / "pg_ctl"), "-D", str(root / "data"), "-m", "fast", "stop"]),
            capture_output=True,
            timeout=60,
        )
    shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str]) -> int:
    if argv[:1] == ["start"]:
        server = start()
        print(f"export LSTM_TEST_PG_URL={shlex.quote(server.url)}")
        print(f"export LSTM_TEST_PG_DIR={shlex.quote(str(server.dir))}")
        return 0
    if argv[:1] == ["stop"] and len(argv) == 2:
        stop(argv[1])
        return 0
    print("usage: python tests/pgserver.py start | stop DIR", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
