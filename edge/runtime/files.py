"""Writing files so that a crash never leaves a half-written one: the one implementation for edge and export.

`write_atomic` writes a file; `staged_directory` builds a directory beside its final place and publishes it with
one rename; `check_writable` refuses, before anything is done, an output file that could not be written. (calibration/ writes its own files the same way: it sits below edge and cannot import it.)
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Iterator

from edge.errors import OptionError


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write through a temporary file in the same folder, then rename over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        if isinstance(data, str):
            tmp.write_text(data, encoding="utf-8")
        else:
            tmp.write_bytes(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def check_writable(path: Path, what: str) -> None:
    """Refuse (OptionError naming `what`, e.g. "--summary") an output file that could not be written later: a
    folder, a missing folder, a folder this process cannot create files in (probed with a temporary file, so a
    read-only file system counts), an existing file it may not replace. Nothing is left behind."""
    path = Path(path)
    folder = path.parent
    if path.is_dir():
        raise OptionError(f"{what} {path}: is a folder, expected a file name")
    if not folder.is_dir():
        problem = "is not a folder" if folder.exists() else "does not exist"
        raise OptionError(f"{what} {path}: folder {folder} {problem}")
    if path.exists() and not os.access(path, os.W_OK):
        raise OptionError(f"{what} {path}: the file is not writable")
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=f".{path.name}.probe-"):
            pass
    except OSError as exc:
        raise OptionError(f"{what} {path}: cannot write in {folder}: {exc.strerror or exc}") from None


@contextlib.contextmanager
def staged_directory(final: Path) -> Iterator[Path]:
    """Yield an empty folder beside `final`; when the block ends without an error, it replaces `final` (which
    may exist) in one rename. On an error it is removed and `final` is left as it was."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    tmp.mkdir()  # with the umask's mode, as `final` would get (mkdtemp's would be private)
    try:
        yield tmp
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
