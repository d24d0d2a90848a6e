"""Which sweep folders ``--resume`` may unpickle: those this user's own sweeps made.

``--resume`` has Ray Tune unpickle the experiment state under ``results/<name>/tune/`` (the
trials, the searcher, the scheduler, the callbacks), and unpickling runs whatever code the
pickle names. A results folder is something people hand each other ("here is my sweep"), so
a new sweep's record carries a seal: a random nonce and its HMAC-SHA256 (with the folder's path and the sweep's
name and start) under a key that only this user holds (``$XDG_CONFIG_HOME/lstm-orchestrator/state.key``, default
``~/.config/...``, mode 600, made on first use). ``--resume`` of an unfinished sweep checks
it before anything is read: a folder made elsewhere (another user, another machine, a copy
someone sent) or before sweeps were sealed is refused in one line unless ``--trust-state``
says the user knows where it came from; a resume so vouched for seals the record anew.

What the seal tells apart is where a folder was made. It does not notice later edits to a
folder of one's own: keep ``results/`` writable only by its owner (docs/scaling.md).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

__all__ = ["key_path", "new_seal", "resealed", "seal_holds", "seal_problem"]

_CONTEXT = b"lstm-orchestrator sweep state\n"
_KEY_BYTES = 32


def key_path() -> Path:
    """This user's key file (``XDG_CONFIG_HOME`` as the XDG base directory spec reads it)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "lstm-orchestrator" / "state.key"


def _key(*, create: bool) -> bytes | None:
    path = key_path()
    if create and not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Written whole under a name of its own, then linked into place: two sweeps starting
        # at once make one key, and neither reads a half-written one.
        part = path.with_name(f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(secrets.token_bytes(_KEY_BYTES))
            os.link(part, path)
        except FileExistsError:
            pass  # the other one's key won
        finally:
            part.unlink(missing_ok=True)
    try:
        key = path.read_bytes()
    except OSError:
        return None
    return key if len(key) == _KEY_BYTES else None


def _mac(key: bytes, nonce: str, folder: Path, record: dict) -> str:
    # Bound to where the folder is and to the sweep's name and start, so a sealed record
    # copied into another folder (one of ours, sent back with other pickles) does not pass.
    what = f"{Path(folder).resolve()}\n{record.get('name')}\n{record.get('created')}\n{nonce}"
    return hmac.new(key, _CONTEXT + what.encode(), hashlib.sha256).hexdigest()


def new_seal(folder: Path, record: dict) -> dict:
    """The seal of ``record`` (its ``name`` and ``created`` set) in ``folder``; ``{"unsealed":
    why}`` where no key can be made (a read-only home): such a sweep runs, and its resume
    needs ``--trust-state``."""
    try:
        key = _key(create=True)
    except OSError as err:
        return {"unsealed": f"no key at {key_path()}: {err.strerror or err}"}
    if key is None:
        return {"unsealed": f"{key_path()} is not a key this project wrote"}
    nonce = secrets.token_hex(16)
    return {"nonce": nonce, "mac": _mac(key, nonce, folder, record)}


def seal_holds(folder: Path, record: dict) -> bool:
    """Whether ``record`` was sealed in ``folder`` with this user's key."""
    seal = record.get("state_seal")
    if not isinstance(seal, dict) or not all(
        isinstance(seal.get(k), str) for k in ("nonce", "mac")
    ):
        return False
    key = _key(create=False)
    return key is not None and hmac.compare_digest(
        _mac(key, seal["nonce"], folder, record), seal["mac"]
    )


def resealed(folder: Path, record: dict) -> dict:
    """The fields a resumed run writes into its record: a new seal where the old one does not
    hold (the resume got here with ``--trust-state``, so the user vouched for the folder)."""
    return {} if seal_holds(folder, record) else {"state_seal": new_seal(folder, record)}


def seal_problem(record: dict, record_path: Path) -> str | None:
    """None when ``--resume`` may unpickle the sweep's Tune state, else the one-line reason."""
    if seal_holds(Path(record_path).parent, record):
        return None
    seal = record.get("state_seal")
    if seal is None:
        why = "was started before sweeps were sealed (no state_seal in it)"
    elif isinstance(seal, dict) and "unsealed" in seal:
        why = f"was started without a seal ({seal['unsealed']})"
    else:
        why = (
            f"was not sealed in this folder with this user's key ({key_path()}): it was made "
            "elsewhere or moved here"
        )
    tune_dir = Path(record_path).parent / "tune"
    if record.get("storage"):
        tune_dir = f"{record['storage'].rstrip('/')}/{record.get('name')}/tune"
    return (
        f"{record_path}: this sweep {why}; --resume would have Ray Tune unpickle {tune_dir}, "
        "which runs whatever code it names. Add --trust-state if you know where this folder "
        "came from (your own sweep), or start a new sweep"
    )
