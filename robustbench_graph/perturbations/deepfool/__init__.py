"""DeepFool minimal perturbations (Moosavi-Dezfooli et al., CVPR 2016; LapNet Fig. 5 right;
docs/perturbations.md#deepfool).

The model is attacked in [0, 1] pixel space (bounds (0, 1), normalisation inside the model)
with minimal perturbations on a test subset (``samples``, default 1,000, chosen by
``subset``: evenly spaced by default, which on a 10k test set is LapNet's indices 0, 10, 20,
...). Backends: ``native`` (rbg's batched implementation, :mod:`.native`)
and ``foolbox`` (foolbox 3's ``L2DeepFoolAttack`` / ``LinfDeepFoolAttack``); both take the
same steps / candidates / overshoot / loss.

Metrics, over the subset:

* ``mean_l2``, ``median_l2`` (``mean_linf``, ``median_linf`` for ``norms=linf``; param
  ``norm`` = 2 or inf): the norm of the perturbation over the images that are correctly
  classified and successfully attacked; the median of an even count averages the two middle
  values;
* ``success_rate``: successful attacks / correctly classified images;
* ``mean_l2_per_dim``: LapNet's metric, the L2 norm divided by the input dimension D, with
  misclassified images counting 0 and failed attacks left out.

Against foolbox 1.6.1 (LapNet's): ``loss=crossentropy`` linearises log-softmax differences
as 1.6.1 did, but a difference of log-softmax values equals the difference of logits, so it
changes nothing (measured: at most 8.8e-7 per image). What does differ is the overshoot:
foolbox 3 applies it once to the accumulated perturbation (``overshoot_schedule=total``,
0.02), 1.6.1 multiplied every step by 1.05 (``overshoot_schedule=per-step``,
``overshoot=0.05``, with 1.6.1's ``steps=100``); only the native backend has the per-step
schedule.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

from ...config import SUBSET_RULES, ImageSubset
from ...lazy import LazyModule, torch
from ...settings import setting
from ..cell import Cell
from ..checks import require
from ..context import EvalContext, Measurement
from ..family import Perturbation, register_perturbation
from ..metrics import Metric, conventional_median
from ..report_extras import CellFilter, MetricLabel, PerImageFigure, ThresholdCurve
from .native import deepfool

pd = LazyModule("pandas")  # imported on first use (rbg list, status, report need none)

NORM_VALUES = {"l2": 2.0, "linf": float("inf")}
NORM_NAMES = {v: k for k, v in NORM_VALUES.items()}
SCHEDULES = ("total", "per-step")
# The steps DeepFool typically takes per image, for the cost estimate (an image stops once it
# is misclassified). Measured on a smallcnn trained 3 epochs with cross-entropy on mnist5k,
# 1,000 test images, default settings: L2 7.5 steps on average, median 7, 90th percentile 9,
# most 14 (971 images attacked); L-inf 6.8, median 7, 90th percentile 8, most 10. More than
# the "few" of the paper: clipping to [0, 1] cuts the steps on images with many black pixels.
TYPICAL_STEPS = 8


def foolbox_deepfool(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, *,
                     norm: str, steps: int, candidates: int, overshoot: float, loss: str
                     ) -> torch.Tensor:
    """foolbox 3's DeepFool with ``epsilons=None`` (minimal perturbations, raw output)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import foolbox as fb  # optional at import time: its import costs ~1 s
    fmodel = fb.PyTorchModel(model, bounds=(0.0, 1.0), device=images.device)
    cls = fb.attacks.L2DeepFoolAttack if norm == "l2" else fb.attacks.LinfDeepFoolAttack
    attack = cls(steps=steps, candidates=candidates, overshoot=overshoot, loss=loss)
    raw, _, _ = attack(fmodel, images, labels, epsilons=None)
    return raw


@dataclass(frozen=True)
class DeepFoolSettings:
    norms: tuple[str, ...] = setting(("l2",), "threat models: l2, linf")
    samples: int = setting(1000, "test images attacked (LapNet: 1,000)")
    subset: str = setting("spaced", "which images: spaced (0, s, 2s, ...) or first")
    steps: int = setting(50, "iterations (foolbox 3: 50; LapNet's 1.6.1: 100)")
    candidates: int = setting(10, "candidate classes, the clean top-k")
    overshoot: float = setting(0.02, "overshoot (foolbox 3: 0.02; 1.6.1: 0.05 per step)")
    overshoot_schedule: str = setting("total", "total: once on the accumulated perturbation "
                                               "(foolbox 3); per-step: every step (1.6.1)")
    loss: str = setting("logits", "linearised differences of logits or crossentropy "
                                  "(the same steps, see the docs)")
    backend: str = setting("native", "native (rbg's batched DeepFool) or foolbox (foolbox 3)")

    def validate(self) -> None:
        require(bool(self.norms), "deepfool needs at least one norm")
        for norm in self.norms:
            require(norm in NORM_VALUES, f"unknown DeepFool norm {norm!r}; valid: l2, linf")
        require(0 < self.samples <= 10_000_000, f"deepfool samples must be positive, got "
                f"{self.samples}")
        require(self.subset in SUBSET_RULES, f"unknown subset rule {self.subset!r}; valid: "
                f"{', '.join(SUBSET_RULES)}")
        require(0 < self.steps <= 100_000, f"deepfool steps must be in 1..100000, got "
                f"{self.steps}")
        require(2 <= self.candidates <= 100_000, f"deepfool candidates must be at least 2, "
                f"got {self.candidates}")
        require(self.overshoot >= 0, f"deepfool overshoot must be >= 0, got {self.overshoot}")
        require(self.overshoot_schedule in SCHEDULES, f"unknown overshoot schedule "
                f"{self.overshoot_schedule!r}; valid: {', '.join(SCHEDULES)}")
        require(self.loss in ("logits", "crossentropy"), f"unknown DeepFool loss "
                f"{self.loss!r}; valid: logits, crossentropy")
        require(self.backend in ("native", "foolbox"), f"unknown DeepFool backend "
                f"{self.backend!r}; valid: native, foolbox")
        require(self.backend == "native" or self.overshoot_schedule == "total",
                "the per-step overshoot schedule needs backend=native")


@register_perturbation("deepfool", "DeepFool minimal L2 perturbation on a 1,000-image test "
                       "subset: mean/median L2, success rate, LapNet's L2 per dimension")
class DeepFool(Perturbation):
    Settings = DeepFoolSettings
    sweep = "norms"
    order = 90
    title = "DeepFool"
    short_title = "deep fool"

    def passes(self, images: int) -> tuple[int, int]:
        """Per norm, on ``samples`` images, each taking :data:`TYPICAL_STEPS` steps (at most
        ``steps``): per step one forward and ``candidates - 1`` backwards (the class
        differences, through the one graph). Each image stops once misclassified, so this is
        what a typical run takes, not the most: :meth:`passes_at_most` is the bound."""
        return self._passes(images, min(self.settings.steps, TYPICAL_STEPS))

    def passes_at_most(self, images: int) -> tuple[int, int]:
        """:meth:`passes` with every image taking all ``steps`` steps."""
        return self._passes(images, self.settings.steps)

    def _passes(self, images: int, steps: int) -> tuple[int, int]:
        """An image taking ``steps`` steps: a forward each, one more that finds it
        misclassified (none after the last allowed step), the two classifications."""
        s, n = self.settings, min(images, self.settings.samples) * self.cell_count()
        return n * (min(steps + 1, s.steps) + 2), n * steps * (s.candidates - 1)

    @classmethod
    def describe_cell(cls, param: str, value: float) -> str:
        norm = dict(l2="L2", linf="L-inf").get(NORM_NAMES.get(value, ""))
        return f"DeepFool, {norm}" if param == "norm" and norm else "DeepFool"
    headline = "mean_l2"
    metrics = (
        Metric("mean_l2", "higher", "mean L2 norm of the successful minimal perturbations"),
        Metric("median_l2", "higher", "median L2 norm of the successful perturbations"),
        Metric("mean_linf", "higher", "mean L-inf norm of the successful perturbations"),
        Metric("median_linf", "higher", "median L-inf norm of the successful perturbations"),
        Metric("success_rate", "lower", "successful attacks / correctly classified images",
               percent=True),
        Metric("mean_l2_per_dim", "higher", "LapNet's metric: L2 / D, misclassified "
                "images counting 0"),
    )
    report_extras = (
        MetricLabel("mean_l2", unit="L2", axis="DeepFool L2 distance (mean over images)"),
        MetricLabel("median_l2", unit="L2"),
        # Robust accuracy at ε: an image counts while its minimal distance exceeds ε.
        PerImageFigure(
            "deepfool-robust-accuracy", "DeepFool", "DeepFool (L2), band: range over networks",
            "robust accuracy against the DeepFool L2 distance (from its per-image distances)",
            ThresholdCurve("distance", "L2 distance ε (stronger →)", "robust accuracy (%)"),
            CellFilter(param="norm", param_value=NORM_VALUES["l2"])),
    )

    def sweep_param(self, field: str) -> str:
        return "norm"

    def sweep_value(self, field: str, value: str) -> float:
        return NORM_VALUES[value]

    def attack(self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, norm: str
               ) -> torch.Tensor:
        s = self.settings
        common = dict(norm=norm, steps=s.steps, candidates=s.candidates,
                      overshoot=s.overshoot, loss=s.loss)
        if s.backend == "foolbox":
            return foolbox_deepfool(model, x, y, **common)
        return deepfool(model, x, y, input_layer=getattr(model, "input_layer", None),
                        overshoot_schedule=s.overshoot_schedule, **common)

    def evaluate(self, cell: Cell, ctx: EvalContext) -> list[Measurement]:
        s = self.settings
        norm = NORM_NAMES[cell.param_value]
        order = NORM_VALUES[norm]
        idx = torch.tensor(ImageSubset(s.samples, s.subset).indices(len(ctx.data)))
        dim = ctx.data.images[0].numel()
        norms, correct_all, success_all, labels = [], [], [], []
        total = ctx.n_batches(len(idx))
        for done, (x, y) in enumerate(ctx.batches(idx), start=1):
            adv = self.attack(ctx.model, x, y, norm)
            with torch.inference_mode():
                correct = ctx.predictions(ctx.model(x), self.name) == y
                fooled = ctx.predictions(ctx.model(adv), self.name) != y
            norms.append((adv - x).flatten(1).norm(p=order, dim=1).cpu())
            correct_all.append(correct.cpu())
            success_all.append((correct & fooled).cpu())
            labels.append(y.cpu())
            ctx.advance(done, total)
        dist = torch.cat(norms).double()
        correct = torch.cat(correct_all)
        success = torch.cat(success_all)
        n_ok, n_success, n_wrong = int(correct.sum()), int(success.sum()), int((~correct).sum())
        ok = dist[success]
        # The minimal adversarial distance per image: 0 where misclassified when clean,
        # infinite where the attack failed; robust accuracy at eps is mean(distance > eps).
        distance = torch.where(success, dist, torch.full_like(dist, math.inf))
        distance[~correct] = 0.0
        ctx.keep_per_image(cell, pd.DataFrame({"image": ctx.test_index(idx).numpy(),
                                               "label": torch.cat(labels).numpy(),
                                               "distance": distance.numpy()}))
        nan = math.nan
        per_dim_n = n_wrong + n_success
        rows = [
            Measurement(0, f"mean_{norm}", float(ok.mean()) if n_success else nan, n_success),
            Measurement(0, f"median_{norm}", conventional_median(ok), n_success),
            Measurement(0, "success_rate", n_success / n_ok if n_ok else nan, n_ok),
        ]
        if norm == "l2":
            rows.append(Measurement(0, "mean_l2_per_dim", float(ok.sum() / dim / per_dim_n)
                                    if per_dim_n else nan, per_dim_n))
        return rows
