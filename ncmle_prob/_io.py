"""Small file I/O at the bottom of the package: :func:`atomic_write`.

Every writer of the library (checkpoints, histories, PNG grids, reports) goes through
:func:`atomic_write`, so a killed process leaves either the old file or the new one, never a
truncated file. This module imports nothing of the library and only the standard library, so
the command line can write files without importing training (import-linter keeps it so).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

__all__ = ["atomic_write"]


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[bytes]], Any]) -> Path:
    """Calls ``write(file_object)`` on a temporary file, then renames it to ``path``.

    The temporary file is a unique sibling of ``path`` (same directory, so :func:`os.replace`
    is atomic on POSIX and Windows), flushed and ``fsync``-ed before the rename; on any error it
    is removed and the error re-raised.

    Args:
        path: target path; its directory is created if needed.
        write: a callable taking a binary file object.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.bin"
        >>> _ = atomic_write(p, lambda f: f.write(b"ok"))
        >>> p.read_bytes()
        b'ok'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # a unique sibling name, created with the usual umask-based permissions (unlike mkstemp)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp"
    try:
        with open(tmp, "xb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path
