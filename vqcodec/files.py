"""Writing files so that a crash or a full disk never leaves a partial one behind."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def same_file(a: Path, b: Path) -> bool:
    """Whether existing path `b` names the same file as `a` (through links and `./` alike)."""
    return b.exists() and b.resolve() == a.resolve()


def check_folder(path: Path) -> None:
    """Raise FileNotFoundError, saying so, when the folder `path` would be written in is missing
    (checked before the work that produces the file, not after)."""
    folder = Path(os.path.realpath(path)).parent
    if not folder.is_dir():
        raise FileNotFoundError(f"cannot write {path}: the folder {folder} does not exist")


def write_atomic(path: Path, data: bytes | memoryview | Callable[[BinaryIO], object]) -> None:
    """Temp file in the same folder, then rename: readers never see a partial file.

    `data` is the bytes to write, or a function that writes them to the open (readable,
    seekable) file, so that a large image's encoder writes to disk without a copy in memory;
    whatever it raises leaves no file behind.

    Writing through a symlink replaces the file it points to (the link stays a link), and a
    file that is replaced keeps its permission bits, as an in-place write would. Errors name
    `path`, never the hidden temporary file.
    """
    check_folder(path)
    target = Path(os.path.realpath(path))
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w+b") as handle:
            if callable(data):
                data(handle)
            else:
                handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if target.exists():
            shutil.copymode(target, tmp)
        os.replace(tmp, target)
    except BaseException as error:
        # The cleanup may fail for the same reason (a read-only filesystem refuses even to
        # unlink what is not there): its error must not replace the one that says what failed.
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise OSError(error.errno, f"cannot write {path}: {error.strerror or error}") from error
        raise
