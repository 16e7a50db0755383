"""The cost of a suite before work starts: each family's declared passes
(:meth:`Perturbation.passes <robustbench_graph.perturbations.family.Perturbation.passes>`)
times the time of one forward and one backward per image, measured by a short probe of the
run's own network on one batch of its test images.

Attacks that stop early declare either their bound (PGD with ``early_stop``: its passes are
the most it can take, shown with ``≤``) or what a typical run takes (DeepFool, AutoAttack:
``passes``, with the bound in ``passes_at_most``, shown beside it).

The probe times the batch size the attack evaluates in (:func:`device.eval_batch_size`),
twice, and keeps the faster window: on a shared CPU a single short window can be several
times too slow.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..perturbations import Perturbation, build_suite, dataset_family, suite_names

if TYPE_CHECKING:
    import torch

    from ..attack import TestSplits
    from ..config import AttackConfig, TrainConfig
    from ..data import ImageData
    from ..models import TappedModel

SLOW_S = 120.0  # a family estimated slower than this per run is named before it starts
PROBE_S = 0.2  # each window of the probe's two timings runs at least this long
PROBE_WINDOWS = 2  # the faster window is kept
EARLY_STOP = frozenset({"pgd"})  # its declared passes are an upper bound


@dataclass(frozen=True)
class Probe:
    """Seconds per image of one forward (inference) and of one backward to the input."""

    forward_s: float
    backward_s: float
    images: int
    device: str


@dataclass(frozen=True)
class FamilyCost:
    name: str
    forward: int  # single-image passes
    backward: int
    seconds: float
    at_most: bool  # an attack that stops early: the passes are its most
    most_seconds: float = 0.0  # the bound, where ``seconds`` is a typical run's
    most_forward: int = 0  # the bound's passes, where ``forward``/``backward`` are typical
    most_backward: int = 0

    @property
    def typical(self) -> bool:
        """Whether the figures are a typical run's, below a declared bound."""
        return (self.most_forward > self.forward or self.most_backward > self.backward
                or self.most_seconds > self.seconds)


@dataclass(frozen=True)
class RunEstimate:
    run: str
    images: int  # test images the suite measures
    probe: Probe
    families: list[FamilyCost]

    @property
    def seconds(self) -> float:
        return sum(f.seconds for f in self.families)

    def slow(self, threshold: float = SLOW_S) -> list[FamilyCost]:
        return [f for f in self.families if f.seconds > threshold]


def probe(model: TappedModel, x: torch.Tensor, y: torch.Tensor) -> Probe:
    """Time one forward (inference) and one forward + backward (cross-entropy, to the input)
    of the batch ``x``, each repeated until it has run for :data:`PROBE_S` (timer noise on a
    busy CPU), after a warm-up pass; the backward is their difference."""
    import torch
    import torch.nn.functional as F

    def forward() -> None:
        with torch.inference_mode():
            model(x)

    def both() -> None:
        u = x.clone().requires_grad_(True)
        torch.autograd.grad(F.cross_entropy(model(u), y), u)

    was_training = model.training
    model.eval()
    try:
        both()
        fwd, fb = _per_call(forward), _per_call(both)
    finally:
        model.train(was_training)
    return Probe(fwd / len(x), max(fb - fwd, 0.0) / len(x), len(x), str(x.device))


def _per_call(fn: Callable[[], None]) -> float:
    best = float("inf")
    for _ in range(PROBE_WINDOWS):
        calls, t0 = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - t0) < PROBE_S or calls < 2:
            fn()
            calls += 1
        best = min(best, elapsed / calls)
    return best


def suite_cost(suite: list[Perturbation], images: int, measured: Probe) -> list[FamilyCost]:
    """Each family's declared passes on ``images`` test images, priced by ``measured``."""
    out = []
    for family in suite:
        fwd, bwd = family.passes(images)
        most_fwd, most_bwd = family.passes_at_most(images)
        out.append(FamilyCost(family.name, fwd, bwd,
                              fwd * measured.forward_s + bwd * measured.backward_s,
                              family.name in EARLY_STOP,
                              most_fwd * measured.forward_s + most_bwd * measured.backward_s,
                              most_fwd, most_bwd))
    return out


def estimate_run(run_dir: Path, suite: str, cfg: AttackConfig, device: torch.device,
                 splits: TestSplits) -> RunEstimate:
    """The estimate of ``suite`` on one run folder: its network probed on its test images."""
    from ..rundir.runs import load_run

    run = load_run(run_dir, device)
    train = run.train_config
    return _estimate(run.name, run.model, splits.get(train.dataset, train.split_seed,
                                                     cfg.test_images),
                     dataset_family(run.info), suite, cfg, device)


def estimate_config(train: TrainConfig, suite: str, cfg: AttackConfig, device: torch.device,
                    splits: TestSplits, threads: int | None = None) -> RunEstimate:
    """The estimate of ``suite`` on a run of ``train`` not trained yet: an untrained network
    of its architecture costs what the trained one will. ``threads``: the torch threads a
    unit will have (an experiment's ``[resources] cpus``), used by the probe on a CPU."""
    from ..data import dataset_info
    from ..rundir.runs import build_model

    model, info = build_model(train, dataset_info(train.dataset))
    model.to(device)
    return _estimate(f"an untrained {train.model}", model,
                     splits.get(train.dataset, train.split_seed, cfg.test_images),
                     dataset_family(info), suite, cfg, device, threads)


def _suite(suite: str, cfg: AttackConfig, family: str) -> list[Perturbation]:
    names = suite_names(suite, family) if suite.strip() in ("all", "default") else \
        suite_names(suite)
    return build_suite(names, cfg.settings, family)


def declared_passes(train: TrainConfig, suite: str, cfg: AttackConfig, images: int
                    ) -> list[FamilyCost]:
    """Each family's declared passes on ``images`` test images of a run of ``train``, from
    the declarations alone (no network, no data, no torch); ``seconds`` is 0: not timed."""
    from ..data import dataset_info

    family = dataset_family(dataset_info(train.dataset))
    return [FamilyCost(f.name, *f.passes(images), 0.0, f.name in EARLY_STOP, 0.0,
                       *f.passes_at_most(images))
            for f in _suite(suite, cfg, family)]


def _estimate(name: str, model: TappedModel, data: ImageData, family: str, suite: str,
              cfg: AttackConfig, device: torch.device, threads: int | None = None
              ) -> RunEstimate:
    import torch

    from ..device import eval_batch_size

    size = min(cfg.batch_size or eval_batch_size(device), len(data))
    batch = data.subset(torch.arange(size)).to(device)
    before = torch.get_num_threads()
    if threads and device.type == "cpu":
        torch.set_num_threads(threads)
    try:
        measured = probe(model, batch.float(), batch.labels)
    finally:
        torch.set_num_threads(before)
    return RunEstimate(name, len(data), measured,
                       suite_cost(_suite(suite, cfg, family), len(data), measured))


def passes_text(n: int) -> str:
    """``1.2M``, ``34.5k``, ``900``: a count of single-image passes."""
    for size, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return str(n)
