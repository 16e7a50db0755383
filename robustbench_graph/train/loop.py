"""Training: one (configuration, seed) run into one run folder. The core never prints;
progress goes to an optional callback.

Each epoch ends with an atomic checkpoint (weights, optimiser, scheduler, loss state, log;
:mod:`.checkpoint`), so a killed run resumes at its last finished epoch. The batch order and
augmentation of epoch e come from generators seeded by (seed, e), so a resumed run ends with
the same weights as an uninterrupted one. The model is built with the classifier head its
loss declares (``TrainingLoss.head``), recorded in ``config.json`` (:mod:`.spec`).

With ``val_fraction`` a stratified part of the training split is held out (recorded in
``config.json``), evaluated after every epoch (:mod:`.selection`) and, with ``select =
"best-val"``, the best validation epoch's weights are the ones kept.
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from ..config import TrainConfig, stable_seed
from ..data import DatasetInfo, ImageData, load_dataset, split_validation
from ..device import generator, seed_everything
from ..errors import RbgError
from ..inference import accuracy
from ..losses import create_loss
from ..models import set_memory_format
from ..models.parseval import retract_
from ..rundir.atomic import clean_stale_temp_files, write_json_atomic, write_text_atomic
from ..rundir.folder import (
    CHECKPOINT,
    CONFIG,
    LOSS_STATE,
    TRAIN_LOG,
    WEIGHTS,
    save_weights,
    write_status,
)
from ..rundir.runs import build_model
from .checkpoint import load_checkpoint, run_fingerprint, save_checkpoint
from .selection import BestEpoch, evaluate
from .spec import RunSpec, loss_head, prepare_run_dir


class TrainingDiverged(RbgError):
    """The loss became NaN or infinite; the run is marked failed."""


@dataclass
class Progress:
    run: str
    epoch: int
    epochs: int
    batch: int
    batches: int
    loss: float
    accuracy: float


@dataclass
class RunOutcome:
    spec: RunSpec
    status: str  # trained | resumed | skipped | failed
    train_accuracy: float = math.nan
    test_accuracy: float = math.nan
    seconds: float = 0.0
    message: str = ""


def augment_batch(x: torch.Tensor, info: DatasetInfo, gen: torch.Generator) -> torch.Tensor:
    """Random translation by up to H/8 pixels (zero padding), plus flips where label-safe."""
    b, _, h, w = x.shape
    pad = max(1, h // 8)
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    oy = torch.randint(0, 2 * pad + 1, (b,), generator=gen, device=gen.device).to(x.device)
    ox = torch.randint(0, 2 * pad + 1, (b,), generator=gen, device=gen.device).to(x.device)
    rows = (oy[:, None] + torch.arange(h, device=x.device))[:, :, None]
    cols = (ox[:, None] + torch.arange(w, device=x.device))[:, None, :]
    out = padded[torch.arange(b, device=x.device)[:, None, None], :, rows, cols]
    out = out.permute(0, 3, 1, 2)
    if info.flip:
        flip = torch.rand(b, generator=gen, device=gen.device).to(x.device) < 0.5
        out = torch.where(flip[:, None, None, None], out.flip(3), out)
    return out.contiguous()


def _log_csv(rows: list[tuple[int, str, str, float]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["epoch", "split", "metric", "value"])
    writer.writerows(rows)
    return buf.getvalue()


def train_run(
    spec: RunSpec,
    *,
    device: torch.device,
    data_dir: Path | None = None,
    download: bool = False,
    overwrite: bool = False,
    on_progress: Callable[[Progress], None] | None = None,
    datasets: tuple[ImageData, ImageData] | None = None,
) -> RunOutcome:
    """Train one run; returns ``skipped`` when the folder already holds it complete.
    ``datasets`` are the whole (training, test) splits: the validation split, if any, is
    held out of the first here."""
    cfg: TrainConfig = spec.config.resolved()
    # The architecture and its layout are checked before the run folder is touched.
    if datasets is None:
        datasets = (
            load_dataset(cfg.dataset, True, data_dir, download=download, split_seed=cfg.split_seed),
            load_dataset(cfg.dataset, False, data_dir, split_seed=cfg.split_seed),
        )
    train_data, test_data = datasets
    val_data, validation = None, None
    if cfg.val_fraction:
        split = split_validation(train_data, cfg.val_fraction, cfg.split_seed)
        train_data, val_data, validation = split.train, split.val, split.record()
    seed_everything(spec.seed)
    model, info = build_model(cfg, train_data.info,
                              *loss_head(cfg.loss, cfg.loss_options))
    set_memory_format(model, cfg.channels_last, device)
    action = prepare_run_dir(spec, overwrite)
    if action == "skip":
        return RunOutcome(spec, "skipped")
    run_dir = spec.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    clean_stale_temp_files(run_dir)  # left by a writer that was killed
    if action == "new":
        write_json_atomic(run_dir / CONFIG, spec.config_record(device, info, validation,
                                                                model=model))
    try:
        return _train(spec, cfg, model, info, action, device, (train_data, val_data, test_data),
                      on_progress)
    except TrainingDiverged:
        raise
    except Exception as err:  # noqa: BLE001 - recorded, then raised on unchanged
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        with contextlib.suppress(OSError):  # a full disk must not hide the first error
            write_status(run_dir, "failed", message=message)
        raise


def _train(spec: RunSpec, cfg: TrainConfig, model, info: DatasetInfo,  # noqa: ANN001
           action: str, device: torch.device,
           data: tuple[ImageData, ImageData | None, ImageData],
           on_progress: Callable[[Progress], None] | None) -> RunOutcome:
    """The training loop of :func:`train_run` (the run folder is prepared); ``data`` are the
    training, validation (or None) and test splits."""
    train_data, val_data, test_data = data
    best = BestEpoch() if cfg.select == "best-val" else None
    run_dir = spec.run_dir
    model.to(device)
    loss_fn = create_loss(cfg.loss, cfg.loss_options, info.num_classes).to(device)
    optimizer = torch.optim.SGD(
        model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.MultiStepLR(
        optimizer, milestones=list(cfg.resolved_milestones()), gamma=cfg.lr_factor
    )
    log: list[tuple[int, str, str, float]] = []
    start_epoch = 0
    if action == "resume":
        ckpt = load_checkpoint(run_dir / CHECKPOINT, run_fingerprint(spec), cfg.epochs)
        try:
            model.load_state_dict(ckpt["model"])
            optimizer.load_state_dict(ckpt["optimizer"])
            scheduler.load_state_dict(ckpt["scheduler"])
            loss_fn.load_state_dict(ckpt["loss"])
            log = [tuple(r) for r in ckpt["log"]]  # type: ignore[misc]
            if best is not None:
                best = BestEpoch.from_state(ckpt["best"])
        except (RuntimeError, ValueError, KeyError, TypeError) as err:
            raise RbgError(f"cannot resume from {run_dir / CHECKPOINT}: its contents do not fit "
                           f"the model ({type(err).__name__}); use --overwrite to restart"
                           ) from None
        start_epoch = int(ckpt["epoch"]) + 1
    write_status(run_dir, "running", epochs_done=start_epoch)

    on_device = train_data.to(device)
    x_train, y_train = on_device.images, on_device.labels
    n = len(train_data)
    batches = math.ceil(n / cfg.batch_size)
    t0 = time.perf_counter()
    train_acc = math.nan
    for epoch in range(start_epoch, cfg.epochs):
        model.train()
        # Everything random in an epoch derives from (seed, epoch): the batch order and
        # augmentation from ``gen``, losses that draw noise from the global RNG from this seed,
        # so a resumed run continues exactly.
        torch.manual_seed(stable_seed("global", spec.seed, epoch))
        gen = generator(stable_seed("epoch", spec.seed, epoch))
        order = torch.randperm(n, generator=gen).to(device)
        total_loss = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        parts: dict[str, float] = {}  # the loss's own terms (LossOutput.parts), image-weighted
        for b in range(batches):
            idx = order[b * cfg.batch_size : (b + 1) * cfg.batch_size]
            x = x_train[idx].to(torch.float32) / train_data.scale
            y = y_train[idx]
            if cfg.augment:
                x = augment_batch(x, info, gen)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.amp):
                out = loss_fn(model, x, y)
            if not torch.isfinite(out.loss):
                msg = f"loss became {out.loss.item()} at epoch {epoch + 1}, batch {b + 1}"
                write_status(run_dir, "failed", message=msg, epochs_done=epoch)
                raise TrainingDiverged(f"{spec.name}: {msg}")
            optimizer.zero_grad(set_to_none=True)
            out.loss.backward()
            if cfg.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            if cfg.parseval:
                retract_(model, cfg.parseval_beta)
            loss_fn.after_step(model)
            total_loss += out.loss.detach() * len(y)
            for key, value in out.parts.items():
                parts[key] = parts.get(key, 0.0) + value * len(y)
            correct += (out.logits.detach().argmax(1) == y).sum()
            if on_progress is not None and (b % 10 == 0 or b == batches - 1):
                seen = min((b + 1) * cfg.batch_size, n)
                on_progress(Progress(spec.name, epoch + 1, cfg.epochs, b + 1, batches,
                                     float(total_loss) / seen, float(correct) / seen))
        lr_used = optimizer.param_groups[0]["lr"]
        scheduler.step()
        model.eval()
        train_acc = float(correct) / n
        test_acc = accuracy(model, test_data, device=device)
        log += [
            (epoch + 1, "train", "loss", float(total_loss) / n),
            (epoch + 1, "train", "accuracy", train_acc),
            (epoch + 1, "test", "accuracy", test_acc),
            (epoch + 1, "train", "lr", lr_used),
            *((epoch + 1, "train", f"part_{key}", total / n)
              for key, total in sorted(parts.items())),
        ]
        if val_data is not None:  # the choice reads this split only, never the test split
            val_acc, val_loss = evaluate(model, val_data, device)
            log += [(epoch + 1, "val", "loss", val_loss), (epoch + 1, "val", "accuracy", val_acc)]
            if best is not None:
                best.offer(epoch + 1, val_acc, model, loss_fn)
        state = {
            "epoch": epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "loss": loss_fn.state_dict(), "log": log,
        }
        if best is not None:
            state["best"] = best.state()
        save_checkpoint(run_dir / CHECKPOINT, state, run_fingerprint(spec))
        write_text_atomic(run_dir / TRAIN_LOG, _log_csv(log))
        write_status(run_dir, "running", epochs_done=epoch + 1)

    model.eval()
    kept = cfg.epochs  # the epoch whose weights are kept
    if best is not None:
        model.load_state_dict(best.model)
        loss_fn.load_state_dict(best.loss)
        kept = best.epoch
    with torch.no_grad():
        loss_fn.finish(model, x_train.to(torch.float32) / train_data.scale, y_train)
    save_weights(run_dir / WEIGHTS, model.state_dict())
    loss_state = loss_fn.state_dict()
    if loss_state:
        save_weights(run_dir / LOSS_STATE, loss_state)
    test_acc = accuracy(model, test_data, device=device)
    extra = loss_fn.final_metrics(model, train_data, test_data, device)
    log = [r for r in log if not (r[0] == kept and r[2] in extra)]
    log += [(kept, "test", name, value) for name, value in extra.items()]
    write_text_atomic(run_dir / TRAIN_LOG, _log_csv(log))
    seconds = time.perf_counter() - t0
    chosen = {} if best is None else {"selected_epoch": kept,
                                      "selected_val_accuracy": best.accuracy}
    write_status(run_dir, "complete", epochs_done=cfg.epochs, train_seconds=round(seconds, 3),
                 test_accuracy=test_acc, **chosen, **extra)
    (run_dir / CHECKPOINT).unlink(missing_ok=True)
    final_train = next((v for e, s, m, v in reversed(log)
                        if s == "train" and m == "accuracy" and e <= kept), train_acc)
    message = ", ".join([f"{k.replace('_', ' ')} {v:.2%}" for k, v in extra.items()] + (
        [] if best is None else [f"kept epoch {kept} (val {best.accuracy:.2%})"]))
    return RunOutcome(spec, "resumed" if action == "resume" else "trained",
                      final_train, test_acc, seconds, message)
