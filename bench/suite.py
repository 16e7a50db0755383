"""Benchmark: harness overhead of `rbg attack` against a bare loop (issue 7).

Claim: the suite without DeepFool (clean, shared and i.i.d. Gaussian noise, FGSM before and
after normalisation, dropout, quantisation) costs at most 1.15x a bare loop that does the same
forward/backward passes with no registry, records, file writes or seeding machinery. Both run
on the same trained mnist5k smallcnn with the same settings; the two are alternated and the
medians compared. Runtime: a few minutes on a 2-core CPU (`--quick`: under a minute).

Usage: python bench/suite.py [--quick] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import copy
import math
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from robustbench_graph import load_run
from robustbench_graph.allocator import tune_malloc
from robustbench_graph.attack import attack_run
from robustbench_graph.config import AttackConfig, TrainConfig
from robustbench_graph.device import eval_batch_size
from robustbench_graph.perturbations import suite_names
from robustbench_graph.train import plan_runs, train_run

SUITE = [n for n in suite_names("all") if n != "deepfool"]


@torch.inference_mode()
def _correct(model, x, y) -> int:  # noqa: ANN001
    return int((model(x).argmax(1) == y).sum())


def bare_loop(model: nn.Module, x_all: torch.Tensor, y_all: torch.Tensor, cfg: AttackConfig,
              batch: int) -> None:
    """The suite's arithmetic written out by hand, for reference."""
    batches = [(x_all[i:i + batch], y_all[i:i + batch]) for i in range(0, len(y_all), batch)]
    for x, y in batches:  # clean
        _correct(model, x, y)
    log_norm = (20 * torch.log10(x_all.flatten(1).norm(dim=1))).mean().item()
    dim = x_all[0].numel()
    for shared, snrs in ((True, cfg.gaussian_snr), (False, cfg.gaussian_iid_snr)):
        for snr in snrs:
            sigma = 10 ** ((log_norm - snr) / 20) / math.sqrt(dim)
            for _ in range(cfg.gaussian_draws):
                pattern = torch.randn(1, *x_all.shape[1:], device=x_all.device) * sigma
                for x, y in batches:
                    noise = pattern if shared else torch.randn_like(x) * sigma
                    _correct(model, (x + noise).clamp(0, 1), y)
    for after in (False, True):
        for snr in cfg.fgsm_snr:
            for x, y in batches:
                u = model.normalize(x) if after else x
                fwd = model.forward_normalized if after else model
                u = u.detach().requires_grad_(True)
                (g,) = torch.autograd.grad(F.cross_entropy(fwd(u), y, reduction="sum"), u)
                eps = u.flatten(1).norm(dim=1) / (math.sqrt(dim) * 10 ** (snr / 20))
                adv = u.detach() + eps.view(-1, 1, 1, 1) * g.sign()
                adv = adv if after else adv.clamp(0, 1)
                _correct(fwd, adv, y)
    for p in cfg.dropout_p:
        hooks = [m.register_forward_hook(lambda _m, _i, o, p=p: F.dropout(o, p, True))
                 for m in model.block_taps]
        for _ in range(cfg.dropout_repeats):
            for x, y in batches:
                _correct(model, x, y)
        for h in hooks:
            h.remove()
    for bits in cfg.quantize_bits:
        q = copy.deepcopy(model)
        with torch.no_grad():
            for m in q.modules():
                if isinstance(m, nn.Conv2d | nn.Linear):
                    peak = float(m.weight.abs().max())
                    n = max(0, math.ceil(-math.log2(peak))) if peak < 1 else 0
                    v = 2.0 ** (bits - 2 + n)
                    lim = 2 ** (bits - 1) - 1
                    m.weight.copy_((m.weight * v).trunc().clamp(-lim, lim) / v)
        for x, y in batches:
            _correct(q, x, y)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    malloc = "tuned" if tune_malloc() else "default"  # as rbg: only with RBG_MALLOC_TUNING=1
    device = torch.device(args.device)
    rounds = 2 if args.quick else 3
    draws, repeats = (4, 4) if args.quick else (40, 40)
    work = Path(tempfile.mkdtemp(prefix="rbg-bench-suite-"))
    try:
        (spec,) = plan_runs(TrainConfig(dataset="mnist5k", epochs=1), [0], work / "runs")
        train_run(spec, device=device)
        cfg = AttackConfig(gaussian_draws=draws, dropout_repeats=repeats).for_dataset("mnist5k")
        run = load_run(spec.run_dir, device)
        from robustbench_graph.data import load_dataset

        test = load_dataset("mnist5k", False)
        x_all, y_all = test.float().to(device), test.labels.to(device)
        harness, bare = [], []
        for _ in range(rounds):
            (spec.run_dir / "results.csv").unlink(missing_ok=True)
            t0 = time.perf_counter()
            attack_run(spec.run_dir, SUITE, cfg, device=device)
            harness.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            bare_loop(run.model, x_all, y_all, cfg, eval_batch_size(device))
            bare.append(time.perf_counter() - t0)
        t_h, t_b = statistics.median(harness), statistics.median(bare)
        print(f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}; "
              f"suite {', '.join(SUITE)}; {draws} noise draws, {repeats} dropout repeats, "
              f"1,000 mnist5k test images; median of {rounds} alternated rounds; malloc {malloc}")
        print(f"rbg attack (harness) {t_h:8.2f} s")
        print(f"bare loop            {t_b:8.2f} s")
        ratio = t_h / t_b
        print(f"overhead ratio       {ratio:8.3f}x  (target <= 1.15x: "
              f"{'met' if ratio <= 1.15 else 'MISSED'})")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
