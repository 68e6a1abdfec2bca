"""Methods by name: each method module registers its class once; config validation, the runner
and `tuneoff ls methods` look them up here. This is the only list of methods.

The dependency runs one way: method modules import this module (and the config types), never
the other way round. The built-in methods (every module of `tuneoff.methods`) are imported on the
first lookup; a method registered before or after that (a plugin's, a test's) is kept as well.
"""
from __future__ import annotations

import importlib
import pkgutil
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tuneoff.methods.base import Method


class MethodError(ValueError):
    """An option or combination that makes no sense for this model, task or method."""


BUILTIN = "tuneoff.methods"

_METHODS: dict[str, type[Method]] = {}
_discovered = False


def register(cls: type[Method]) -> type[Method]:
    if not cls.name or not cls.name.replace("-", "").isalnum():
        raise MethodError(f"method class {cls.__name__} needs a name of letters, digits and '-'")
    if cls.name in _METHODS and _METHODS[cls.name] is not cls:
        raise MethodError(f"method {cls.name!r} is registered twice")
    if not cls.description:
        raise MethodError(f"method {cls.name!r} needs a one-line description")
    _METHODS[cls.name] = cls
    return cls


def _discover() -> None:
    """Import every built-in method module once (each registers its class as it is imported)."""
    global _discovered
    if _discovered:
        return
    package = importlib.import_module(BUILTIN)
    for info in pkgutil.iter_modules(package.__path__):
        if info.name != "base" and not info.name.startswith("_"):
            importlib.import_module(f"{BUILTIN}.{info.name}")
    _discovered = True


def list_methods() -> list[type[Method]]:
    _discover()
    return sorted(_METHODS.values(), key=lambda c: c.name)


def get_method(name: str) -> type[Method]:
    _discover()
    if name not in _METHODS:
        raise MethodError(f"unknown method {name!r}; known methods: {', '.join(sorted(_METHODS))}")
    return _METHODS[name]
