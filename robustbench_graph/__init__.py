"""robustbench_graph: train image classifiers with robustness-oriented losses and measure
how robust they are (graph smoothness, Laplacian/Parseval, large-margin, stationary-point)."""

__version__ = "0.1.0"

from .data import load_dataset  # noqa: E402
from .runs import load_run  # noqa: E402

__all__ = ["__version__", "load_dataset", "load_run"]
