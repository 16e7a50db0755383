"""Units of work of an experiment, as plain data, and what state each is in.

A *train* unit is one (configuration, seed): it makes a run folder. An *attack* unit is one
run folder under the experiment's whole suite; it needs its train unit done. Both are
idempotent and resumable (training from its last epoch's checkpoint, the attack from its
last finished cell), so running a unit again is always safe. A unit is *done* when its run
folder says so (``status.json`` complete; every planned cell in ``results.csv`` under its
settings), *running* while a process holds its lock, *failed* when its last attempt failed
(``status.json`` failed; ``.rbg-attack-failed.json``; a train unit's worker died:
``.<run>.train.failed.json`` beside its lock), else *pending*.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket
import stat
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from ..config import AttackConfig, ImageSubset, TrainConfig
from ..errors import RbgError
from ..rundir.atomic import write_json_atomic
from .spec import Experiment

STATES = ("done", "running", "failed", "pending")
ATTACK_FAILED = ".rbg-attack-failed.json"


@dataclass(frozen=True)
class Unit:
    """One unit of work (plain data: it travels to worker processes and cluster jobs)."""

    kind: str  # "train" or "attack"
    run_dir: str
    train: dict[str, Any]  # TrainConfig.to_dict() of the run
    seed: int
    suite: str = "all"
    attack: dict[str, Any] | None = None  # AttackConfig fields
    data_dir: str | None = None
    device: str = "auto"

    @property
    def id(self) -> str:
        return f"{self.kind}:{Path(self.run_dir).name}"

    @property
    def train_config(self) -> TrainConfig:
        return TrainConfig.from_dict(self.train)

    def attack_config(self) -> AttackConfig:
        a = dict(self.attack or {})
        subset = a.get("test_images") or {}
        return AttackConfig(settings=a.get("settings", {}),
                            test_images=ImageSubset(subset.get("samples"),
                                                    subset.get("rule", "spaced")),
                            batch_size=a.get("batch_size"))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Unit:
        return cls(**d)


def plan(exp: Experiment, device: str = "auto") -> list[Unit]:
    """Every unit of ``exp``: the train units (configurations x seeds, in file order), then
    one attack unit per run."""
    from ..train import plan_runs

    data_dir = str(exp.data_dir) if exp.data_dir is not None else None
    attack = asdict(exp.attack)
    suffixes = exp.suffixes or ("",) * len(exp.configs)
    specs = [replace(spec, run_dir=spec.run_dir.with_name(spec.run_dir.name + suffix))
             for cfg, suffix in zip(exp.configs, suffixes, strict=True)
             for spec in plan_runs(cfg, list(exp.seeds), exp.out)]
    seen: set[str] = set()
    units: list[Unit] = []
    records: dict[int, dict[str, Any]] = {}  # one record per configuration, shared by its seeds
    for spec in specs:
        if str(spec.run_dir) in seen:  # two grid points naming the same run
            raise RbgError(f"{exp.source}: two configurations make the same run "
                           f"{spec.run_dir.name}")
        seen.add(str(spec.run_dir))
        if id(spec.config) not in records:
            records[id(spec.config)] = spec.config.to_dict()
        units.append(Unit("train", str(spec.run_dir), records[id(spec.config)], spec.seed,
                          data_dir=data_dir, device=device))
    units += [Unit("attack", u.run_dir, u.train, u.seed, exp.suite, attack, data_dir, device)
              for u in list(units)]
    return units


def lock_path(unit: Unit) -> Path:
    return Path(unit.run_dir).parent / f".{Path(unit.run_dir).name}.{unit.kind}.lock"


def died_path(unit: Unit) -> Path:
    """Beside the lock: the record of a train unit whose worker died (killed, out of
    memory) before its run folder could say so."""
    return Path(unit.run_dir).parent / f".{Path(unit.run_dir).name}.{unit.kind}.failed.json"


@contextlib.contextmanager
def unit_lock(unit: Unit, *, wait: bool = True) -> Iterator[bool]:
    """Hold the unit's lock for the block (an advisory ``flock`` beside the run folder);
    yields False without waiting when ``wait`` is off and another process holds it."""
    path = lock_path(unit)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
    except OSError as err:
        raise RbgError(f"{path}: the unit's lock file cannot be opened ({err.strerror}); "
                       "remove it") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # a FIFO or device planted there
            raise RbgError(f"{path} is not a regular file; rbg locks units with it (remove it)")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except OSError as err:
            if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                yield False
                return
            raise
        try:
            if wait:  # a holder, not a probe: who it is, for rbg status and for people
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def lock_holder(unit: Unit) -> str:
    """``"<pid> <host>"`` of the last process that held the unit's lock ('' if none)."""
    from ..rundir.folder import read_run_bytes

    try:
        return read_run_bytes(lock_path(unit), 4096).decode("utf-8", "replace").strip()
    except (OSError, RbgError):
        return ""


def is_running(unit: Unit) -> bool:
    if not lock_path(unit).exists():
        return False
    with unit_lock(unit, wait=False) as got:
        return not got


def train_done(run_dir: Path) -> bool:
    from ..rundir.folder import WEIGHTS, read_status

    return read_status(run_dir)["status"] == "complete" and (run_dir / WEIGHTS).is_file()


def missing_cells(unit: Unit) -> int:
    """How many planned cells of an attack unit its results lack (under their settings)."""
    from ..perturbations import build_suite, dataset_family, plan_cells, suite_names
    from ..rundir.folder import RESULTS, read_config
    from ..rundir.results import cell_fingerprints, read_results
    from ..rundir.runs import recorded_info

    run_dir = Path(unit.run_dir)
    cfg = unit.attack_config()
    info = recorded_info(run_dir, read_config(run_dir))
    family = dataset_family(info)
    suite = build_suite(suite_names(unit.suite, family), cfg.settings, family)
    cells = plan_cells(suite, cfg.test_images)
    done = cell_fingerprints(read_results(run_dir / RESULTS))
    return sum(done.get(c.key) != {c.fingerprint} for c in cells)


def state(unit: Unit) -> tuple[str, str]:
    """``(state, message)`` of a unit (see the module docstring)."""
    from ..rundir.folder import read_status

    run_dir = Path(unit.run_dir)
    if unit.kind == "train":
        record = read_status(run_dir)
        if train_done(run_dir):
            return "done", ""
        if is_running(unit):
            return "running", f"pid {lock_holder(unit)}"
        if record["status"] == "failed":
            return "failed", str(record.get("message", ""))
        if died_path(unit).is_file():
            return "failed", _message_of(died_path(unit))
        return "pending", ""
    if not train_done(run_dir):
        return "pending", "waits for its training"
    try:
        missing = missing_cells(unit)
    except RbgError as err:
        return "failed", str(err)
    if missing == 0:
        return "done", ""
    if is_running(unit):
        return "running", f"pid {lock_holder(unit)}"
    failed = run_dir / ATTACK_FAILED
    if failed.is_file():
        return "failed", _message_of(failed)
    return "pending", f"{missing} cell(s) to compute"


def _message_of(path: Path) -> str:
    from ..rundir.folder import read_run_json

    try:
        return str(read_run_json(path).get("message", ""))
    except (RbgError, AttributeError):
        return ""


def mark_attack_failed(unit: Unit, message: str) -> None:
    write_json_atomic(Path(unit.run_dir) / ATTACK_FAILED, {"message": message})


def clear_attack_failed(unit: Unit) -> None:
    with contextlib.suppress(FileNotFoundError):
        (Path(unit.run_dir) / ATTACK_FAILED).unlink()


def mark_unit_failed(unit: Unit, message: str) -> None:
    """Record that a unit's last attempt failed outside its own code (its worker died), so
    that ``rbg status`` says *failed*, as ``rbg run`` did."""
    with contextlib.suppress(OSError, RbgError):
        if unit.kind == "attack":
            mark_attack_failed(unit, message)
        else:
            died_path(unit).parent.mkdir(parents=True, exist_ok=True)
            write_json_atomic(died_path(unit), {"message": message})


def clear_unit_failed(unit: Unit) -> None:
    """Forget a unit's last failure as a new attempt starts."""
    with contextlib.suppress(OSError):
        if unit.kind == "attack":
            clear_attack_failed(unit)
        else:
            died_path(unit).unlink(missing_ok=True)


def describe(units: list[Unit]) -> list[dict[str, Any]]:
    """One row per unit: id, kind, run, state, message (for --dry-run and status)."""
    rows = []
    for u in units:
        st, message = state(u)
        rows.append({"id": u.id, "kind": u.kind, "run": Path(u.run_dir).name, "state": st,
                     "message": message})
    return rows
