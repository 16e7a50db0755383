"""FGSM at a target SNR, before or after input normalisation (LapNet Fig. 5; METHODS.md 1.3).

With the true label y and u the input (raw x in [0, 1], or Norm(x)):
g = grad_u CE(f(u), y);  eps_i = ||u_i|| / (sqrt(D) 10^(SNR/20));  u_adv = u + eps_i sign(g),
so that ||u_adv - u|| = ||u|| 10^(-SNR/20) wherever g has no zero entry. "Before" clips to
[0, 1]; "after" works on normalised inputs (``forward_normalized``) and does not clip.
An L-infinity budget (``linf_eps``: u_adv = u + eps sign(g)) may be given instead of an SNR.
The realised mean SNR is recorded (images left unchanged, e.g. with a zero gradient, skipped).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..config import AttackConfig
from .base import Cell, EvalContext, Measurement, Perturbation, register_perturbation
from .gaussian import snr_db


def fgsm(
    forward, u: torch.Tensor, y: torch.Tensor, *, snr: float | None = None,  # noqa: ANN001
    linf: float | None = None, clip: bool = True,
) -> torch.Tensor:
    """One FGSM step on ``u`` with a per-image SNR budget or an L-infinity budget."""
    with torch.enable_grad():
        u_req = u.detach().clone().requires_grad_(True)
        loss = F.cross_entropy(forward(u_req), y, reduction="sum")
        (grad,) = torch.autograd.grad(loss, u_req)
    if snr is not None:
        dim = u[0].numel()
        eps = u.flatten(1).norm(dim=1) / (math.sqrt(dim) * 10.0 ** (snr / 20.0))
        eps = eps.view(-1, *([1] * (u.ndim - 1)))
    elif linf is not None:
        eps = torch.full((), float(linf), device=u.device)
    else:
        raise ValueError("fgsm needs snr or linf")
    adv = u.detach() + eps * grad.sign()
    return adv.clamp(0.0, 1.0) if clip else adv


class _Fgsm(Perturbation):
    after_norm: bool

    def cells(self, cfg: AttackConfig) -> list[Cell]:
        return ([Cell(self.name, "snr_db", float(s)) for s in cfg.fgsm_snr or ()]
                + [Cell(self.name, "linf_eps", float(e)) for e in cfg.fgsm_linf])

    def measure(self, cell: Cell, ctx: EvalContext) -> list[Measurement]:
        model = ctx.model
        budget = ({"snr": cell.param_value} if cell.param == "snr_db"
                  else {"linf": cell.param_value})
        correct, snrs = 0, []
        for x, y in ctx.batches():
            if self.after_norm:
                u = model.normalize(x)
                adv = fgsm(model.forward_normalized, u, y, clip=False, **budget)
                with torch.inference_mode():
                    pred = model.forward_normalized(adv).argmax(1)
            else:
                u = x
                adv = fgsm(model, u, y, clip=True, **budget)
                with torch.inference_mode():
                    pred = model(adv).argmax(1)
            correct += int((pred == y).sum())
            delta = adv - u
            moved = delta.flatten(1).abs().amax(dim=1) > 0
            if moved.any():
                snrs.append(snr_db(u[moved], delta[moved]))
        n = len(ctx.data)
        realised = torch.cat(snrs) if snrs else torch.empty(0)
        rows = [Measurement(0, "accuracy", correct / n, n)]
        if len(realised):
            rows.append(Measurement(0, "snr_db", float(realised.mean()), len(realised)))
        return rows


@register_perturbation("fgsm-before-norm", "FGSM at a target SNR on [0, 1] images, clipped "
                       "(LapNet Fig. 5 left)")
class FgsmBeforeNorm(_Fgsm):
    after_norm = False


@register_perturbation("fgsm-after-norm", "FGSM at a target SNR on normalised inputs, no "
                       "clipping (LapNet Fig. 5 centre)")
class FgsmAfterNorm(_Fgsm):
    after_norm = True
