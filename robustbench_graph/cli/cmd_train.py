"""``rbg train``: one run folder per (configuration, seed)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from ..config import (
    GREY_SCHEDULE,
    LAPNET_SCHEDULE,
    SCHEDULE_PRESETS,
    SELECT_RULES,
    TrainConfig,
    parse_seeds,
)
from ..errors import RbgError
from ..settings import default_of
from .console import busy_machine_note, console, err_console, guarded
from .options import ensure_writable_dir, parse_int_list, parse_key_values
from .progress import StudyProgress

if TYPE_CHECKING:
    from ..train import RunOutcome

# The dataset-dependent schedule defaults as the help states them (config.SCHEDULE_PRESETS).
_GREY, _LAPNET = GREY_SCHEDULE, LAPNET_SCHEDULE
_GREY_SETS = ", ".join(n for n, v in SCHEDULE_PRESETS.items() if v == GREY_SCHEDULE)


def _default(field: str):  # noqa: ANN202 - the field's own type
    """The default of ``TrainConfig.<field>``: the dataclass is the one home of the defaults
    (tests/test_defaults.py checks every option against it)."""
    return default_of(TrainConfig, field)


@guarded
def train(
    dataset: Annotated[str, typer.Option(help="Dataset name (rbg list datasets).")] = _default(
        "dataset"),
    model: Annotated[str, typer.Option(help="Model name (rbg list models).")] = _default("model"),
    loss: Annotated[str, typer.Option(help="Training loss (rbg list losses).")] = _default("loss"),
    loss_option: Annotated[list[str] | None, typer.Option(
        "--loss-option", "-o",
        help="Loss option key=value (repeatable), e.g. -o gamma=0.001; every option with its "
             "default and meaning: rbg list losses \\[default: the loss's defaults].")
    ] = None,
    seeds: Annotated[str, typer.Option(help="Seeds: 0-9, 0,3,5 or 0-2,7.")] = "0",
    epochs: Annotated[int, typer.Option(help="Training epochs.")] = _default("epochs"),
    batch_size: Annotated[int, typer.Option(help="Mini-batch size.")] = _default("batch_size"),
    lr: Annotated[float | None, typer.Option(
        help=f"Initial learning rate \\[default: per dataset: {_GREY[0]:g} for the MNIST-like "
             f"sets ({_GREY_SETS}), {_LAPNET[0]:g} (LapNet's CIFAR-10 recipe) otherwise].")
    ] = _default("lr"),
    lr_milestones: Annotated[str | None, typer.Option(
        help="Epochs after which the lr is multiplied by --lr-factor, e.g. 50 or 60,120 "
             f"\\[default: one, at {_GREY[1]:.0%} of the epochs (rounded) for the MNIST-like "
             f"sets, at {_LAPNET[1]:.0%} otherwise; none with too few epochs].")
    ] = _default("lr_milestones"),
    lr_factor: Annotated[float | None, typer.Option(
        help=f"Learning-rate factor at each milestone \\[default: {_GREY[2]:g} for the "
             f"MNIST-like sets, {_LAPNET[2]:g} ({_LAPNET[0]:g} -> {_LAPNET[0] * _LAPNET[2]:g}, "
             "LapNet) otherwise].")] = _default("lr_factor"),
    momentum: Annotated[float, typer.Option(help="SGD momentum.")] = _default("momentum"),
    weight_decay: Annotated[float, typer.Option(help="SGD weight decay.")] = _default(
        "weight_decay"),
    augment: Annotated[bool, typer.Option(
        help="Random translations (and flips on CIFAR/SVHN-like sets).")] = _default("augment"),
    grad_clip: Annotated[float | None, typer.Option(
        help="Clip the gradient norm to this value \\[default: no clipping].")
    ] = _default("grad_clip"),
    parseval: Annotated[bool, typer.Option(
        help="Parseval training (LapNet App. A): convex residual sums, orthogonality "
             "retraction after every step, conv renormalisation on batch-norm models.")
    ] = _default("parseval"),
    parseval_beta: Annotated[float, typer.Option(
        help="Step size beta of the Parseval retraction.")] = _default("parseval_beta"),
    amp: Annotated[bool, typer.Option(
        help="bf16 autocast of the forward pass and loss (for GPUs).")] = _default("amp"),
    channels_last: Annotated[bool, typer.Option(
        help="Channels-last memory layout (NHWC kernels; faster ResNets on some hardware, "
             "numbers differ by float rounding). Recorded in the run; refused on CPUs for "
             "convolutions of fewer than 8 channels.")] = _default("channels_last"),
    width: Annotated[int | None, typer.Option(
        help="Model width \\[default: the model's].")] = _default("width"),
    feature_dim: Annotated[int | None, typer.Option(
        help="Penultimate feature size (smallcnn, resnet18) \\[default: the model's].")
    ] = _default("feature_dim"),
    split_seed: Annotated[int, typer.Option(
        help="Seed of the train/test split of the embedded datasets and of the validation "
             "split (--val-fraction).")] = _default("split_seed"),
    val_fraction: Annotated[float, typer.Option(
        help="Fraction of the training split held out for validation, stratified by class "
             "and seeded by --split-seed; 0: none (docs/datasets.md#validation-split).")
    ] = _default("val_fraction"),
    select: Annotated[str, typer.Option(
        help=f"Which epoch's weights the run keeps: {' or '.join(SELECT_RULES)} (the highest "
             "validation accuracy, ties to the earliest; needs --val-fraction).")
    ] = _default("select"),
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    out: Annotated[Path, typer.Option(help="Folder that receives the run folders.")] = Path(
        "runs"),
    data_dir: Annotated[Path | None, typer.Option(
        help="Folder of torchvision datasets \\[default: $RBG_DATA_DIR or "
             "~/.cache/robustbench_graph/data].")] = None,
    download: Annotated[bool, typer.Option(help="Download torchvision datasets if missing.")
                        ] = False,
    overwrite: Annotated[bool, typer.Option(help="Retrain runs that are already complete.")
                         ] = False,
) -> None:
    """Train one model per seed; each run gets its own folder under --out."""
    # The core (torch) is imported by the command, not at start-up: `rbg --help` stays fast.
    from ..data import DATASETS, default_data_dir, load_dataset
    from ..device import resolve_device
    from ..losses import LOSSES
    from ..models import MODELS
    from ..train import RunOutcome, TrainingDiverged, plan_runs, train_run

    DATASETS.get(dataset)
    MODELS.get(model)
    LOSSES.get(loss)
    seed_list = parse_seeds(seeds)
    milestones = (parse_int_list(lr_milestones, "--lr-milestones")
                  if lr_milestones is not None else None)
    cfg = TrainConfig(
        dataset=dataset, model=model, width=width, feature_dim=feature_dim, loss=loss,
        loss_options=parse_key_values(loss_option, "--loss-option"), epochs=epochs,
        batch_size=batch_size, lr=lr, lr_milestones=milestones, lr_factor=lr_factor,
        momentum=momentum, weight_decay=weight_decay, augment=augment, grad_clip=grad_clip,
        amp=amp, channels_last=channels_last,
        parseval=parseval, parseval_beta=parseval_beta, split_seed=split_seed,
        val_fraction=val_fraction, select=select,
    )
    specs = plan_runs(cfg, seed_list, out)
    dev = resolve_device(device)
    busy_machine_note(dev)
    root = data_dir if data_dir is not None else default_data_dir()
    datasets = (
        load_dataset(dataset, True, root, download=download, split_seed=split_seed),
        load_dataset(dataset, False, root, split_seed=split_seed),
    )
    ensure_writable_dir(out, "--out")
    outcomes: list[RunOutcome] = []
    with StudyProgress(console, len(specs), "runs") as progress:
        for spec in specs:
            progress.start(spec.name)
            started = time.perf_counter()

            def on_progress(p, name=spec.name, started=started):  # noqa: ANN001, ANN202
                done = p.epoch - 1 + p.batch / p.batches
                info = f"epoch {p.epoch}/{p.epochs} loss {p.loss:.4f} acc {p.accuracy:.2%}"
                progress.update(name, info, done / max(p.epochs, 1))
                if progress.plain and p.batch == p.batches:
                    progress.line(f"{p.run}: {info} (train, {time.perf_counter() - started:.1f}"
                                  " s)")

            try:
                outcome = train_run(spec, device=dev, overwrite=overwrite,
                                    on_progress=on_progress, datasets=datasets)
            except TrainingDiverged as err:
                outcome = RunOutcome(spec, "failed", message=str(err))
                err_console.print(f"[bold red]run failed:[/] {err}")
            progress.finish(spec.name, {"trained": "done", "resumed": "done"}.get(
                outcome.status, outcome.status))
            outcomes.append(outcome)
    _render(outcomes, out)
    failed = [o for o in outcomes if o.status == "failed"]
    if failed:
        raise RbgError(f"{len(failed)} of {len(outcomes)} runs failed; the others are complete")


def _render(outcomes: list[RunOutcome], out: Path) -> None:
    table = Table(title="training runs")
    extra = any(o.message and o.status != "failed" for o in outcomes)
    columns = ("run", "status", "train acc (epoch mean)", "test acc", "time")
    for col in columns + (("notes",) if extra else ()):
        table.add_column(col, justify="right" if col not in ("run", "notes") else "left")
    for o in outcomes:
        if o.status == "skipped":
            from ..rundir.folder import read_status

            acc = read_status(o.spec.run_dir).get("test_accuracy")
            test = f"{acc:.2%}" if isinstance(acc, float) else "-"
            table.add_row(o.spec.name, "skipped (complete)", "-", test, "-",
                          *(("",) if extra else ()))
            continue
        table.add_row(o.spec.name, o.status,
                      f"{o.train_accuracy:.2%}" if o.status != "failed" else "-",
                      f"{o.test_accuracy:.2%}" if o.status != "failed" else "-",
                      f"{o.seconds:.1f}s", *((o.message,) if extra else ()))
    console.print(table)
    console.print(f"runs are in [bold]{out.resolve()}[/]")
