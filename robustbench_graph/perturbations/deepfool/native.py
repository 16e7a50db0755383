"""Native PyTorch DeepFool (L2 and L-infinity), a faster drop-in for foolbox 3.3.4's.

DeepFool (Moosavi-Dezfooli, Fawzi & Frossard, "DeepFool: a simple and accurate method to fool
deep neural networks", CVPR 2016) linearises the classifier around the current point and takes
the smallest step that crosses the nearest linearised boundary between the clean top-1 class
and one of the other candidate classes, repeating until the prediction changes.

:func:`deepfool` reproduces foolbox 3.3.4's ``L2DeepFoolAttack`` / ``LinfDeepFoolAttack`` run
with ``epsilons=None`` (their raw output), parameter for parameter (``steps``, ``candidates``,
``overshoot``, ``loss``; foolbox's ``PyTorchModel(bounds=...)`` becomes ``bounds``), with the
same iteration and the same small constants. It is faster because each step makes one forward
pass, over the samples that are still correctly classified only, and gets the
``candidates - 1`` class-difference gradients from backward passes through that one graph
that compute the input gradient alone (foolbox makes ``candidates - 1`` forward and full
backward passes, parameter gradients included, over the whole batch until every sample is
fooled). Those backward passes are also cheaper: images take the model's memory layout
(channels-last only where the model was put in it), eval-mode batch norms backpropagate by one
multiply, and with an ``input_layer`` hint a one-channel first convolution takes PyTorch's own
kernel (``bench/RESULTS.md``). Results agree with foolbox's up to float rounding. With
``overshoot_schedule="per-step"`` it reproduces foolbox 1.6.1's ``DeepFoolAttack`` instead.

Two overshoot schedules (``overshoot_schedule``); both take each step ``r_k`` from the
linearisation at the current point ``x_k``:

* ``"total"`` (default; foolbox 3.3.4): the overshoot is applied once, to the accumulated
  perturbation, ``x_{k+1} = clip(x0 + (1 + overshoot) * (r_0 + ... + r_k))``, and ``1e-4`` is
  added to the chosen boundary distance.
* ``"per-step"`` (foolbox 1.6.1's ``DeepFoolAttack``, as LapNet used it: factor fixed at 1.05,
  i.e. ``overshoot=0.05``, ``steps=100``, ``subsample=10``, i.e. ``candidates=10``, and
  cross-entropy differences): every step is scaled and the point clipped,
  ``x_{k+1} = clip(x_k + (1 + overshoot) * r_k)``, with nothing added to the distance; the
  reference class is the label and, at each step, only the candidates whose logit is below
  the label's are compared (rules that differ from ``"total"`` on exactly tied logits only).
  foolbox 1.6.1 returns no adversarial for a sample not fooled within ``steps`` steps; here,
  as for ``"total"``, its last iterate is returned.

Where no clipping happens the two iterations coincide up to that ``1e-4``. They part where
clipping cuts a step: ``"total"`` keeps the cut part in its accumulated perturbation, and its
``1e-4`` carries it across a boundary that ``"per-step"`` only approaches geometrically when
clipping removes more than ``1 - 1/(1 + overshoot)`` (4.8% at 1.05) of each step's progress
(e.g. pixels at the bounds, as MNIST's zeros); such a sample ends at or just short of the
boundary, where rounding can decide its side.
"""

from __future__ import annotations

import warnings

from ...lazy import F, nn, torch
from ..gradients import fast_batchnorm_backward, forward_with_split, split_layer, without_onednn

__all__ = ["deepfool"]

_DIST_EPS = 1e-8  # foolbox: added to the gradient norm in the distances and the step
_STEP_EPS = 1e-4  # foolbox: added to the chosen distance "for numerical stability"


def _class_differences(
    logits: torch.Tensor, classes: torch.Tensor, loss: str
) -> torch.Tensor:
    """``loss_k - loss_0`` for k = 1..K-1 (N x K-1), as foolbox's ``loss_fun(x, k)``."""
    scores = logits if loss == "logits" else F.log_softmax(logits, dim=-1)  # -crossentropy
    return scores.gather(1, classes[:, 1:]) - scores.gather(1, classes[:, :1])


def _difference_gradients(
    losses: torch.Tensor, x: torch.Tensor, hidden: torch.Tensor | None = None
) -> torch.Tensor:
    """Gradients of each column of ``losses`` (N x M) w.r.t. ``x``: N x M x x.shape[1:].

    M backward passes through the one forward graph (retained between them); only the input
    gradient is computed, never the parameters'. On CPU this measured faster than a single
    batched backward (``is_grads_batched=True``, i.e. vmap), whose batched convolutions were
    slower than the same number of separate ones.

    With ``hidden`` (the output of the model's input layer, through which every path from
    ``x`` passes), each pass stops at ``hidden`` and the last step to ``x`` runs with
    PyTorch's own convolution kernels instead of oneDNN's, whose input gradient for a
    one-channel convolution is slow on CPU (8.8 ms against 2.4 ms for 100 mnist images;
    smallcnn DeepFool step 232 -> 186 ms). The values agree to float rounding.
    """
    m = losses.shape[1]
    if hidden is None:
        grads = [torch.autograd.grad(losses[:, k].sum(), x, retain_graph=k < m - 1)[0]
                 for k in range(m)]
        return torch.stack(grads, dim=1)
    at_hidden = [torch.autograd.grad(losses[:, k].sum(), hidden, retain_graph=True)[0]
                 for k in range(m)]
    with without_onednn():
        grads = [torch.autograd.grad(hidden, x, g, retain_graph=k < m - 1)[0]
                 for k, g in enumerate(at_hidden)]
    return torch.stack(grads, dim=1)


def deepfool(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    norm: str = "l2",
    steps: int = 50,
    candidates: int | None = 10,
    overshoot: float = 0.02,
    loss: str = "logits",
    bounds: tuple[float, float] = (0.0, 1.0),
    input_layer: nn.Module | None = None,
    overshoot_schedule: str = "total",
) -> torch.Tensor:
    """Minimal DeepFool adversarials, as foolbox 3.3.4's DeepFool with ``epsilons=None``
    (or foolbox 1.6.1's with ``overshoot_schedule="per-step"``).

    Semantics (foolbox's ``DeepFoolAttack.run``): the candidate classes are the top
    ``candidates`` logits of the clean input (all classes if ``None``), the first being the
    clean prediction ``i0``. Each of at most ``steps`` iterations first checks which samples
    are misclassified (``argmax != label``); those are frozen at their current point (so a
    misclassified input is returned unchanged) and the loop ends once all are. For the others,
    with ``l_k = f_k - f_i0`` (``f`` = logits, or log-softmax for ``loss="crossentropy"``) and
    ``w_k`` its input gradient, the distance to each linearised boundary is
    ``|l_k| / (||w_k||_2 + 1e-8)`` (L2) or ``|l_k| / (||w_k||_1 + 1e-8)`` (L-inf); with ``d``
    the smallest plus ``1e-4``, the step ``d * w / (||w||_2 + 1e-8)`` (L2) or ``d * sign(w)``
    (L-inf) is added to the total perturbation ``p`` and the new point is
    ``clip(x0 + (1 + overshoot) * p, *bounds)``. The point after the last step is returned
    whether or not it is adversarial.

    With ``overshoot_schedule="per-step"`` (foolbox 1.6.1's ``DeepFoolAttack``; its
    ``steps=100, subsample=10`` and fixed factor 1.05 are ``steps=100, candidates=10,
    overshoot=0.05``), ``i0`` is the label, candidates whose current logit is not below the
    label's are skipped, ``d`` is the smallest distance itself (no ``1e-4``), and each step
    moves the current point: ``x <- clip(x + (1 + overshoot) * step, *bounds)``.

    Args:
        model: Classifier on inputs in ``bounds``, in eval mode (it is not modified, no
            parameter gradients are left on it).
        images: Clean inputs (N x ...) inside ``bounds``, on the model's device.
        labels: True labels (N,); the attack's criterion is misclassification.
        norm: ``"l2"`` (``L2DeepFoolAttack``) or ``"linf"`` (``LinfDeepFoolAttack``).
        steps: Maximum number of iterations (foolbox ``steps``).
        candidates: Number of most likely clean classes considered, or ``None`` for all
            (foolbox ``candidates``).
        overshoot: Relative overshoot of the accumulated perturbation (foolbox ``overshoot``),
            or of every step with ``overshoot_schedule="per-step"``.
        loss: ``"logits"`` or ``"crossentropy"`` (foolbox ``loss``).
        bounds: Input range, as foolbox's ``PyTorchModel(bounds=...)``.
        input_layer: Optional module of ``model`` through whose single output every path from
            the input to the logits passes (``TappedModel.input_layer``); a speed hint only,
            used where it pays (``split_layer``), never changing the result beyond rounding.
        overshoot_schedule: ``"total"`` (foolbox 3.3.4) or ``"per-step"`` (foolbox 1.6.1);
            see the module docstring.

    Returns:
        The adversarial images (foolbox's raw output), same shape, dtype and device as
        ``images``; unsuccessful samples hold their last iterate.

    Raises:
        ValueError: On an unknown ``norm``, ``loss`` or ``overshoot_schedule``, fewer than
            2 candidate classes, mismatched shapes, or inputs outside ``bounds``.
    """
    if norm not in ("l2", "linf"):
        raise ValueError(f"expected norm to be 'l2' or 'linf', got {norm!r}")
    if loss not in ("logits", "crossentropy"):
        raise ValueError(f"expected loss to be 'logits' or 'crossentropy', got {loss!r}")
    if overshoot_schedule not in ("total", "per-step"):
        raise ValueError("expected overshoot_schedule to be 'total' or 'per-step', "
                         f"got {overshoot_schedule!r}")
    per_step = overshoot_schedule == "per-step"
    step_eps = 0.0 if per_step else _STEP_EPS  # foolbox 1.6.1 adds nothing to the distance
    if images.shape[:1] != labels.shape:
        raise ValueError(f"images {tuple(images.shape)} and labels {tuple(labels.shape)} differ")
    if model.training:
        warnings.warn(
            "deepfool: the model is in training mode; foolbox's semantics assume eval mode",
            stacklevel=2,
        )
    lo, hi = bounds
    x0 = images.detach()
    if x0.numel() and (x0.min() < lo or x0.max() > hi):
        raise ValueError(f"images are outside the bounds {bounds}")
    labels = labels.to(x0.device)
    if len(x0) == 0 or steps <= 0:
        return x0.clone()
    if x0.ndim == 4:
        from ...models.base import is_channels_last_model

        # The images take the model's memory layout (``models.set_memory_format``), so that
        # the convolutions run one layout throughout; the result keeps the caller's layout.
        layout = torch.channels_last if is_channels_last_model(model) else torch.contiguous_format
        x0 = x0.contiguous(memory_format=layout)
    x = x0.clone()
    split = split_layer(input_layer, x0)
    p_total = None if per_step else torch.zeros_like(x0)
    active = torch.arange(len(x0), device=x0.device)  # samples not yet adversarial
    classes: torch.Tensor | None = None
    n_cand = 0

    with torch.enable_grad(), fast_batchnorm_backward(model):
        for _ in range(steps):
            xa = x[active].requires_grad_(True)
            logits, hidden = forward_with_split(model, xa, split)
            if classes is None:  # first step: x == x0, so these are the clean logits
                n_cand = logits.shape[-1] if candidates is None else candidates
                n_cand = min(n_cand, logits.shape[-1])
                if n_cand < 2:
                    raise ValueError(
                        f"expected at least 2 candidate classes, got {n_cand} "
                        f"(model has {logits.shape[-1]} outputs)"
                    )
                key = logits.detach()
                if per_step:
                    # foolbox 1.6.1: the reference class is the label (the clean top-1 for
                    # every sample that gets stepped, up to ties), the others the most likely
                    is_label = torch.arange(key.shape[-1], device=key.device) == labels[:, None]
                    key = key.masked_fill(is_label, float("inf"))
                # foolbox: argsort ascending, then flip (matters only for tied logits)
                classes = key.argsort(dim=-1).flip(-1)[:, :n_cand]
            keep = logits.detach().argmax(dim=-1) == labels[active]
            n_keep = int(keep.sum())
            if n_keep == 0:
                break
            graph_rows = active  # the samples in the current graph
            active = active[keep]
            if n_keep == len(graph_rows):
                select = None
            elif (len(graph_rows) - n_keep) * (n_cand - 1) > n_keep:
                # Backpropagating through the newly fooled rows would cost more than a fresh
                # forward pass over the remaining ones.
                xa = x[active].requires_grad_(True)
                logits, hidden = forward_with_split(model, xa, split)
                graph_rows, select = active, None
            else:
                select = keep
            losses = _class_differences(logits, classes[graph_rows], loss)
            grads = _difference_gradients(losses, xa, hidden)
            losses = losses.detach()
            if select is not None:
                grads, losses = grads[select], losses[select]
            flat = grads.flatten(2)
            if norm == "l2":
                gnorm = flat.square().sum(dim=-1).sqrt() + _DIST_EPS
            else:
                gnorm = flat.abs().sum(dim=-1) + _DIST_EPS
            distances = losses.abs() / gnorm
            if per_step:
                # foolbox 1.6.1 considers only the candidates whose logit is below the label's
                # at the current point (all but exact ties); with none left it would fail, here
                # such a sample stays where it is.
                z = logits.detach() if select is None else logits.detach()[select]
                cls = classes[active]
                tied = z.gather(1, cls[:, 1:]) >= z.gather(1, cls[:, :1])
                distances = distances.masked_fill(tied, float("inf"))
            best = distances.argmin(dim=1)
            rows = torch.arange(len(active), device=x0.device)
            dist = distances[rows, best] + step_eps
            if per_step:
                dist = dist.masked_fill(tied.all(dim=1), 0.0)
            grad = grads[rows, best]
            shape = (-1,) + (1,) * (x0.ndim - 1)
            if norm == "l2":
                gn2 = grad.flatten(1).square().sum(dim=-1).sqrt() + _DIST_EPS
                p_step = (dist / gn2).view(shape) * grad
            else:
                p_step = dist.view(shape) * grad.sign()
            if p_total is None:  # per-step: x_{k+1} = clip(x_k + (1 + overshoot) r_k)
                x[active] = (x[active] + (1.0 + overshoot) * p_step).clamp(lo, hi)
            else:  # total: x_{k+1} = clip(x_0 + (1 + overshoot) (r_0 + ... + r_k))
                p_total[active] += p_step
                x[active] = (x0[active] + (1.0 + overshoot) * p_total[active]).clamp(lo, hi)
    return x.contiguous(memory_format=_memory_format(images))


def _memory_format(t: torch.Tensor) -> torch.memory_format:
    if t.ndim == 4 and not t.is_contiguous() and t.is_contiguous(
            memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format
