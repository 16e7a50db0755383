"""AutoAttack (Croce & Hein, ICML 2020) through pyautoattack 0.2.0, the optional extra
``robustbench_graph[autoattack]`` (docs/perturbations.md#autoattack).

The model (eval mode, [0, 1] inputs, normalisation inside) is attacked in pixel space at each
eps by the attacks of a ``version``, one after the other, each on the images no earlier attack
fooled, as pyautoattack's ``run_standard_evaluation`` does:

* ``standard``: pyautoattack's standard version, APGD-CE (1 restart, 100 iterations), APGD-T
  (targeted DLR loss, 9 target classes, 100 iterations each), FAB-T (9 target classes, 100
  iterations each) and Square (5,000 queries);
* ``cheap``: for CPUs, pyautoattack's ``version="custom"`` with APGD-CE (1 restart, 100
  iterations) and APGD-T with 3 target classes (the 3 highest-scoring wrong classes, 100
  iterations each): 400 gradient steps per image against roughly 2,000 plus 5,000 queries.

Target classes are capped at the number of classes less one. The metric ``accuracy`` is the
robust accuracy: the fraction of the images classified correctly and fooled by none of the
attacks (the per-image worst case over the version's attacks).

Each attack runs window by window, a window being ``ctx.batch_size`` consecutive images of
which the still-robust ones are attacked; after each window the robust flags go to a state file
in the run folder (``.autoattack-<fingerprint>-eps=<eps>.state``, JSON), which a later
``rbg attack`` of the same cell resumes from and which is deleted once the cell is done.
pyautoattack 0.2.0's own ``state_path`` cannot resume: it writes ``attacks_to_run`` as the text
of a Python set, so reading the file back always raises "The state was created with a different
set of attacks to run", and past that check a restored state leaves ``y_adv`` unbound.

``seed`` seeds every attack (pyautoattack reseeds torch's global generator at each attack
call; rbg restores the caller's generator state afterwards), so the numbers are reproducible
and the seed is part of the cell's fingerprint.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import RbgError
from ..lazy import torch
from ..rundir.atomic import write_text_atomic
from ..rundir.folder import read_run_json
from ..settings import setting
from .cell import Cell
from .checks import require
from .context import EvalContext, Measurement
from .family import Perturbation, register_perturbation
from .metrics import Strength

EXTRA_MESSAGE = ("the autoattack perturbation needs the optional extra: pip install "
                 "'robustbench_graph[autoattack]'")
NORMS = {"linf": "Linf", "l2": "L2"}
VERSIONS = ("standard", "cheap")
# The attacks of each version, in pyautoattack's names and order.
ATTACKS = {"standard": ("apgd-ce", "apgd-t", "fab-t", "square"),
           "cheap": ("apgd-ce", "apgd-t")}
CHEAP_TARGETS = 3
# The default budgets per dataset family and norm (docs/perturbations.md#autoattack): grey
# L-inf 0.3 (Madry et al., ICLR 2018, MNIST), L2 2.0 (the MNIST L2 budget of Croce & Hein's
# FAB paper); colour L-inf 8/255 and L2 0.5 (RobustBench's CIFAR-10 budgets).
DEFAULT_EPS: dict[str, dict[str, tuple[float, ...]]] = {
    "grey": {"linf": (0.3,), "l2": (2.0,)},
    "colour": {"linf": (8 / 255,), "l2": (0.5,)},
}
STATE_FORMAT = 1


def load_autoattack() -> Any:
    """pyautoattack's ``AutoAttack`` class.

    Raises:
        RbgError: the optional extra is not installed (one line saying how to install it).
    """
    try:
        from pyautoattack import AutoAttack
    except ImportError:
        raise RbgError(EXTRA_MESSAGE) from None
    return AutoAttack


@dataclass(frozen=True)
class AutoAttackSettings:
    norm: str = setting("linf", "threat model: linf or l2")
    eps: tuple[float, ...] = setting((), "budgets in [0, 1] pixel units, one cell each; empty: "
                                         "the dataset family's for the norm (grey: L-inf "
                                         "0.3, L2 2; colour: L-inf 8/255, L2 0.5)")
    version: str = setting("standard", "standard (APGD-CE, APGD-T, FAB-T, Square) or cheap "
                                       "(APGD-CE, APGD-T with 3 targets)")
    seed: int = setting(0, "seed of every attack's random starts and searches")

    def validate(self) -> None:
        require(self.norm in NORMS, f"unknown AutoAttack norm {self.norm!r}; valid: linf, l2")
        require(self.version in VERSIONS, f"unknown AutoAttack version {self.version!r}; "
                "valid: standard, cheap")
        top = 1.0 if self.norm == "linf" else 1e6
        for eps in self.eps:
            require(0 < eps <= top, f"AutoAttack eps {eps:g} is out of range (0, {top:g}]")
        require(0 <= self.seed < 2**63, f"AutoAttack seed must be in 0..2^63-1, got "
                f"{self.seed}")


@register_perturbation("autoattack", "AutoAttack (pyautoattack, optional extra): robust "
                       "accuracy under APGD-CE, APGD-T, FAB-T and Square (cheap: APGD-CE, "
                       "APGD-T); L-inf 0.3 grey, 8/255 colour")
class AutoAttackPerturbation(Perturbation):
    Settings = AutoAttackSettings
    sweep = "eps"
    title = "AutoAttack"
    short_title = "auto attack"
    strengths = {"eps": Strength("ε")}
    headline_setting = {"grey": 0.3, "colour": 8 / 255}
    order = 85  # after pgd (80), before deepfool (90)
    version = 1
    requires = ("pyautoattack", "autoattack")

    def __init__(self, settings: Any = None) -> None:
        load_autoattack()  # the missing extra fails when the family is built, before any work
        super().__init__(settings)

    @classmethod
    def resolve(cls, raw: dict[str, Any], family: str) -> Any:
        """The base class's resolution; an empty ``eps`` becomes the dataset family's budget
        for the norm, so the cells and their fingerprints hold concrete values."""
        settings = super().resolve(raw, family)
        if not settings.eps:
            settings = dataclasses.replace(settings, eps=DEFAULT_EPS[family][settings.norm])
        return settings

    # The attack ----------------------------------------------------------------------------
    def build(self, model: torch.nn.Module, eps: float, attack: str, device: torch.device,
              num_classes: int) -> Any:
        """A pyautoattack ``AutoAttack`` set up as the version runs ``attack``."""
        cls = load_autoattack()
        s = self.settings
        common = dict(eps=eps, norm=NORMS[s.norm], seed=s.seed, device=device)
        if s.version == "standard":
            aa = cls(model, version="standard", **common)
        else:
            aa = cls(model, version="custom", attacks=list(ATTACKS["cheap"]), **common)
            aa.apgd.n_restarts = 1
            aa.apgd_targeted.n_restarts = 1
            aa.apgd_targeted.n_target_classes = CHEAP_TARGETS
        most = max(1, num_classes - 1)
        aa.apgd_targeted.n_target_classes = min(aa.apgd_targeted.n_target_classes, most)
        aa.fab.n_target_classes = min(aa.fab.n_target_classes, most)
        aa.attacks_to_run = [attack]
        aa.verbose = False
        return aa

    def passes(self, images: int) -> tuple[int, int]:
        """Per cell: the classification, then APGD-CE's 100 steps on every image, after which
        a network without adversarial training has no robust image left at the default budgets
        for the later attacks (mnist5k smallcnn: 15.9 s on 100 images, 581 s if all ran)."""
        n = images * self.cell_count()
        return n * 103, n * 101

    def state_path(self, cell: Cell, ctx: EvalContext) -> Path | None:
        if ctx.work_dir is None:
            return None
        name = f".autoattack-{cell.fingerprint}-eps={cell.param_value:g}.state"
        return Path(ctx.work_dir) / name

    def evaluate(self, cell: Cell, ctx: EvalContext) -> list[Measurement]:
        load_autoattack()
        attacks = ATTACKS[self.settings.version]
        n, size = len(ctx.data), ctx.batch_size
        windows = [(start, min(start + size, n)) for start in range(0, n, size)]
        total = (1 + len(attacks)) * len(windows)
        x_all, y_all = ctx.images, ctx.labels
        path = self.state_path(cell, ctx)
        identity = _identity(cell, y_all)
        clean = torch.zeros(n, dtype=torch.bool)  # the clean predictions, always recomputed
        with torch.inference_mode():
            for i, (a, b) in enumerate(windows, start=1):
                clean[a:b] = (ctx.predictions(ctx.model(x_all[a:b]), self.name)
                              == y_all[a:b]).cpu()
                ctx.advance(i, total)
        state = _read_state(path, identity, clean, len(attacks) * len(windows))
        if state is None:
            robust, done = clean.clone(), 0
            _write_state(path, identity, robust, done)
        else:
            robust, done = state
        num_classes = ctx.data.info.num_classes
        with _attack_mode(ctx.model, ctx.device):
            for k, attack in enumerate(attacks):
                aa = None
                for w, (a, b) in enumerate(windows):
                    unit = k * len(windows) + w
                    if unit < done:
                        continue
                    rows = torch.nonzero(robust[a:b]).flatten() + a
                    if len(rows):
                        if aa is None:
                            aa = self.build(ctx.model, cell.param_value, attack, ctx.device,
                                            num_classes)
                        idx = rows.to(ctx.device)
                        _, y_adv = aa.run_standard_evaluation(x_all[idx], y_all[idx],
                                                              batch_size=len(rows))
                        robust[rows] = (y_adv == y_all[idx]).cpu()
                    done = unit + 1
                    _write_state(path, identity, robust, done)
                    ctx.advance(len(windows) + done, total)
        accuracy = float(robust.double().mean()) if n else float("nan")
        if path is not None:
            path.unlink(missing_ok=True)
        return [Measurement(0, "accuracy", accuracy, n)]


# Helpers ----------------------------------------------------------------------------------
@contextlib.contextmanager
def _attack_mode(model: torch.nn.Module, device: torch.device) -> Iterator[None]:
    """Around the attacks: the caller's torch generator state restored (pyautoattack reseeds
    the global generator), no parameter gradients (they would accumulate in ``.grad``), and
    pyautoattack's logged warnings turned into Python warnings, once each."""
    params = [p for p in model.parameters() if p.requires_grad]
    devices = [device] if device.type == "cuda" else []
    logger = logging.getLogger("auto-attack")
    handler = _WarningHandler()
    logger.addHandler(handler)
    try:
        with torch.random.fork_rng(devices=devices):
            for p in params:
                p.requires_grad_(False)
            yield
    finally:
        for p in params:
            p.requires_grad_(True)
        logger.removeHandler(handler)
        for message in dict.fromkeys(handler.messages):
            warnings.warn(f"pyautoattack: {message}", RuntimeWarning, stacklevel=3)


class _WarningHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _identity(cell: Cell, labels: torch.Tensor) -> dict[str, Any]:
    """What a state file must match to be resumed: the cell and the images' labels."""
    digest = hashlib.sha256(labels.cpu().to(torch.int64).numpy().tobytes()).hexdigest()[:16]
    return {"format": STATE_FORMAT, "fingerprint": cell.fingerprint,
            "eps": float(cell.param_value), "images": int(len(labels)), "labels": digest}


def _read_state(path: Path | None, identity: dict[str, Any], clean: torch.Tensor, units: int
                ) -> tuple[torch.Tensor, int] | None:
    """The robust flags and the units done of the state file, None where there is none or it
    is of other images (another test split: computed afresh). A state of this cell is
    checked against what it must be: ``done`` in 0..``units``, one flag per image, and
    robust only where the clean prediction is correct (an attack never makes an image
    right); anything else is one line naming the file (it would be a wrong number).

    Raises:
        RbgError: the file is not a regular file, not JSON, or not a valid state.
    """
    if path is None:
        return None
    try:
        data = read_run_json(path)
    except FileNotFoundError:
        return None
    bad = f"{path} is not a valid AutoAttack state file"
    fix = "delete it to compute the cell afresh"
    if not isinstance(data, dict):
        raise RbgError(f"{bad} (not a JSON object); {fix}")
    if any(data.get(k) != identity[k] for k in ("format", "labels", "images")):
        return None  # another test split or an older rbg's state: computed afresh
    if {k: data.get(k) for k in identity} != identity:
        raise RbgError(f"{bad} (it names another cell); {fix}")
    flags, done = data.get("robust"), data.get("done")
    if not isinstance(flags, list) or len(flags) != identity["images"] or \
            any(v not in (0, 1) or isinstance(v, float) for v in flags):
        raise RbgError(f"{bad} (robust must be {identity['images']} flags 0 or 1); {fix}")
    if isinstance(done, bool) or not isinstance(done, int) or not 0 <= done <= units:
        raise RbgError(f"{bad} (done {done!r} is not a count of units in 0..{units}); {fix}")
    robust = torch.tensor([bool(v) for v in flags], dtype=torch.bool)
    if bool((robust & ~clean).any()):
        raise RbgError(f"{bad} (images misclassified when clean are marked robust); {fix}")
    return robust, done


def _write_state(path: Path | None, identity: dict[str, Any], robust: torch.Tensor,
                 done: int) -> None:
    """Write the state atomically (a temporary file renamed over it)."""
    if path is None:
        return
    write_text_atomic(path, json.dumps({**identity, "done": done,
                                        "robust": [int(v) for v in robust.tolist()]}))
