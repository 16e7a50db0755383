"""Imports every command module (``cmd_*.py``) so that each registers itself on the app."""

from .. import cli as _pkg
from ..registry import import_submodules

import_submodules(_pkg.__name__, _pkg.__path__, prefix="cmd_")
