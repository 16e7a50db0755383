"""The estimate of a suite's cost as the terminal shows it before work starts."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..experiment.cost import FamilyCost, RunEstimate


def duration(seconds: float) -> str:
    """``0.4 s``, ``12 s``, ``3 min``, ``1.5 h``."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _family(f: FamilyCost) -> str:
    from ..experiment.cost import passes_text

    bound = "≤" if f.at_most else ""
    most = (f", at most {duration(f.most_seconds)}"
            if duration(f.most_seconds) != duration(f.seconds) and f.most_seconds > f.seconds
            else "")
    return (f"{f.name} {bound}{duration(f.seconds)} ({passes_text(f.forward)} fwd"
            + (f" + {passes_text(f.backward)} bwd" if f.backward else "") + most + ")")


def _legend(families: list[FamilyCost]) -> str:
    """``; ≤: ...`` for the marks the families' figures carry, nothing when none does."""
    marks = (["≤: an attack that stops early, at most"] if any(f.at_most for f in families)
             else []) + (["a typical run, then the most"]
                         if any(f.typical for f in families) else [])
    return "".join(f"; {m}" for m in marks)


def estimate_lines(est: RunEstimate, runs: int, threshold: float) -> list[str]:
    """The estimate, per family, the total for ``runs`` runs, and the slow families."""
    p = est.probe
    lines = [f"attack estimate per run ({est.images} test images; a probe of {est.run} on "
             f"{p.device}: {p.forward_s * 1e3:.3g} ms forward, {p.backward_s * 1e3:.3g} ms "
             f"backward per image{_legend(est.families)}):",
             "  " + ", ".join(_family(f) for f in est.families),
             f"  total {'≤' if any(f.at_most for f in est.families) else ''}"
             f"{duration(est.seconds)} per run, {duration(est.seconds * runs)} for the {runs} "
             "run(s)"]
    if slow := est.slow(threshold):
        lines.append(f"slow (over {duration(threshold)} per run): "
                     + ", ".join(f"{f.name} {duration(f.seconds)} per run" for f in slow))
    return lines


PER_IMAGES = 1000  # the unprobed estimate counts passes per this many test images


def _groups(exp) -> list[list]:  # noqa: ANN001
    groups: dict[tuple, list] = {}
    for cfg in exp.configs:
        groups.setdefault((cfg.dataset, cfg.model, cfg.width, cfg.feature_dim), []).append(cfg)
    return list(groups.values())


def _passes(forward: int, backward: int) -> str:
    from ..experiment.cost import passes_text

    return f"{passes_text(forward)} fwd" + (f" + {passes_text(backward)} bwd" if backward
                                             else "")


def _declared_family(f: FamilyCost) -> str:
    """``deepfool 1.1k fwd + 7.2k bwd (at most 5.2k fwd + 45.0k bwd)``."""
    most = (f" (at most {_passes(f.most_forward, f.most_backward)})"
            if f.most_forward > f.forward or f.most_backward > f.backward else "")
    return f"{f.name} {'≤' if f.at_most else ''}{_passes(f.forward, f.backward)}{most}"


def declared_estimate_lines(exp) -> list[str]:  # noqa: ANN001
    """The passes of an experiment's suite per family and in total, from the families'
    declarations (no network, no data, no torch: ``rbg run --dry-run``), per
    :data:`PER_IMAGES` test images of each run; it says that no time was probed."""
    from ..errors import RbgError
    from ..experiment.cost import declared_passes, passes_text

    lines: list[str] = []
    try:
        for configs in _groups(exp):
            cfg, runs = configs[0], len(configs) * len(exp.seeds)
            costs = declared_passes(cfg, exp.suite, exp.attack, PER_IMAGES)
            fwd, bwd = sum(f.forward for f in costs), sum(f.backward for f in costs)
            most_fwd = sum(max(f.forward, f.most_forward) for f in costs)
            most_bwd = sum(max(f.backward, f.most_backward) for f in costs)
            bound = "≤" if any(f.at_most for f in costs) else ""
            lines += [f"{cfg.dataset}-{cfg.model}: passes per run per {PER_IMAGES:,} test "
                      "images, from the families' declarations (time not probed: --probe "
                      f"times an untrained network{_legend(costs)}):",
                      "  " + ", ".join(_declared_family(f) for f in costs),
                      f"  total {bound}{passes_text(fwd)} fwd + {bound}{passes_text(bwd)} bwd "
                      f"per run, {bound}{passes_text(fwd * runs)} fwd + "
                      f"{bound}{passes_text(bwd * runs)} bwd for the {runs} run(s)"
                      + (f" (at most {_passes(most_fwd, most_bwd)} per run)"
                         if (most_fwd, most_bwd) != (fwd, bwd) else "")]
    except (RbgError, ValueError, KeyError, TypeError) as err:
        lines.append(f"no estimate of the attack's cost: {err}")
    return lines


def experiment_estimate_lines(exp, device: str, threshold: float) -> list[str]:  # noqa: ANN001
    """The estimate of an experiment's suite per architecture (an untrained network of each
    distinct dataset/model probed with the threads a unit gets), before any unit runs; one
    line saying why when it
    cannot be made (e.g. a dataset not downloaded yet)."""
    from ..attack import TestSplits
    from ..device import resolve_device
    from ..errors import RbgError
    from ..experiment.cost import estimate_config

    groups = _groups(exp)
    splits, lines = TestSplits(exp.data_dir), []
    try:
        dev = resolve_device(device)
        for configs in groups:
            est = estimate_config(configs[0], exp.suite, exp.attack, dev, splits,
                                  max(1, exp.resources.cpus))
            head, *rest = estimate_lines(est, len(configs) * len(exp.seeds), threshold)
            lines += [f"{configs[0].dataset}-{configs[0].model}: {head}", *rest]
    except (RbgError, ValueError, KeyError, TypeError, RuntimeError, OSError, IndexError
            ) as err:
        lines.append(f"no estimate of the attack's cost: {err}")
    return lines
