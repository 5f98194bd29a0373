"""Writing files so that a crash or a full disk never leaves a partial one behind."""
from __future__ import annotations

import os
import shutil
from pathlib import Path


def same_file(a: Path, b: Path) -> bool:
    """Whether existing path `b` names the same file as `a` (through links and `./` alike)."""
    return b.exists() and b.resolve() == a.resolve()


def write_atomic(path: Path, data: bytes) -> None:
    """Temp file in the same folder, then rename: readers never see a partial file.

    Writing through a symlink replaces the file it points to (not the link), and a file
    that is replaced keeps its permission bits, as an in-place write would.
    """
    path = Path(os.path.realpath(path))
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if path.exists():
            shutil.copymode(path, tmp)
        os.replace(tmp, path)
    except OSError as error:  # name the file asked for, not the hidden temporary one
        raise OSError(error.errno, f"cannot write {path}: {error.strerror}") from error
    finally:
        tmp.unlink(missing_ok=True)
