"""Deferred imports, so that ``import flightdeck_rs.sdk`` costs little more than a bare
interpreter start.

``json = lazy_module("json", globals())`` binds a placeholder; the first attribute read through
it imports the real module and puts that module in the placeholder's place in the given
namespace, so from then on the name is the module itself (no indirection on hot paths, and
monkeypatching works as with a plain import). Callers keep ``if TYPE_CHECKING: import json``
next to it so type checkers see the real module.

This module imports nothing beyond ``sys``: it is on the import path of every public name.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import ModuleType
    from typing import Any


class LazyModule:
    """Stands in for a module until it is first used (then the namespace holds the module)."""

    __slots__ = ("_lazy_name", "_lazy_namespace", "_lazy_alias")

    def __init__(self, name: str, namespace: dict[str, Any], alias: str) -> None:
        self._lazy_name = name
        self._lazy_namespace = namespace
        self._lazy_alias = alias

    def _lazy_load(self) -> ModuleType:
        name = self._lazy_name
        module = sys.modules.get(name)
        if module is None:
            __import__(name)
            module = sys.modules[name]
        if self._lazy_namespace.get(self._lazy_alias) is self:
            self._lazy_namespace[self._lazy_alias] = module
        return module

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._lazy_load(), attr)

    def __repr__(self) -> str:
        return f"<lazy module {self._lazy_name!r}>"


def lazy_module(name: str, namespace: dict[str, Any], alias: str | None = None) -> Any:
    """A placeholder for module ``name``, bound as ``alias`` (default: the last part of
    ``name``) in ``namespace``; the first attribute access imports the module."""
    return LazyModule(name, namespace, alias or name.rpartition(".")[2])
