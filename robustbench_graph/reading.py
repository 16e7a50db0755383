"""The one bounded reader of the files rbg reads (run files, side and state files, dataset
files, experiment files): a regular file of at most ``limit`` bytes, or an error naming it.

A FIFO would hang a plain read and a link to /dev/zero never end it, so the file is opened
without blocking and checked through its descriptor (a file swapped for a FIFO after a check
cannot hang the read); it is then read in chunks, because ``read(limit + 1)`` reserves the
whole limit up front (16 GiB for weights), which fails under an address-space cap
(``ulimit -v``) whatever the file's size.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .errors import RbgError

READ_CHUNK = 2**24  # the most asked of the OS at once


def read_bounded(path: Path | str, limit: int, error: type[Exception] = RbgError,
                 what: str = "") -> bytes:
    """The bytes of ``path`` if it is a regular file of at most ``limit`` bytes.

    Args:
        error: the exception raised for a file that exists but cannot be used.
        what: said of the file when it is too large (e.g. ``" for an rbg run file"``).

    Raises:
        FileNotFoundError: there is no such file (or a link to nothing).
        error: anything else that makes it unreadable, naming the file.
    """
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise
    except OSError as err:
        raise error(f"{path} cannot be read ({err.strerror})") from None
    with os.fdopen(fd, "rb", buffering=0) as fh:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise error(f"{path} is not a regular file")
        if info.st_size > limit:
            raise error(f"{path} is too large{what} ({info.st_size} bytes)")
        chunks, total, want = [], 0, info.st_size + 1
        try:
            while total <= limit:
                chunk = fh.read(min(want, READ_CHUNK, limit + 1 - total))
                if not chunk:
                    break
                chunks.append(chunk)
                total += len(chunk)
                want = READ_CHUNK
        except OSError as err:
            raise error(f"{path} cannot be read ({err.strerror})") from None
    if total > limit:  # it grew after the check
        raise error(f"{path} is too large{what} (over {limit} bytes)")
    return b"".join(chunks)
