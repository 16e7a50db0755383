"""DeepFool minimal L2 perturbations (Moosavi-Dezfooli et al., CVPR 2016; LapNet Fig. 5 right;
METHODS.md section 1.4).

The model is attacked in [0, 1] pixel space (bounds (0, 1), normalisation inside the model)
with minimal perturbations on an evenly spaced test subset (default 1,000 images; on a 10k test
set that is LapNet's indices 0, 10, 20, ...). Backends: ``native`` (rbg's batched
implementation, :mod:`robustbench_graph.deepfool`) and ``foolbox`` (foolbox 3's
``L2DeepFoolAttack``); both take the same steps / candidates / overshoot / loss.

Metrics, over the subset:

* ``mean_l2``, ``median_l2``: L2 norm of the perturbation over the images that are correctly
  classified and successfully attacked (``mean_linf``, ``median_linf`` for the L-inf attack,
  ``--deepfool-norms l2,linf``; param ``norm`` = 2 or inf);
* ``success_rate``: successful attacks / correctly classified images;
* ``mean_l2_per_dim``: LapNet's metric, the L2 norm divided by the input dimension D, with
  misclassified images counting 0 and failed attacks left out.

Differences from foolbox 1.6.1 used by LapNet: 1.6.1 ran 100 steps on the top-10 classes,
linearised cross-entropy differences and multiplied each step by 1.05; foolbox 3 runs
``steps`` (default 50) with ``candidates`` (10), linearises logit differences by default
(``--deepfool-loss crossentropy`` for 1.6.1's choice) and applies the overshoot once to the
accumulated perturbation (x0 + (1 + overshoot) p_total, default 0.02).
"""

from __future__ import annotations

import warnings

import torch

from ..config import AttackConfig
from .base import Cell, EvalContext, Measurement, Perturbation, register_perturbation

NORM_VALUES = {"l2": 2.0, "linf": float("inf")}


def subset_indices(n: int, samples: int) -> torch.Tensor:
    """Evenly spaced indices 0, s, 2s, ... with s = n // samples (all when samples >= n)."""
    step = max(1, n // samples)
    return torch.arange(0, n, step)[:samples]


def foolbox_deepfool(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, *,
                     norm: str, steps: int, candidates: int, overshoot: float, loss: str
                     ) -> torch.Tensor:
    """foolbox 3's DeepFool with ``epsilons=None`` (minimal perturbations, raw output)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import foolbox as fb
    fmodel = fb.PyTorchModel(model, bounds=(0.0, 1.0), device=images.device)
    cls = fb.attacks.L2DeepFoolAttack if norm == "l2" else fb.attacks.LinfDeepFoolAttack
    attack = cls(steps=steps, candidates=candidates, overshoot=overshoot, loss=loss)
    raw, _, _ = attack(fmodel, images, labels, epsilons=None)
    return raw


def run_deepfool(backend: str, model: torch.nn.Module, images: torch.Tensor,
                 labels: torch.Tensor, **kwargs) -> torch.Tensor:  # noqa: ANN003
    if backend == "foolbox":
        return foolbox_deepfool(model, images, labels, **kwargs)
    from ..deepfool import deepfool

    return deepfool(model, images, labels, input_layer=getattr(model, "input_layer", None),
                    **kwargs)


@register_perturbation("deepfool", "DeepFool minimal L2 perturbation on a 1,000-image test "
                       "subset: mean/median L2, success rate, LapNet's L2 per dimension")
class DeepFool(Perturbation):
    def cells(self, cfg: AttackConfig) -> list[Cell]:
        return [Cell("deepfool", "norm", NORM_VALUES[norm], {
            "norm": norm,
            "samples": cfg.deepfool_samples, "steps": cfg.deepfool_steps,
            "candidates": cfg.deepfool_candidates, "overshoot": cfg.deepfool_overshoot,
            "loss": cfg.deepfool_loss, "backend": cfg.deepfool_backend,
            "batch_size": cfg.deepfool_batch_size,
        }) for norm in cfg.deepfool_norms]

    def measure(self, cell: Cell, ctx: EvalContext) -> list[Measurement]:
        opts = cell.options
        order = 2.0 if opts["norm"] == "l2" else float("inf")
        name = opts["norm"]
        idx = subset_indices(len(ctx.data), int(opts["samples"]))
        dim = ctx.data.images[0].numel()
        norms, correct_all, success_all = [], [], []
        for start in range(0, len(idx), int(opts["batch_size"])):
            rows = idx[start:start + int(opts["batch_size"])]
            rows = rows.to(ctx.device)
            x, y = ctx.images[rows], ctx.labels[rows]
            adv = run_deepfool(opts["backend"], ctx.model, x, y, norm=opts["norm"],
                               steps=int(opts["steps"]), candidates=int(opts["candidates"]),
                               overshoot=float(opts["overshoot"]), loss=str(opts["loss"]))
            with torch.inference_mode():
                correct = ctx.model(x).argmax(1) == y
                fooled = ctx.model(adv).argmax(1) != y
            norms.append((adv - x).flatten(1).norm(p=order, dim=1).cpu())
            correct_all.append(correct.cpu())
            success_all.append((correct & fooled).cpu())
        l2 = torch.cat(norms).double()
        correct = torch.cat(correct_all)
        success = torch.cat(success_all)
        n_ok, n_success, n_wrong = int(correct.sum()), int(success.sum()), int((~correct).sum())
        ok_l2 = l2[success]
        nan = float("nan")
        per_dim_n = n_wrong + n_success
        rows = [
            Measurement(0, f"mean_{name}", float(ok_l2.mean()) if n_success else nan, n_success),
            Measurement(0, f"median_{name}", float(ok_l2.median()) if n_success else nan,
                        n_success),
            Measurement(0, "success_rate", n_success / n_ok if n_ok else nan, n_ok),
        ]
        if name == "l2":
            rows.append(Measurement(0, "mean_l2_per_dim", float(ok_l2.sum() / dim / per_dim_n)
                                    if per_dim_n else nan, per_dim_n))
        return rows
