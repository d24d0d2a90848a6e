"""Old dotted paths of the modules moved into subpackages (issue 24), still importable.

What is stored by module path outlives a move: Tune's experiment state in
``results/<name>/tune/`` (the scheduler, the searcher and the callbacks, pickled by class
path and unpickled by ``--resume``), pickles of project objects, and MLflow pyfunc models
whose code imports ``orchestrator.predict``. ``MovedModules`` is a finder at the end of
``sys.meta_path`` that answers only for the old paths: importing one imports the new module
and binds it under the old name too (``sys.modules["orchestrator.schedulers"] is
sys.modules["orchestrator.sweep.schedulers"]``). Nothing is imported before an old path is
asked for. Where a package now has the old module's name (``orchestrator.sweep`` was
sweep.py) or a command keeps its ``python -m`` name over code that moved,
:func:`forward_to` gives that module a ``__getattr__`` reading names from the new module on
first use.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
from collections.abc import Callable, Mapping

__all__ = ["MovedModules", "install", "forward_to"]


class MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finder and loader of old module paths: ``{"pkg.old": "pkg.room.new", ...}``."""

    def __init__(self, moves: Mapping[str, str]) -> None:
        self.moves = dict(moves)

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in self.moves:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec):
        return None  # a plain placeholder; exec_module puts the real module in its place

    def exec_module(self, module) -> None:
        # importlib reads sys.modules[name] back after exec_module: the moved module itself
        # is what the import returns, under both names, with its own __spec__ and __name__.
        sys.modules[module.__name__] = importlib.import_module(self.moves[module.__name__])


def install(package: str, moves: Mapping[str, str]) -> MovedModules:
    """Register ``package``'s old paths (``{"old": "room.new"}``, relative to it), once."""
    full = {f"{package}.{old}": f"{package}.{new}" for old, new in moves.items()}
    for finder in sys.meta_path:
        if isinstance(finder, MovedModules) and finder.moves == full:
            return finder
    finder = MovedModules(full)
    sys.meta_path.append(finder)  # last: a module that exists is always found first
    return finder


def forward_to(target: str) -> Callable[[str], object]:
    """A module ``__getattr__`` that looks a missing name up in module ``target``."""

    def __getattr__(name: str) -> object:
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(importlib.import_module(target), name)

    return __getattr__
