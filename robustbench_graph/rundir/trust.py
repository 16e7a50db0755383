"""Which run folders' code this user trusts (docs/models.md#trusting-code-in-run-folders).

An imported run folder whose network is built from code (a Python file copied into it as
``model_source.py``, or an importable module) runs that code whenever the folder is loaded.
Run folders are meant to be shared, so, as Hugging Face does with ``trust_remote_code``, that
code runs only when the user trusts it:

* a folder this user imported on this machine is trusted: ``rbg import`` records it;
* any other folder needs ``rbg trust RUN`` (which shows what will run, then records it) or
  ``--trust-code`` on the command that loads it (:func:`trusting_code`, for that call only).

Trust is kept outside the folder, in the user's configuration folder (``$RBG_CONFIG_DIR``,
else ``$XDG_CONFIG_HOME/robustbench_graph``, else ``~/.config/robustbench_graph``): a secret
key made once (``trust.key``, mode 0600) and, per trusted folder, a file named by the keyed
hash (HMAC-SHA256) of the folder's import record, the SHA-256 of its code and that of its
weights. A folder copied to another user, or edited (its code, its config's import record or
its weights), has another hash, or one the other user's key does not give, and is not trusted.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import hmac
import json
import os
import secrets
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import RbgError
from .atomic import write_json_atomic

CONFIG_ENV = "RBG_CONFIG_DIR"
KEY_FILE = "trust.key"
TRUSTED = "trusted"  # the folder of trust records, one file per trusted folder state
_KEY_BYTES = 32

_TRUST_ALL: contextvars.ContextVar[bool] = contextvars.ContextVar("rbg_trust_code",
                                                                  default=False)


def config_dir() -> Path:
    """The user's rbg configuration folder (see the module docstring)."""
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV]).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path("~/.config").expanduser())
    return Path(base) / "robustbench_graph"


@contextlib.contextmanager
def trusting_code(trust: bool = True) -> Iterator[None]:
    """Within the block, every run folder's code counts as trusted (``--trust-code``)."""
    token = _TRUST_ALL.set(bool(trust) or _TRUST_ALL.get())
    try:
        yield
    finally:
        _TRUST_ALL.reset(token)


def _read_key(path: Path) -> bytes:
    info = path.lstat()
    if not stat.S_ISREG(info.st_mode) or info.st_size != 2 * _KEY_BYTES:
        raise RbgError(f"{path} is not an rbg trust key (remove it to make a new one; "
                       "every folder trusted so far must then be trusted again)")
    try:
        return bytes.fromhex(path.read_text(encoding="ascii"))
    except (ValueError, UnicodeDecodeError):
        raise RbgError(f"{path} is not an rbg trust key") from None


def _key(create: bool) -> bytes | None:
    """The user's secret key; made (mode 0600) when ``create``, else None when there is
    none."""
    folder = config_dir()
    path = folder / KEY_FILE
    try:
        return _read_key(path)
    except FileNotFoundError:
        if not create:
            return None
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # made meanwhile by another rbg
        return _read_key(path)
    except OSError as err:
        raise RbgError(f"cannot write the trust key {path} ({err.strerror}); set "
                       f"{CONFIG_ENV} to a writable folder") from None
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(secrets.token_hex(_KEY_BYTES))
    return _read_key(path)


def fingerprint(key: bytes, imported: dict[str, Any], code_sha256: str | None,
                weights_sha256: str) -> str:
    """The keyed hash of what a folder runs: its import record, code and weights."""
    message = json.dumps({"imported": imported, "code": code_sha256,
                          "weights": weights_sha256}, sort_keys=True, ensure_ascii=True,
                         separators=(",", ":"), allow_nan=True)
    return hmac.new(key, message.encode("ascii"), hashlib.sha256).hexdigest()


def is_trusted(imported: dict[str, Any], code_sha256: str | None,
               weights_sha256: str) -> bool:
    """Whether this user trusts the code of a folder in this state (or ``--trust-code``)."""
    if _TRUST_ALL.get():
        return True
    try:
        key = _key(create=False)
    except RbgError:
        return False
    if key is None:
        return False
    name = fingerprint(key, imported, code_sha256, weights_sha256)
    try:
        return stat.S_ISREG((config_dir() / TRUSTED / f"{name}.json").lstat().st_mode)
    except OSError:
        return False


def record_trust(run_dir: Path, imported: dict[str, Any], code_sha256: str | None,
                 weights_sha256: str, how: str) -> Path:
    """Record that this user trusts the folder's code as it is now; returns the record."""
    key = _key(create=True)
    assert key is not None
    name = fingerprint(key, imported, code_sha256, weights_sha256)
    folder = config_dir() / TRUSTED
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = folder / f"{name}.json"
        write_json_atomic(path, {"run": str(Path(run_dir).resolve()), "how": how,
                                 "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    except OSError as err:
        raise RbgError(f"cannot record trust in {folder} ({err.strerror or err}); set "
                       f"{CONFIG_ENV} to a writable folder") from None
    return path
