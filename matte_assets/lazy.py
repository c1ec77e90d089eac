"""Modules imported on first attribute access (keeps `matte` start-up short)."""

from __future__ import annotations

import importlib
import types
from typing import Any


class _LazyModule(types.ModuleType):
    def __init__(self, name: str):
        super().__init__(name)
        self.__dict__["_lazy_name"] = name
        self.__dict__["_lazy_module"] = None

    def _load(self) -> types.ModuleType:
        if self.__dict__["_lazy_module"] is None:
            self.__dict__["_lazy_module"] = importlib.import_module(self.__dict__["_lazy_name"])
        return self.__dict__["_lazy_module"]

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._load(), attr)


def lazy_module(name: str) -> types.ModuleType:
    """A stand-in for `import name` that imports it when an attribute is first used."""
    return _LazyModule(name)
