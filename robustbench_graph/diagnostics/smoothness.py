"""Per-layer label-signal smoothness of trained runs (LapNet Fig. 3; arXiv 1805.10133 eq. 4).

For each post-ReLU tap l of a model and each Laplacian power m, ``sigma^l = tr(S^T L^m S)`` on
the full cosine graph of the tap's flattened activations (docs/losses.md#label-smoothness), averaged
over consecutive test batches of 100 images. Only full batches are used (the raw sigma grows
like b^(m+1)), unless the test set is smaller than one batch. The test set is first shuffled
by a fixed seed: some test splits are sorted by class (mnist5k), and a one-class batch has
sigma = 0. Results are a tidy table
(:data:`COLUMNS`); :func:`plot_smoothness` draws one line per method across depth.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import pandas as pd
import torch

from ..data import ImageData, load_dataset
from ..errors import RbgError
from ..graph import cosine_similarity, knn_sparsify, label_signals, signal_smoothness
from ..models import TappedModel, capture
from ..rundir.atomic import atomic_write, write_text_atomic
from ..rundir.folder import CONFIG, find_runs, read_status
from ..rundir.runs import load_run

COLUMNS: tuple[str, ...] = ("run", "method", "seed", "layer", "m", "value")


@torch.no_grad()
def layer_smoothness(
    model: TappedModel,
    data: ImageData,
    *,
    batch_size: int = 100,
    powers: Sequence[int] = (1, 2),
    k: int | None = None,
    limit: int | None = None,
    device: torch.device | str = "cpu",
    shuffle_seed: int = 0,
) -> list[tuple[int, int, float]]:
    """Mean ``sigma`` per (layer, m) over test batches (of the test set shuffled by
    ``shuffle_seed``, first ``limit`` images); layers are numbered from 1."""
    if batch_size < 2:
        raise RbgError(f"the smoothness needs batches of at least 2 images, got {batch_size}")
    n = len(data) if limit is None else min(limit, len(data))
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(shuffle_seed))
    data = data.subset(order[:n])
    starts = list(range(0, n - batch_size + 1, batch_size)) or ([0] if n >= 2 else [])
    if not starts:
        raise RbgError("the smoothness needs at least 2 test images")
    model.eval().to(device)
    taps = model.relu_taps
    if not taps:
        raise RbgError("the model has no ReLU modules to measure the smoothness after")
    totals: torch.Tensor | None = None  # (taps as called, powers): a module used twice is two
    for start in starts:
        rows = slice(start, min(start + batch_size, n))
        x = data.float(rows).to(device)
        signals = label_signals(data.labels[rows].to(device), model.num_classes, torch.float64)
        with capture(taps) as outs:
            model(x)
        if totals is None:
            totals = torch.zeros(len(outs), len(powers), dtype=torch.float64)
        for i, rep in enumerate(outs):
            adj = knn_sparsify(cosine_similarity(rep.to(torch.float64)), k)
            for j, m in enumerate(powers):
                totals[i, j] += float(signal_smoothness(adj, signals, m))
    assert totals is not None
    means = totals / len(starts)
    return [(i + 1, m, float(means[i, j])) for i in range(len(means))
            for j, m in enumerate(powers)]


def collect_runs(paths: Iterable[Path]) -> tuple[list[Path], list[Path]]:
    """Run folders named directly or found under roots: (complete, skipped incomplete)."""
    found: list[Path] = []
    for path in paths:
        path = Path(path)
        if not path.exists():
            raise RbgError(f"{path} does not exist")
        found += find_runs(path)
    runs = sorted(set(found))
    if not runs:
        names = ", ".join(str(p) for p in paths) or "(none given)"
        raise RbgError(f"no run folders (with {CONFIG}) found in {names}")
    complete = [r for r in runs if read_status(r)["status"] == "complete"]
    if not complete:
        raise RbgError(f"none of the {len(runs)} run folders found is a finished run")
    return complete, [r for r in runs if r not in complete]


def smoothness_table(
    run_dirs: Sequence[Path],
    *,
    batch_size: int = 100,
    powers: Sequence[int] = (1, 2),
    limit: int | None = None,
    device: torch.device | str = "cpu",
    data_dir: Path | None = None,
    on_run: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """The tidy smoothness table (:data:`COLUMNS`) of finished runs."""
    cache: dict[tuple[str, int], ImageData] = {}
    rows = []
    for run_dir in run_dirs:
        run = load_run(run_dir, device)
        cfg = run.train_config
        key = (cfg.dataset, cfg.split_seed)
        if key not in cache:
            cache[key] = load_dataset(cfg.dataset, False, data_dir, split_seed=cfg.split_seed)
        values = layer_smoothness(run.model, cache[key], batch_size=batch_size, powers=powers,
                                  limit=limit, device=device)
        rows += [(run.name, run.method, run.seed, layer, m, v) for layer, m, v in values]
        if on_run is not None:
            on_run(run.name)
    return pd.DataFrame(rows, columns=list(COLUMNS))


def write_table(df: pd.DataFrame, path: Path) -> None:
    write_text_atomic(Path(path), df.to_csv(index=False))


def plot_smoothness(df: pd.DataFrame, path: Path) -> None:
    """Line plot of sigma across depth, one line per method (mean over seeds), one panel per
    m, log scale (LapNet Fig. 3)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    powers = sorted(df["m"].unique())
    fig, axes = plt.subplots(1, len(powers), figsize=(5.5 * len(powers), 4), squeeze=False)
    means = df.groupby(["method", "m", "layer"], as_index=False)["value"].mean()
    for ax, m in zip(axes[0], powers, strict=True):
        for method, part in means[means["m"] == m].groupby("method"):
            ax.plot(part["layer"], part["value"], marker="o", label=str(method))
        if (means.loc[means["m"] == m, "value"] > 0).all():
            ax.set_yscale("log")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("post-ReLU layer")
        ax.set_ylabel(f"tr(S^T L^{m} S), mean over test batches")
        ax.set_title(f"label-signal smoothness, m = {m}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    fig.tight_layout()
    try:
        atomic_write(Path(path), lambda p: fig.savefig(p, format="png", dpi=120))
    finally:
        plt.close(fig)
