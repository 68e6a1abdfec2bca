"""The method registry: each method module registers its class once, by name; this is the only list.

`tuneoff ls methods` and config validation read it. A new method is a module in this package
that calls `register`; the shared test battery then covers it.
"""
from __future__ import annotations

import importlib
import pkgutil

from tuneoff.methods.base import ClassifierMethod, Context, Method, MethodError, MethodOptions

__all__ = ["Method", "MethodOptions", "MethodError", "Context", "ClassifierMethod",
           "register", "get_method", "list_methods"]

_REGISTRY: dict[str, type[Method]] = {}


def register(cls: type[Method]) -> type[Method]:
    if not cls.name or not cls.name.replace("-", "").isalnum():
        raise MethodError(f"method class {cls.__name__} needs a name of letters, digits and '-'")
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise MethodError(f"method {cls.name!r} is registered twice")
    if not cls.description:
        raise MethodError(f"method {cls.name!r} needs a one-line description")
    _REGISTRY[cls.name] = cls
    return cls


def _discover() -> None:
    for info in pkgutil.iter_modules(__path__):
        if info.name != "base" and not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")


def list_methods() -> list[type[Method]]:
    if not _REGISTRY:
        _discover()
    return sorted(_REGISTRY.values(), key=lambda c: c.name)


def get_method(name: str) -> type[Method]:
    if not _REGISTRY:
        _discover()
    if name not in _REGISTRY:
        raise MethodError(f"unknown method {name!r}; known methods: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]
