"""``rbg report``: summaries, comparisons with a baseline, box plots and an HTML page.

The core only computes and writes files; it never prints. See :func:`build_report`.
"""

from .build import build_report
from .collect import NoUsableResults, RunInfo
from .compare import holm
from .model import Report

__all__ = ["NoUsableResults", "Report", "RunInfo", "build_report", "holm"]
