"""``rbg attack``: the robustness suite on every run, as tidy rows in each run's results.csv."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..config import AttackConfig
from ..errors import RbgError
from .app import app, console, err_console, guarded
from .options import parse_float_list, parse_int_list

if TYPE_CHECKING:
    from ..evaluate import CellEvent, RunReport


def _floats(text: str | None, flag: str) -> tuple[float, ...] | None:
    return None if text is None else parse_float_list(text, flag)


@app.command()
@guarded
def attack(
    run_dirs: Annotated[list[Path] | None, typer.Argument(
        help="Run folders (or folders of runs) to attack \\[default: --runs].")] = None,
    runs: Annotated[Path, typer.Option(help="Folder searched for run folders.")] = Path("runs"),
    suite: Annotated[str, typer.Option(
        help="'all' or a comma list of perturbations (rbg list perturbations).")] = "all",
    samples: Annotated[int | None, typer.Option(
        help="Evaluate on an evenly spaced subset of this many test images \\[default: all].")
    ] = None,
    gaussian_snr: Annotated[str | None, typer.Option(
        help="Target SNRs in dB of shared Gaussian noise \\[default: 15,20; MNIST-like sets "
             "20,15,10,5].")] = None,
    gaussian_iid_snr: Annotated[str | None, typer.Option(
        help="Target SNRs in dB of i.i.d. Gaussian noise \\[default as --gaussian-snr].")] = None,
    gaussian_draws: Annotated[int, typer.Option(help="Noise draws per SNR.")] = 40,
    fgsm_snr: Annotated[str | None, typer.Option(
        help="Target SNRs in dB of FGSM \\[default: 33; MNIST-like sets 33,25,20,15].")] = None,
    fgsm_linf: Annotated[str | None, typer.Option(
        help="Also FGSM with these L-infinity budgets (e.g. 0.01,0.03).")] = None,
    deepfool_samples: Annotated[int, typer.Option(help="DeepFool test subset size.")] = 1000,
    deepfool_steps: Annotated[int, typer.Option(help="DeepFool steps.")] = 50,
    deepfool_candidates: Annotated[int, typer.Option(help="DeepFool candidate classes.")] = 10,
    deepfool_overshoot: Annotated[float, typer.Option(help="DeepFool overshoot.")] = 0.02,
    deepfool_loss: Annotated[str, typer.Option(
        help="DeepFool linearisation: logits or crossentropy (foolbox 1.6.1's).")] = "logits",
    deepfool_backend: Annotated[str, typer.Option(
        help="native (rbg's batched DeepFool) or foolbox.")] = "native",
    deepfool_norms: Annotated[str, typer.Option(
        help="DeepFool threat models: l2, linf or l2,linf.")] = "l2",
    dropout_p: Annotated[str, typer.Option(help="Test-time dropout rates.")] = "0.25,0.40",
    dropout_repeats: Annotated[int, typer.Option(help="Dropout repeats per rate.")] = 40,
    quantize_bits: Annotated[str, typer.Option(help="Weight bit widths.")] = "5",
    batch_size: Annotated[int | None, typer.Option(
        help="Evaluation batch size \\[default: 1000 on GPUs, 200 on CPUs].")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    data_dir: Annotated[Path | None, typer.Option(help="Folder of torchvision datasets.")
                        ] = None,
    overwrite: Annotated[bool, typer.Option(help="Recompute cells already in results.csv.")
                         ] = False,
) -> None:
    """Evaluate trained runs under the robustness suite (METHODS.md section 1)."""
    # The core (torch) is imported by the command, not at start-up: `rbg --help` stays fast.
    from ..device import resolve_device
    from ..evaluate import attack_run, resolve_runs
    from ..perturbations import suite_names

    names = suite_names(suite)
    cfg = AttackConfig(
        gaussian_snr=_floats(gaussian_snr, "--gaussian-snr"),
        gaussian_iid_snr=_floats(gaussian_iid_snr, "--gaussian-iid-snr"),
        gaussian_draws=gaussian_draws,
        fgsm_snr=_floats(fgsm_snr, "--fgsm-snr"),
        fgsm_linf=_floats(fgsm_linf, "--fgsm-linf") or (),
        deepfool_samples=deepfool_samples, deepfool_steps=deepfool_steps,
        deepfool_candidates=deepfool_candidates, deepfool_overshoot=deepfool_overshoot,
        deepfool_loss=deepfool_loss, deepfool_backend=deepfool_backend,
        deepfool_norms=tuple(n.strip() for n in deepfool_norms.split(",") if n.strip()),
        dropout_p=parse_float_list(dropout_p, "--dropout-p"), dropout_repeats=dropout_repeats,
        quantize_bits=parse_int_list(quantize_bits, "--quantize-bits"),
        samples=samples, batch_size=batch_size,
    )
    cfg.validate()
    dev = resolve_device(device)
    targets = resolve_runs(list(run_dirs) if run_dirs else [runs])
    reports: list[RunReport] = []
    errors: list[str] = []
    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=console,
    ) as progress:
        overall = progress.add_task("runs", total=len(targets), info="")
        for run_dir in targets:
            task = progress.add_task(run_dir.name, total=None, info="")

            def on_event(e: CellEvent, task=task) -> None:  # noqa: ANN001
                progress.update(task, total=e.total, completed=e.index + (e.status != "start"),
                                info=f"{e.cell.label}" + (" (cached)" if e.status == "skipped"
                                                          else ""))

            try:
                reports.append(attack_run(run_dir, names, cfg, device=dev, overwrite=overwrite,
                                          data_dir=data_dir, on_event=on_event))
                progress.update(task, info="done")
            except RbgError as err:
                errors.append(str(err))
                progress.update(task, info="[red]error")
                err_console.print(f"[bold red]error:[/] {err}", highlight=False)
            progress.advance(overall)
    for report in reports:
        _render(report)
    if errors:
        raise RbgError(f"{len(errors)} of {len(targets)} runs could not be attacked; "
                       "results of the others are kept")


def _render(report: RunReport) -> None:
    from ..evaluate import summarize

    table = Table(title=f"{report.name}  ({len(report.computed)} cells computed, "
                        f"{len(report.skipped)} cached)", title_justify="left")
    for col in ("perturbation", "setting", "metric", "mean", "std", "repeats"):
        table.add_column(col, justify="left" if col in ("perturbation", "setting", "metric")
                         else "right")
    summary = summarize(report.table)
    for row in summary.itertuples(index=False):
        if row.metric in ("noise_std", "clamped_weights"):
            continue
        pct = row.metric in ("accuracy", "success_rate")
        fmt = (lambda v: f"{v:.2%}") if pct else (lambda v: f"{v:.4g}")
        setting = "" if row.param == "none" else f"{row.param}={row.param_value:g}"
        std = fmt(row.std) if row.count > 1 else ""
        table.add_row(row.perturbation, setting, row.metric, fmt(row.mean), std,
                      str(int(row.count)))
    console.print(table)
    console.print(f"results: [bold]{report.run_dir / 'results.csv'}[/]")
