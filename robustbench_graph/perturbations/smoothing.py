"""Certified L2 robustness by randomized smoothing (Cohen, Rosenfeld, Kolter, ICML 2019,
arXiv 1902.02918; docs/perturbations.md#smoothing).

The network f becomes the smoothed classifier g(x) = argmax_c P(f(x + eps) = c),
eps ~ N(0, sigma^2 I), the noise added to the [0, 1] image the model takes and *not* clipped,
so radii are in the pixel units of DeepFool's distances. Per image, Cohen's CERTIFY (``n0``
selection draws, ``n`` estimation draws, a one-sided Clopper-Pearson bound at 1 - ``alpha``)
gives a class and a certified radius, or abstains; PREDICT (``n`` fresh draws, a binomial test
of the two top counts) gives the smoothed classifier's prediction. The statistics are in
:mod:`.smoothing_stats`.

Batched: the draws of several images go through one forward pass (``batch`` noisy images at
a time), the noise is drawn on the model's device and counted with ``bincount``. The noise of
image i (its index in the test split), phase ``select``/``estimate``/``predict`` and block b
of :data:`BLOCK` draws comes from its own generator seeded by
``stable_seed(run, "smoothing", phase, i, b)``, so the numbers depend neither on the batch
size nor on which other images are certified, and the same eps serves every sigma.

One cell per radius (the curve of certified accuracy over the radius); the certification is
computed once, on the first cell that needs it, and kept for the others.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..config import SUBSET_RULES, ImageSubset, stable_seed
from ..lazy import LazyModule, inference_mode, torch
from ..settings import setting
from . import smoothing_stats as stats
from .cell import Cell, settings_fingerprint
from .checks import require
from .context import EvalContext, Measurement
from .family import Perturbation, register_perturbation
from .metrics import Metric, Strength
from .report_extras import MetricLabel, PerImageFigure, ThresholdCurve

pd = LazyModule("pandas")  # imported on first use (rbg list, status, report need none)

BLOCK = 1000  # draws per noise generator (a fixed block: the noise ignores the batch size)
PHASES = ("select", "estimate", "predict")


@inference_mode
def class_counts(classify: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor,
                 classes: int, draws: int, sigma: float, seed: Callable[[int, int], int],
                 batch: int, advance: Callable[[], None] | None = None) -> torch.Tensor:
    """Counts (images x ``classes``, int64, on the CPU) of ``classify``'s predictions on
    ``images + sigma * eps`` over ``draws`` draws per image, unclipped; ``seed(row, block)``
    seeds the standard normal eps of one block of :data:`BLOCK` draws of image ``row``."""
    shape, device = tuple(images.shape[1:]), images.device
    group = max(1, batch // min(draws, BLOCK))  # images whose draws share a forward pass
    out = torch.zeros((len(images), classes), dtype=torch.int64)
    for g0 in range(0, len(images), group):
        xs = images[g0:g0 + group]
        size = len(xs)
        for block, start in enumerate(range(0, draws, BLOCK)):
            m = min(BLOCK, draws - start)
            # x + sigma * eps, written in place into one buffer (no stacked copy of eps)
            noisy = torch.empty((size, m, *shape), device=device, dtype=xs.dtype)
            for j in range(size):
                torch.randn((m, *shape), device=device, dtype=xs.dtype, out=noisy[j],
                            generator=torch.Generator(device=device).manual_seed(
                                seed(g0 + j, block)))
            noisy = noisy.mul_(sigma).add_(xs.unsqueeze(1)).view(size * m, *shape)
            preds = torch.cat([classify(noisy[a:a + batch]) for a in range(0, size * m, batch)])
            owner = torch.arange(size, device=device).repeat_interleave(m)
            got = torch.bincount(owner * classes + preds, minlength=size * classes)
            out[g0:g0 + size] += got.view(size, classes).cpu()
            if advance is not None:
                advance()
    return out


@dataclass(frozen=True)
class SmoothingSettings:
    sigma: float = setting(0.25, "noise std in [0, 1] pixel units (Cohen: 0.12, 0.25, 0.5, 1)")
    n0: int = setting(100, "selection draws per image (Cohen: 100)")
    n: int = setting(1000, "estimation draws per image, and PREDICT's (Cohen: 100,000)")
    alpha: float = setting(0.001, "failure probability of the bound and the test (Cohen: "
                                  "0.001)")
    radius: tuple[float, ...] = setting((0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5),
                                        "L2 radii of the certified-accuracy curve")
    samples: int = setting(500, "test images certified (Cohen: 500, every 20th of CIFAR-10)")
    subset: str = setting("spaced", "which images: spaced (0, s, 2s, ...) or first")
    batch: int = setting(1000, "noisy images per forward pass (changes no number)")

    def validate(self) -> None:
        require(0 < self.sigma <= 100, f"smoothing sigma must be in (0, 100], got "
                f"{self.sigma:g}")
        require(1 <= self.n0 <= 10_000_000, f"smoothing n0 must be in 1..10000000, got "
                f"{self.n0}")
        require(1 <= self.n <= 10_000_000, f"smoothing n must be in 1..10000000, got {self.n}")
        require(0 < self.alpha < 1, f"smoothing alpha must be in (0, 1), got {self.alpha:g}")
        require(bool(self.radius), "smoothing needs at least one radius")
        for r in self.radius:
            require(0 <= r <= 1000, f"smoothing radius {r:g} is out of range [0, 1000]")
        require(0 < self.samples <= 10_000_000, f"smoothing samples must be positive, got "
                f"{self.samples}")
        require(self.subset in SUBSET_RULES, f"unknown subset rule {self.subset!r}; valid: "
                f"{', '.join(SUBSET_RULES)}")
        require(1 <= self.batch <= 10_000_000, f"smoothing batch must be positive, got "
                f"{self.batch}")


@dataclass(frozen=True)
class Certification:
    """Per certified image: its test index, label, CERTIFY's class (or -1), lower bound and
    radius, and PREDICT's class (or -1)."""

    image: np.ndarray
    label: np.ndarray
    prediction: np.ndarray
    p_lower: np.ndarray
    radius: np.ndarray
    smoothed: np.ndarray

    @property
    def correct_radius(self) -> np.ndarray:
        """The certified radius where CERTIFY is right, else 0 (the ACR's terms)."""
        return np.where(self.prediction == self.label, self.radius, 0.0)


# Grey images (mnist5k): n = 1,000 on 100 images, 210,000 forward passes per network (about
# 100 s for the small CNN on one free CPU core); the radius cap is
# sigma * Phi^-1(0.001^(1/1000)) = 2.46 sigma.
GREY = {"n": 1000, "samples": 100, "radius": (0.0, 0.25, 0.5, 0.75, 1.0)}


@register_perturbation("smoothing", "randomized smoothing (Cohen et al. 2019): certified L2 "
                       "accuracy over the radius, ACR, abstentions, smoothed clean accuracy")
class Smoothing(Perturbation):
    Settings = SmoothingSettings
    presets = {"grey": GREY}
    sweep = "radius"
    order = 92
    # The noise is not clipped: the model sees x + sigma * eps outside [0, 1] (Cohen's g).
    space = "normalized"
    suite_families = ()  # named only (--suite smoothing): the default suite is unchanged
    title = "Certified (smoothing)"
    short_title = "certified"
    strengths = {"radius": Strength("radius", "L2")}
    headline_setting = {"grey": 0.5, "colour": 0.5}
    headline = "certified_accuracy"
    metrics = (
        Metric("certified_accuracy", "higher", "share of images CERTIFY classifies right "
               "with a certified L2 radius >= r", percent=True),
        Metric("acr", "higher", "average certified radius: the mean radius, 0 where CERTIFY "
               "abstains or is wrong"),
        Metric("abstain_rate", "none", "share of images on which CERTIFY abstains",
               percent=True),
        Metric("smoothed_accuracy", "higher", "accuracy of PREDICT (an abstention counts "
               "as wrong)", percent=True),
    )
    report_extras = (
        MetricLabel("acr", unit="L2", axis="average certified radius (L2)"),
        PerImageFigure(
            "smoothing-certified-accuracy", "certified accuracy",
            "certified accuracy (randomized smoothing), band: range over networks",
            "certified accuracy against the L2 radius (from the per-image certified radii; "
            "compare with DeepFool's empirical robust accuracy, which can never be lower)",
            ThresholdCurve("certified_radius", "L2 radius r (stronger →)",
                           "certified accuracy (%)")),
    )

    def __init__(self, settings: Any = None) -> None:
        super().__init__(settings)
        self._kept: tuple[EvalContext, str, Certification] | None = None

    def passes(self, images: int) -> tuple[int, int]:
        """Forward passes only, once for every radius: per certified image ``n0`` selection
        draws, ``n`` estimation draws (CERTIFY) and ``n`` more (PREDICT), plus one image to
        read the class count; the certified images are ``samples`` of the ``images``."""
        s = self.settings
        certified = len(ImageSubset(s.samples, s.subset).indices(images))
        return certified * (s.n0 + 2 * s.n) + (1 if certified else 0), 0

    def certification(self, cell: Cell, ctx: EvalContext) -> Certification:
        """CERTIFY and PREDICT on the cell's images, computed once for every radius."""
        key = settings_fingerprint(self.name, self.version, cell.settings)
        if self._kept is not None and self._kept[0] is ctx and self._kept[1] == key:
            return self._kept[2]
        s = self.settings
        note = stats.too_few_draws(s.n, s.alpha)
        if note is not None:
            warnings.warn(note, RuntimeWarning, stacklevel=3)
        rows = torch.tensor(ImageSubset(s.samples, s.subset).indices(len(ctx.data)))
        index = ctx.test_index(rows).tolist()
        images, labels = ctx.images[rows.to(ctx.device)], ctx.labels[rows.to(ctx.device)]
        with torch.inference_mode():
            classes = int(ctx.model(images[:1]).shape[1])

        def classify(z: torch.Tensor) -> torch.Tensor:
            return ctx.predictions(ctx.model(z), self.name)

        total = sum(math.ceil(len(rows) / max(1, s.batch // min(d, BLOCK)))
                    * math.ceil(d / BLOCK) for d in (s.n0, s.n, s.n))
        done = 0

        def advance() -> None:
            nonlocal done
            done += 1
            ctx.advance(done, total)

        counts = {}
        for phase, draws in zip(PHASES, (s.n0, s.n, s.n), strict=True):
            def seed(row: int, block: int, phase: str = phase) -> int:
                return stable_seed(ctx.run, self.name, phase, index[row], block)

            counts[phase] = class_counts(classify, images, classes, draws, s.sigma, seed,
                                         s.batch, advance).numpy()
        prediction, p_lower, radius = stats.certify(counts["select"], counts["estimate"],
                                                    s.sigma, s.alpha)
        smoothed, _ = stats.predict(counts["predict"], s.alpha)
        result = Certification(np.asarray(index), labels.cpu().numpy(), prediction, p_lower,
                               radius, smoothed)
        self._kept = (ctx, key, result)
        return result

    def evaluate(self, cell: Cell, ctx: EvalContext) -> list[Measurement]:
        c = self.certification(cell, ctx)
        n = len(c.image)
        if cell.param_value == min(self.sweep_value("radius", r) for r in self.settings.radius):
            ctx.keep_per_image(cell, pd.DataFrame({
                "image": c.image, "label": c.label, "prediction": c.prediction,
                "p_lower": c.p_lower, "radius": c.radius,
                "certified_radius": c.correct_radius, "smoothed_prediction": c.smoothed}))
        nan = math.nan
        return [
            Measurement(0, "certified_accuracy", stats.certified_accuracy(
                c.prediction, c.radius, c.label, cell.param_value), n),
            Measurement(0, "acr", float(c.correct_radius.mean()) if n else nan, n),
            Measurement(0, "abstain_rate", float((c.prediction == stats.ABSTAIN).mean())
                        if n else nan, n),
            Measurement(0, "smoothed_accuracy", float((c.smoothed == c.label).mean())
                        if n else nan, n),
        ]
