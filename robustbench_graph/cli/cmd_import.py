"""``rbg import``: an outside classifier as a run folder that attack, report and smoothness
use unchanged (docs/models.md#import)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import RbgError
from .console import console, guarded


def _floats(text: str | None, flag: str) -> tuple[float, ...] | None:
    if text is None:
        return None
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise RbgError(f"{flag} expects comma-separated numbers, got {text!r}") from None
    if not values:
        raise RbgError(f"{flag} expects at least one number")
    return values


@guarded
def import_cmd(
    run_dir: Annotated[Path, typer.Argument(
        help="The run folder to create (it must not exist, or be empty).")],
    model_file: Annotated[str | None, typer.Option(
        "--model-file", help="A Python file and the factory in it that builds the network: "
                             "path/to/net.py:make_model.")] = None,
    model: Annotated[str | None, typer.Option(
        "--model", help="An importable module and its factory: package.module:make_model.")
    ] = None,
    torchvision: Annotated[str | None, typer.Option(
        "--torchvision", help="A torchvision architecture by name (e.g. resnet18), built "
                              "without pretrained weights.")] = None,
    timm: Annotated[str | None, typer.Option(
        "--timm", help="A timm architecture by name (e.g. resnet18), built with "
                       "pretrained=False; needs the extra robustbench_graph\\[timm].")] = None,
    onnx: Annotated[str | None, typer.Option(
        "--onnx", help="An ONNX file, converted with onnx2torch (its weights are in it); "
                       "needs the extra robustbench_graph\\[onnx].")] = None,
    kw: Annotated[list[str] | None, typer.Option(
        "--kw", help="Keyword argument of the factory NAME=VALUE (repeatable), e.g. --kw "
                     "num_classes=10; values are JSON where they parse, else strings.")
    ] = None,
    weights: Annotated[Path | None, typer.Option(
        help="The weights: safetensors, a torch state_dict file or a RobustBench-format "
             "checkpoint ({'state_dict': ...}, 'module.' prefixes stripped), loaded with "
             "weights_only=True (a pickled model is refused); optional with --onnx.")] = None,
    dataset: Annotated[str, typer.Option(
        help="The dataset the model classifies (rbg list datasets).")] = "mnist5k",
    input_space: Annotated[str | None, typer.Option(
        "--input", help="What the network takes: 'pixels' ([0, 1] images, normalising "
                        "inside itself) or 'normalized' ((x - mean) / std) \\[default: "
                        "normalized for --timm, else pixels].")] = None,
    mean: Annotated[str | None, typer.Option(
        help="Channel means of the normalisation, e.g. 0.4914,0.4822,0.4465 \\[default: a "
             "timm model's pretrained_cfg where it fits, else the dataset's].")] = None,
    std: Annotated[str | None, typer.Option(
        help="Channel standard deviations \\[default: as --mean].")] = None,
    blocks: Annotated[str | None, typer.Option(
        help="Modules after which test-time dropout acts, by name: layer1,layer2 "
             "\\[default: the network's top-level modules that hold weights, but the last].")
    ] = None,
    seed: Annotated[int, typer.Option(
        help="The seed this network was trained with (its replicate number in reports).")
    ] = 0,
    method: Annotated[str | None, typer.Option(
        help="The method name in reports \\[default: '<model> (imported)'].")] = None,
    split_seed: Annotated[int, typer.Option(
        help="Split seed of the embedded datasets' test split.")] = 0,
    data_dir: Annotated[Path | None, typer.Option(
        help="Folder of the dataset's files where its shape and classes come from them "
             "(imagefolder) \\[default: $RBG_DATA_DIR or ~/.cache/robustbench_graph/data].")
    ] = None,
    overwrite: Annotated[bool, typer.Option(
        help="Replace an existing run folder (only a folder of rbg's run files, never one "
             "holding anything else).")] = False,
    timeout: Annotated[float, typer.Option(
        help="Seconds the model's code may take to build the network and classify a test "
             "batch before the import stops with an error.")] = 300.0,
    force: Annotated[bool, typer.Option(
        help="Import even when the normalisation check finds the network near chance in "
             "the declared input space and far above it in the other.")] = False,
) -> None:
    """Turn an outside classifier into a run folder for rbg attack, report and smoothness."""
    from ..rundir.imported import (
        ImportRequest,
        import_model,
        import_notes,
        parse_kwargs,
        parse_source,
        source_label,
    )

    names = None if blocks is None else tuple(b.strip() for b in blocks.split(",") if b.strip())
    if names == ():
        raise RbgError("--blocks names no block; name the modules after which test-time "
                       "dropout acts (e.g. layer1,layer2), or leave it out for the default")
    source = parse_source(model_file=model_file, module=model, torchvision=torchvision,
                          kwargs=parse_kwargs(kw), timm=timm, onnx=onnx)
    request = ImportRequest(
        source=source, weights=weights, dataset=dataset, input_space=input_space,
        mean=_floats(mean, "--mean"), std=_floats(std, "--std"),
        blocks=names,
        seed=seed, method=method, split_seed=split_seed, data_dir=data_dir, timeout=timeout,
        force=force)
    with console.status("checking the model"):
        folder = import_model(run_dir, request, overwrite=overwrite)
    for note in import_notes(folder):
        console.print(f"note: {note}", highlight=False, markup=False, soft_wrap=True)
    console.print(f"imported [bold]{source_label(source)}[/] into [bold]{folder}[/]; next: "
                  f"rbg attack --runs {folder}", highlight=False)
