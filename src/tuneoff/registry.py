"""Methods by name: each method module registers its class once; config validation, the runner
and `tuneoff ls methods` look them up here. This is the only list of methods.

The dependency runs one way: method modules import this module (and the config types), never
the other way round. The built-in methods are the modules named in `BUILTIN_MODULES`, imported on
the first lookup (a module added to `tuneoff.methods` without being listed there is an error, so
no method is left out silently); a method registered before or after that (a plugin's, a test's)
is kept as well.
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
# the modules of `tuneoff.methods` that register the built-in methods, and those that hold shared
# pieces only (every module of the package is in one of the two)
BUILTIN_MODULES = ("finetune", "head", "pattern", "icl", "distill", "adaptive", "half", "bitfit", "peft_methods",
                   "peft_family", "peft_named", "adapter", "pet", "setfit_method")
SHARED_MODULES = ("base", "kvcache", "layers", "shared_prefix")

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
    found = {info.name for info in pkgutil.iter_modules(package.__path__) if not info.name.startswith("_")}
    unlisted = found - set(BUILTIN_MODULES) - set(SHARED_MODULES)
    if unlisted:
        raise MethodError(f"{BUILTIN} has module(s) {sorted(unlisted)} that registry.BUILTIN_MODULES (methods) or "
                          "SHARED_MODULES (shared pieces) does not list: add each to one of them")
    for name in BUILTIN_MODULES:
        importlib.import_module(f"{BUILTIN}.{name}")
    _discovered = True


def list_methods() -> list[type[Method]]:
    _discover()
    return sorted(_METHODS.values(), key=lambda c: c.name)


def get_method(name: str) -> type[Method]:
    _discover()
    if name not in _METHODS:
        raise MethodError(f"unknown method {name!r}; known methods: {', '.join(sorted(_METHODS))}")
    return _METHODS[name]
