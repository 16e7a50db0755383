"""The model contract shared by training, attacks and diagnostics.

Every model takes images in [0, 1] and normalises inside itself (``Normalize``), so attacks
and noise work in pixel space. ``forward_normalized`` skips that step, for perturbations
defined after normalisation (LapNet's "FGSM after normalisation",
docs/perturbations.md#fgsm-after-norm).

Named taps (lists of modules whose forward outputs are the tapped tensors):

* ``relu_taps``: every post-ReLU activation, in order (graph losses,
  docs/losses.md#label-smoothness);
* ``block_taps``: the output of each block (test-time dropout, docs/perturbations.md#dropout);
* ``features`` / ``head``: the penultimate feature and the classifier on top of it
  (margin losses, docs/losses.md#lmd); the head is chosen when the model is built
  (``linear`` or ``centroids``, :mod:`.heads`);
* ``input_layer``: the first convolution (every path from the input passes through its output).

What a model declares about itself (class attributes and properties, not guessed by callers):

* ``laplacian_gamma``: the default Laplacian scale of the ``laplacian`` loss with the
  scale-free ``normalize=batch`` sigma (LapNet's 0.01 at b = 100 is 10 on the PreActResNet18
  the paper calibrated it on; 1 elsewhere, ``losses/laplacian.py``);
* ``residual_blocks``: the blocks whose residual sum ``w f(x) + (1 - w) shortcut(x)`` has a
  ``residual_weight`` (Parseval's convex sums, :mod:`.parseval`); empty for a plain network.

Memory layout: models are built contiguous (NCHW); ``set_memory_format`` makes one
channels-last on request (``--channels-last``), after checking that the layout is safe.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from ..data import DatasetInfo
from ..errors import RbgError
from .catalogue import MODELS
from .heads import attach_head


class Normalize(nn.Module):
    """Channel-wise ``(x - mean) / std`` with the dataset's training statistics."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class TappedModel(nn.Module):
    """Base class: ``forward(x) = head(features(x))`` on [0, 1] inputs."""

    normalize: Normalize
    head: nn.Module
    laplacian_gamma: float = 1.0

    def __init__(self, info: DatasetInfo) -> None:
        super().__init__()
        self.normalize = Normalize(info.mean, info.std)
        self.num_classes = info.num_classes

    def embed(self, u: torch.Tensor) -> torch.Tensor:
        """Penultimate feature of an already-normalised input."""
        raise NotImplementedError

    @property
    def relu_taps(self) -> list[nn.Module]:
        raise NotImplementedError

    @property
    def input_layer(self) -> nn.Module | None:
        """The first layer, through whose single output every path from the input to the
        logits passes (a speed hint for DeepFool's input gradients), or None."""
        return None

    @property
    def block_taps(self) -> list[nn.Module]:
        raise NotImplementedError

    @property
    def residual_blocks(self) -> list[nn.Module]:
        """Blocks with a ``residual_weight`` attribute (1.0: the plain sum ``f(x) + x``)."""
        return []

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed(self.normalize(x))

    def forward_normalized(self, u: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(u))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(self.normalize(x)))


@contextmanager
def capture(modules: Sequence[nn.Module]) -> Iterator[list[torch.Tensor]]:
    """Collect the forward outputs of ``modules`` (in call order) while the block runs."""
    outputs: list[torch.Tensor] = []

    def hook(_m: nn.Module, _inp: Any, out: torch.Tensor) -> None:
        outputs.append(out)

    handles = [m.register_forward_hook(hook) for m in modules]
    try:
        yield outputs
    finally:
        for h in handles:
            h.remove()


@contextmanager
def transform_outputs(
    modules: Sequence[nn.Module], fn: Callable[[torch.Tensor], torch.Tensor]
) -> Iterator[None]:
    """Replace each module's forward output by ``fn(output)`` while the block runs."""

    def hook(_m: nn.Module, _inp: Any, out: torch.Tensor) -> torch.Tensor:
        return fn(out)

    handles = [m.register_forward_hook(hook) for m in modules]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def model_options(name: str) -> tuple[str, ...]:
    """The architecture options (``width``, ``feature_dim``) that a registered model takes."""
    params = inspect.signature(MODELS.load(name).factory).parameters
    return tuple(p for p in ("width", "feature_dim") if p in params)


def create_model(
    name: str, info: DatasetInfo, *, width: int | None = None, feature_dim: int | None = None,
    head: str = "linear", head_options: Mapping[str, Any] | None = None,
) -> TappedModel:
    """Build a registered model for a dataset, with its classifier ``head`` (``linear`` or
    ``centroids``, :mod:`.heads`); ``None`` options take the model's defaults.

    An option the model does not take, or a non-positive one, is an error (never ignored)."""
    given = {k: v for k, v in {"width": width, "feature_dim": feature_dim}.items()
             if v is not None}
    accepted = model_options(name)
    for key, value in given.items():
        flag = "--" + key.replace("_", "-")
        if key not in accepted:
            takes = ", ".join("--" + a.replace("_", "-") for a in accepted) or "no options"
            raise RbgError(f"model {name!r} has no {flag} option (it takes {takes})")
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise RbgError(f"{flag} must be a positive integer, got {value!r}")
    return attach_head(MODELS.create(name, info=info, **given), head, head_options)


# torch 2.14.1's oneDNN channels-last Conv2d backward corrupts the heap on AVX2 CPUs for
# convolutions of few channels (6 aborts, 4 may corrupt silently, 8 and more ran; measured with
# ONEDNN_MAX_CPU_ISA=AVX2, tests/test_layouts.py). Channels-last is refused below this.
MIN_CHANNELS_LAST_CHANNELS = 8


def set_memory_format(model: nn.Module, channels_last: bool, device: torch.device | str
                      ) -> nn.Module:
    """Put ``model`` in the contiguous (NCHW) or channels-last layout; returns it.

    Channels-last on a CPU is refused (``RbgError``) when a convolution past the input layer
    has fewer than :data:`MIN_CHANNELS_LAST_CHANNELS` input or output channels."""
    if not channels_last:
        return model.to(memory_format=torch.contiguous_format)
    if torch.device(device).type == "cpu":
        first = getattr(model, "input_layer", None)
        for module in model.modules():
            if isinstance(module, nn.Conv2d) and module is not first:
                small = min(module.in_channels, module.out_channels)
                if small < MIN_CHANNELS_LAST_CHANNELS:
                    raise RbgError(
                        f"--channels-last on a CPU needs convolutions of at least "
                        f"{MIN_CHANNELS_LAST_CHANNELS} channels (this model has one of "
                        f"{small}; oneDNN's channels-last backward corrupts memory below "
                        "that on some CPUs); use a larger --width or the default layout")
    return model.to(memory_format=torch.channels_last)


def is_channels_last_model(model: nn.Module) -> bool:
    """Whether the model's 4-D weights are stored channels-last (``set_memory_format``),
    judged on the first one whose two layouts differ (a one-channel weight is both)."""
    for param in model.parameters():
        if param.ndim != 4:
            continue
        dense, nhwc = param.is_contiguous(), param.is_contiguous(memory_format=torch.channels_last)
        if dense != nhwc:
            return nhwc
    return False
