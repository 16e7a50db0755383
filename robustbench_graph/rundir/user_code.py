"""An imported model's code (docs/models.md#import): where it is (:class:`ModelSource`),
finding a module's file without running anything, running a model file's checked bytes,
calling the recorded factory (a function or class defined in the recorded source itself,
never any importable callable), under a time limit, with whatever the code raises or exits
with as one line.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import inspect
import signal
import sys
import threading
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import RbgError
from ..lazy import nn
from .folder import is_imported as is_imported
from .folder import read_run_bytes

DEFAULT_TIMEOUT = 300.0  # seconds for building (and, on import, checking) a model
SOURCE_COPY = "model_source.py"
KINDS = ("file", "module", "torchvision", "timm", "onnx")
CODE_KINDS = ("file", "module")  # sources whose code runs only when trusted (.trust)
MAX_SOURCE_BYTES = 16 * 2**20  # a model file beyond this is not one


@dataclass(frozen=True)
class ModelSource:
    """Where a network's code is: ``kind`` file (``target`` a path), module (a module name)
    or torchvision (an architecture name); ``factory`` is called with ``kwargs``."""

    kind: str
    target: str
    factory: str | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """The model column of its results: ``net.py:make_model``, ``torchvision.resnet18``."""
        if self.kind == "torchvision":
            return f"torchvision.{self.target}"
        target = Path(self.target).name if self.kind == "file" else self.target
        return f"{target}:{self.factory}"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class TimeUp(BaseException):
    """Raised in the main thread when the time limit of :func:`time_limit` passes."""


PASS_THROUGH = (KeyboardInterrupt, TimeUp, RbgError)  # never turned into another message


def describe_error(err: BaseException) -> str:
    try:
        text = str(err).strip().splitlines()
    except Exception:  # noqa: BLE001 - a hostile __str__
        text = []
    if isinstance(err, SystemExit):
        return f"it called sys.exit({err.code!r})"
    return f"{type(err).__name__}: {text[0][:300]}" if text else type(err).__name__


@contextlib.contextmanager
def time_limit(seconds: float | None, what: str) -> Iterator[None]:
    """Raise one line when the block runs past ``seconds`` (in the main thread; elsewhere,
    and with ``seconds`` None, the block is not limited)."""
    if (seconds is None or threading.current_thread() is not threading.main_thread()
            or not hasattr(signal, "setitimer")):
        yield
        return

    def on_alarm(signum: int, frame: Any) -> None:
        raise TimeUp

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    except TimeUp:
        raise RbgError(f"{what} did not finish within {seconds:g} s (the time limit; "
                       "--timeout sets it)") from None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextlib.contextmanager
def user_code(what: str) -> Iterator[None]:
    """Whatever the model's code raises in the block, a ``BaseException`` or
    ``sys.exit()`` included, becomes one line (Ctrl-C and the time limit pass through)."""
    try:
        yield
    except PASS_THROUGH:
        raise
    except BaseException as err:  # noqa: BLE001 - the model's code may raise anything
        raise RbgError(f"{what} failed ({describe_error(err)})") from None


def check_module_name(name: str) -> None:
    """A module path may name the user's code, not Python's standard library."""
    if not name or not all(part.isidentifier() for part in name.split(".")):
        raise RbgError(f"{name!r} is not a module path (package.module)")
    top = name.split(".")[0]
    if top in sys.stdlib_module_names or top in sys.builtin_module_names:
        raise RbgError(f"module {name!r} is part of Python's standard library, not a model's "
                       "code")


def locate_module(name: str) -> Path:
    """The file a module path would be imported from, found as the import system finds it
    but without running any module's code (not even its packages')."""
    check_module_name(name)
    parts = name.split(".")
    path: list[str] | None = None
    spec = None
    for depth in range(1, len(parts) + 1):
        full = ".".join(parts[:depth])
        loaded = sys.modules.get(full)
        spec = getattr(loaded, "__spec__", None) if loaded is not None else None
        if spec is None:
            for finder in sys.meta_path:
                find = getattr(finder, "find_spec", None)
                try:
                    spec = find(full, path) if find is not None else None
                except Exception:  # noqa: BLE001 - a finder that cannot look here
                    spec = None
                if spec is not None:
                    break
        if spec is None:
            raise RbgError(f"module {full!r} cannot be imported (not found on the Python path)")
        if depth < len(parts):
            path = list(spec.submodule_search_locations or [])
            if not path:
                raise RbgError(f"{full!r} is not a package, so it has no module "
                               f"{parts[depth]!r}")
    assert spec is not None
    if not spec.has_location or not spec.origin or not Path(spec.origin).is_file():
        raise RbgError(f"module {name!r} has no file of its own whose SHA-256 rbg can check")
    return Path(spec.origin)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_checked_copy(path: Path, limit: int, sha256: Any, what: str) -> bytes:
    """The bytes of a file an import copied into a run folder, checked against the SHA-256
    recorded then; a missing or changed copy is one line naming ``what`` it was."""
    try:
        data = read_run_bytes(path, limit)
    except FileNotFoundError:
        data = None
    if data is None or sha256_bytes(data) != sha256:
        raise RbgError(f"{path} is missing or differs from the imported {what} (SHA-256); "
                       "import the model again")
    return data


def exec_source(code: bytes, path: Path) -> types.ModuleType:
    """The module defined by a model file's bytes (the bytes checked, not the file read
    again), run under a private name and not kept in ``sys.modules``."""
    name = f"rbg_imported_{sha256_bytes(str(path).encode())[:12]}"
    module = types.ModuleType(name)
    module.__file__ = str(path)
    sys.modules[name] = module  # dataclasses and pickling look the module up while it runs
    try:
        with user_code(f"{path}: running it"):
            exec(compile(code, str(path), "exec"), module.__dict__)  # noqa: S102 - trusted
    finally:
        sys.modules.pop(name, None)
    return module


def import_module(name: str) -> types.ModuleType:
    try:
        return importlib.import_module(name)
    except PASS_THROUGH:
        raise
    except BaseException as err:  # noqa: BLE001
        raise RbgError(f"module {name!r} cannot be imported ({describe_error(err)})") from None


def factory_of(module: types.ModuleType, factory: str, where: str) -> Callable[..., Any]:
    """The factory, looked up in the source's own namespace: a function or class defined
    there (not one it imports, e.g. ``os.system``)."""
    if not factory.isidentifier():
        raise RbgError(f"{where}: {factory!r} is not a factory name")
    make = vars(module).get(factory)
    if make is None:
        defined = sorted(n for n, v in vars(module).items()
                         if callable(v) and not n.startswith("_")
                         and getattr(v, "__module__", None) == module.__name__)
        raise RbgError(f"{where} has no factory {factory!r} (it defines: "
                       f"{', '.join(defined) or 'nothing callable'})")
    home = getattr(make, "__module__", None)
    if not (inspect.isfunction(make) or inspect.isclass(make)) or home != module.__name__:
        raise RbgError(f"{where}: {factory!r} is not a function or class defined there (it "
                       f"comes from {home or type(make).__name__!r}); name the module that "
                       "defines the factory")
    return make


def call_factory(make: Callable[..., Any], kwargs: dict[str, Any], where: str) -> nn.Module:
    try:
        net = make(**kwargs)
    except PASS_THROUGH:
        raise
    except BaseException as err:  # noqa: BLE001 - the model's code may raise anything
        raise RbgError(f"{where} failed with the given keyword arguments "
                       f"({describe_error(err)})") from None
    if not isinstance(net, nn.Module):
        raise RbgError(f"{where} returned a {type(net).__name__}, not a torch nn.Module")
    return net


def build_network(source: ModelSource, code: bytes | None = None,
                  code_path: Path | None = None) -> nn.Module:
    """Run the source's factory: a file source's ``code`` (its checked bytes, from
    ``code_path``), a module source's module, or a torchvision architecture."""
    if source.kind == "torchvision":
        import torchvision.models as tvm

        if source.target not in tvm.list_models():
            raise RbgError(f"unknown torchvision architecture {source.target!r} (see "
                           "torchvision.models.list_models())")
        make = lambda **kw: tvm.get_model(source.target, weights=None, **kw)  # noqa: E731
        return call_factory(make, source.kwargs, f"torchvision architecture "
                                                 f"{source.target!r}")
    if source.kind == "file":
        path = Path(code_path or source.target)
        if code is None:
            raise RbgError(f"model file {path} was not read")
        module = exec_source(code, path)
        where = str(path)
    else:
        module = import_module(source.target)
        where = f"module {source.target!r}"
    make = factory_of(module, str(source.factory), where)
    return call_factory(make, source.kwargs, f"{where}:{source.factory}")
