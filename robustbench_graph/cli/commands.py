"""Imports every command module so that each registers itself on the app."""

import importlib
import pkgutil

from .. import cli as _pkg

for _mod in pkgutil.iter_modules(_pkg.__path__):
    if _mod.name.startswith("cmd_"):
        importlib.import_module(f"{_pkg.__name__}.{_mod.name}")
