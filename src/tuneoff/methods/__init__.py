"""The built-in methods: each module of this package registers its class in `tuneoff.registry`.

A new method is a module here (or anywhere, for a plugin) that calls `register`; the shared test
battery then covers it.
"""
from __future__ import annotations

from tuneoff.methods.base import ClassifierMethod, Context, Method, MethodError, MethodOptions
from tuneoff.registry import get_method, list_methods, register

__all__ = ["Method", "MethodOptions", "MethodError", "Context", "ClassifierMethod",
           "register", "get_method", "list_methods"]
