"""Ray token authentication: where the token is, making one, and how to log in with it.

Ray 2.60 turns token authentication on for a new local ``ray.init()`` (creating
``~/.ray/auth_token`` if it is missing), but ``ray start --head`` turns it on only when
``RAY_AUTH_MODE=token`` is set or a token already exists. With it on, the dashboard answers
401 until you log in with the token, and every client (a driver, ``ray job ...``,
``ray status``) needs ``RAY_AUTH_MODE=token`` and the token. Ray reads the token from, in
order: the ``RAY_AUTH_TOKEN`` environment variable, the file named by
``RAY_AUTH_TOKEN_PATH``, ``~/.ray/auth_token``.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

__all__ = [
    "AUTH_MODE_VAR",
    "auth_enabled",
    "ensure_token",
    "login_hint",
    "read_token",
    "token_file",
    "token_exposed",
    "token_source",
]

AUTH_MODE_VAR = "RAY_AUTH_MODE"
TOKEN_VAR = "RAY_AUTH_TOKEN"
TOKEN_PATH_VAR = "RAY_AUTH_TOKEN_PATH"


def token_file() -> Path:
    """The file Ray reads the token from when ``RAY_AUTH_TOKEN`` is not set."""
    path = os.environ.get(TOKEN_PATH_VAR)
    return Path(path).expanduser() if path else Path.home() / ".ray" / "auth_token"


def token_source() -> str:
    """Where the token comes from, in words a user can act on."""
    if os.environ.get(TOKEN_VAR):
        return f"the {TOKEN_VAR} environment variable"
    return str(token_file())


def read_token() -> str | None:
    """The token Ray would use, or None where there is none."""
    if os.environ.get(TOKEN_VAR):
        return os.environ[TOKEN_VAR].strip()
    try:
        token = token_file().read_text().strip()
    except OSError:
        return None
    return token or None


def ensure_token() -> bool:
    """Make a token where Ray will look for one, unless one exists; True if it made one.

    256 random bits as hex, as ``ray get-auth-token --generate`` makes them; the file is
    readable by its owner only, since the token lets anyone run code on the cluster.
    """
    if read_token():
        return False
    path = token_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32))
    path.chmod(0o600)  # an existing empty file keeps its mode through O_CREAT
    return True


def token_exposed() -> bool:
    """Whether the token file can be read by other users of the machine.

    Ray's own ``ray.init()`` and ``ray get-auth-token --generate`` write it with the
    default umask (mode 644 on most machines).
    """
    if os.environ.get(TOKEN_VAR):
        return False
    try:
        return bool(token_file().stat().st_mode & 0o077)
    except OSError:
        return False


def auth_enabled() -> bool:
    """Whether this process talks to Ray with token authentication.

    Ray sets ``RAY_AUTH_MODE=token`` in the process itself when ``ray.init()`` starts a
    local cluster or finds one with ``address="auto"`` and a token exists, so after
    ``ray.init()`` the variable tells what Ray chose.
    """
    return os.environ.get(AUTH_MODE_VAR, "").lower() == "token"


def login_hint() -> str:
    """How to get into a dashboard that has token authentication on."""
    return f"log in with the token in {token_source()} (`ray get-auth-token` prints it)"
