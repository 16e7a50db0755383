"""Outside classifiers as run folders (``rbg import``, docs/models.md#import).

An imported run folder is a finished run that ``attack``, ``report`` and ``smoothness`` use
unchanged. Its ``config.json`` holds, beside the usual ``train`` record (dataset, a model
label, loss ``imported``), an ``imported`` record: where the network's code came from (a
Python file, copied into the folder as ``model_source.py``; an importable module; a
torchvision or timm architecture; or an ONNX file, copied as ``model.onnx``:
:mod:`.ecosystem`), the factory and its keyword arguments, the SHA-256 of the source,
of the weights file given and of the ``model.safetensors`` written (``stored_sha256``), what
input the network expects (:mod:`.models.external`), its block and ReLU taps. The folder is
read back by :mod:`.imported_model`, which rebuilds the model when the folder is loaded.

Everything is checked before anything is written, under a time limit: the factory exists in
the source and builds an ``nn.Module``, the weights fit it exactly, and a batch of the
dataset's shape gives (batch, classes) logits, an ONNX conversion's gradients are usable (else
the folder records why not), and the normalisation check passes
(:mod:`.normalisation_check`; ``--force`` overrides it). The folder is then written under a
temporary name beside it and renamed, and the user's trust in its code recorded
(:mod:`.trust`). An existing folder is replaced only when it is proven an rbg run folder
(:mod:`.replace`).
"""

from __future__ import annotations

import dataclasses
import math
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from ..config import MAX_SEED, TrainConfig
from ..data import DatasetInfo, dataset_info
from ..errors import RbgError
from ..models import onnx_source, timm_source
from ..models.external import INPUT_SPACES, ExternalModel, default_blocks
from .atomic import DIR_MODE, write_json_atomic
from .ecosystem import LIBRARY_KINDS, ONNX, ONNX_COPY, TIMM, build, read_onnx
from .ecosystem import label as source_label
from .ecosystem import source_record as ecosystem_record
from .folder import CONFIG, WEIGHTS, read_run_bytes, read_run_json, save_weights, write_status
from .import_request import ImportRequest, statistics
from .import_request import parse_kwargs as parse_kwargs
from .import_request import parse_source as parse_source
from .imported_model import IMPORTED_LOSS, load_into, read_state_dict
from .normalisation_check import check_images, check_normalisation
from .provenance import software_record
from .replace import check_target, replace_folder
from .trust import record_trust
from .user_code import (
    CODE_KINDS,
    MAX_SOURCE_BYTES,
    SOURCE_COPY,
    ModelSource,
    describe_error,
    locate_module,
    sha256_bytes,
    sha256_of,
    time_limit,
    user_code,
)


def check_output(model: ExternalModel, info: DatasetInfo) -> None:
    """The model maps a batch of the dataset's shape to (batch, classes) logits."""
    x = torch.rand((2, *info.input_shape), generator=torch.Generator().manual_seed(0))
    shape = "x".join(map(str, info.input_shape))
    try:
        with torch.no_grad():
            out = model(x)
    except (KeyboardInterrupt, RbgError):
        raise
    except Exception as err:
        raise RbgError(f"the model fails on a batch of two {shape} images of dataset "
                       f"{info.name!r} ({describe_error(err)})") from None
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, info.num_classes):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise RbgError(f"the model's output for a batch of 2 is {got}, expected (batch, "
                       f"classes) = (2, {info.num_classes}) for dataset {info.name!r}")
    if not torch.isfinite(out).all():
        raise RbgError("the model's logits are not finite on a random batch")


def _read_source(source: ModelSource) -> tuple[bytes | None, Path | None, str | None]:
    """A file source's bytes (what runs and is copied), or a module's file, with its
    SHA-256; nothing is run."""
    if source.kind == "file":
        path = Path(source.target)
        try:
            code = read_run_bytes(path, MAX_SOURCE_BYTES)
        except FileNotFoundError:
            raise RbgError(f"model file {path} does not exist") from None
        return code, path, sha256_bytes(code)
    if source.kind == "module":
        path = locate_module(source.target)
        return None, path, sha256_of(path)
    if source.kind == ONNX:
        data = read_onnx(Path(source.target))
        return data, Path(source.target), sha256_bytes(data)
    return None, None, None


def _check_space(model: ExternalModel, req: ImportRequest, info: DatasetInfo
                 ) -> dict[str, Any]:
    """The normalisation check (:mod:`.normalisation_check`): refused, unless ``force``,
    when the declared input space is near chance and the other far above it."""
    found = check_images(req.dataset, req.data_dir, req.split_seed)
    if isinstance(found, str):
        return {"skipped": found}
    result = check_normalisation(model, *found)
    if result.wrong_space and not req.force:
        raise RbgError(f"{result.line(req.dataset)}; import with --input {result.other}, or "
                       "pass --force to import it as declared")
    return {**result.record(), "wrong_space": result.wrong_space}


def import_model(run_dir: Path, req: ImportRequest, *, overwrite: bool = False) -> Path:
    """Check the outside model and write it as a finished run folder; returns the folder.

    Raises:
        RbgError: anything that does not fit (nothing is written then).
    """
    run_dir = Path(run_dir)
    target = check_target(run_dir, overwrite)
    if req.space not in INPUT_SPACES:
        raise RbgError(f"unknown --input {req.space!r}; valid: {', '.join(INPUT_SPACES)}")
    if not 0 <= req.seed <= MAX_SEED:
        raise RbgError(f"--seed must be in 0..{MAX_SEED}, got {req.seed}")
    if req.timeout is not None and not (math.isfinite(req.timeout) and req.timeout > 0):
        raise RbgError(f"--timeout must be a positive number of seconds, got {req.timeout}")
    if req.weights is None and req.source.kind != ONNX:
        raise RbgError("--weights is required (safetensors or a state_dict file)")
    info = dataset_info(req.dataset, req.data_dir)
    statistics(req, info)  # checked before any code runs
    if req.source.kind == TIMM:
        timm_source.require_timm()
    code, code_path, code_sha = _read_source(req.source)
    weights_record: dict[str, Any] = {"path": None, "sha256": None, "format": "onnx"}
    with time_limit(req.timeout, "checking the model"), user_code("checking the model"):
        net = build(req.source, code, code_path)
        if req.weights is not None:
            state, weights_format, notes = read_state_dict(req.weights)
            load_into(net, state, str(req.weights))
            weights_record = {"path": str(Path(req.weights).resolve()),
                              "sha256": sha256_of(Path(req.weights)),
                              "format": weights_format, "unwrapped": notes}
        declared = (timm_source.declared_statistics(net, info.input_shape[0])
                    if req.source.kind == TIMM else None)
        mean, std, origin = statistics(req, info, declared)
        blocks = list(req.blocks) if req.blocks is not None else default_blocks(net)
        model = ExternalModel(net, info, input_space=req.space, mean=mean, std=std,
                              blocks=blocks).eval()
        check_output(model, info)
        problem = None
        if req.source.kind == ONNX:
            x = torch.rand((2, *info.input_shape), generator=torch.Generator().manual_seed(0))
            problem = onnx_source.gradient_problem(model, x)
        normalisation = _check_space(model, req, info)
        weights = {k: v.detach().clone() for k, v in net.state_dict().items()}
        relu_taps, parameters = len(model.relu_taps), sum(p.numel() for p in net.parameters())
    source_record: dict[str, Any] = {"kind": req.source.kind, "factory": req.source.factory,
                                     "kwargs": req.source.kwargs}
    if req.source.kind == "file":
        source_record.update(path=str(Path(req.source.target).resolve()), sha256=code_sha,
                             copy=SOURCE_COPY)
    elif req.source.kind == "module":
        source_record.update(module=req.source.target, path=str(code_path), sha256=code_sha)
    elif req.source.kind in LIBRARY_KINDS:
        source_record = ecosystem_record(req.source, code_path, code_sha)
    else:
        import torchvision

        source_record.update(architecture=req.source.target,
                             torchvision=torchvision.__version__)
    train = TrainConfig(dataset=req.dataset, model=source_label(req.source), loss=IMPORTED_LOSS,
                        split_seed=req.split_seed)
    train.validate()
    record = dict(
        run=target.name,
        seed=req.seed,
        method=req.method or f"{source_label(req.source)} (imported)",
        train={k: v for k, v in train.to_dict().items()
               if k in ("dataset", "model", "loss", "split_seed")},
        **software_record(),
        dataset_info=dataclasses.asdict(info),
        imported={
            "source": source_record,
            "weights": weights_record,
            "input": {"space": req.space, "mean": mean, "std": std},
            "input_statistics": origin,  # given, pretrained_cfg (timm) or dataset
            "blocks": blocks,
            "relu_taps": relu_taps,
            "num_classes": info.num_classes,
            "parameters": parameters,
            "normalisation_check": normalisation,
            **({"no_gradient": onnx_source.no_gradient_message(problem)} if problem else {}),
        },
    )
    _write_folder(target, record, weights, code, code_sha, req.source.kind)
    return run_dir


def import_notes(run_dir: Path) -> list[str]:
    """What the user should know about an imported folder, one line each: a model that is
    not white-box, a normalisation check passed by --force or skipped."""
    imported = read_run_json(Path(run_dir) / CONFIG).get("imported") or {}
    notes = [imported["no_gradient"]] if imported.get("no_gradient") else []
    check = imported.get("normalisation_check") or {}
    if check.get("wrong_space"):
        notes.append("--force: imported as declared although the normalisation check found "
                     f"{check['accuracy_declared']:.1%} accuracy with --input "
                     f"{check['declared']} and {check['accuracy_other']:.1%} with --input "
                     f"{check['other']}")
    elif check.get("skipped"):
        notes.append(f"normalisation check skipped: no test images ({check['skipped']})")
    return notes


def _write_folder(target: Path, record: dict[str, Any], weights: dict[str, torch.Tensor],
                  code: bytes | None, code_sha: str | None, kind: str) -> None:
    """Write the run under a temporary name beside ``target``, record the user's trust in
    its code, then put it in place (:func:`.replace.replace_folder`)."""
    parent = target.parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.importing-", dir=parent))
    try:
        tmp.chmod(DIR_MODE)
        save_weights(tmp / WEIGHTS, weights)
        stored_sha = sha256_of(tmp / WEIGHTS)
        record["imported"]["weights"]["stored_sha256"] = stored_sha
        if code is not None:
            (tmp / (ONNX_COPY if kind == ONNX else SOURCE_COPY)).write_bytes(code)
        write_json_atomic(tmp / CONFIG, record)
        write_status(tmp, "complete", imported=True)
        if kind in CODE_KINDS:  # the folder as written, read back as it will be loaded
            written = read_run_json(tmp / CONFIG)["imported"]
            record_trust(target, written, code_sha, stored_sha, "rbg import")
        replace_folder(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
