"""Provenance in a run's ``config.json``: the versions and commit of the software that wrote
it (``versions``, ``git_commit``), the same for trained and imported runs."""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path
from typing import Any

from .. import __version__


def git_commit() -> str | None:
    """The commit of the rbg checkout this code runs from, if it is one."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
            cwd=Path(__file__).parent,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def software_record() -> dict[str, Any]:
    """The versions and commit of the software that writes a run's config record."""
    import torch  # written when a run is trained or imported, which loads torch anyway

    return {
        "versions": {
            "robustbench_graph": __version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
        "git_commit": git_commit(),
    }
