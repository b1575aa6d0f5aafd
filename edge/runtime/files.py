"""Writing files so that a crash never leaves a half-written one: the one implementation for edge and export.

`write_atomic` writes a file; `staged_directory` builds a directory beside its final place, holding a lock that
refuses a second writer, and publishes it with one rename (an existing one swapped out in the same step, or
moved aside and restored on failure); Ctrl-C, SIGTERM and SIGHUP (edge/exit_status.py `signals_interrupt`) remove
it like any error. `check_writable` refuses, before anything is done, an output file that could not be written.
(calibration/ writes its own files the same way: it sits below edge and cannot import it.)
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import fcntl
import functools
import os
import shutil
import sys
import tempfile
import uuid
import warnings
from pathlib import Path
from typing import Callable, Iterator

from edge.errors import EdgeError, OptionError


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write through a temporary file in the same folder, then rename over `path`."""
    write_atomic_with(path, lambda tmp: tmp.write_text(data, encoding="utf-8") if isinstance(data, str)
                      else tmp.write_bytes(data))


def write_atomic_with(path: Path, write: Callable[[Path], object]) -> None:
    """`write(tmp)` to a temporary file in the same folder, then rename it over `path`; the temporary file is
    removed if anything fails, so a reader sees the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        write(tmp)
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


class OutputTaken(EdgeError):
    """An output path is taken: it exists (and replacing it was not asked for), or another writer holds it."""


# renameat2(2) flags (linux/fs.h): swap two paths in one step, or rename only if the target does not exist
RENAME_NOREPLACE, RENAME_EXCHANGE = 1, 2
AT_FDCWD = -100


def _renameat2(src: Path, dst: Path, flags: int) -> bool:
    """renameat2 through libc; False where the kernel, libc or file system has none (then the caller falls back)."""
    libc = _libc()
    if libc is None or not hasattr(libc, "renameat2"):
        return False
    if libc.renameat2(AT_FDCWD, os.fsencode(src), AT_FDCWD, os.fsencode(dst), flags) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(dst))


@functools.cache
def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None


@contextlib.contextmanager
def exclusive(final: Path) -> Iterator[None]:
    """Hold the writer's lock of `final` (an flock on `.<name>.lock` beside it, removed afterwards): a second writer
    to the same path, with or without --force, is refused at once instead of silently replacing the first's work."""
    lock = final.with_name(f".{final.name}.lock")
    final.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if os.fstat(fd).st_ino != os.stat(lock).st_ino:  # the holder removed it between our open and flock
                raise BlockingIOError
        except (BlockingIOError, FileNotFoundError):
            raise OutputTaken(f"{final} is being written by another process (lock {lock}); wait for it to finish "
                              "or choose another output path") from None
        try:
            yield
        finally:
            lock.unlink(missing_ok=True)
    finally:
        os.close(fd)


def publish(tmp: Path, final: Path, replace: bool) -> None:
    """Move the finished folder `tmp` to `final`. A new `final` appears in one rename that never lands on a path
    created meanwhile; an existing one (only with `replace`) is swapped in one step (RENAME_EXCHANGE), else moved
    aside, replaced and restored if that fails: the old one is never removed before the new one is in place."""
    if not os.path.lexists(final):
        try:
            if _renameat2(tmp, final, RENAME_NOREPLACE):
                return
            if not os.path.lexists(final):  # no renameat2 here: check, then rename
                tmp.rename(final)
                return
        except FileExistsError:  # created between the check and the rename
            pass
    if not replace:
        raise OutputTaken(f"{final} already exists (it appeared while this ran); it was left as it is")
    if _renameat2(tmp, final, RENAME_EXCHANGE):
        old = tmp  # the swap left the old folder at the staging path
    else:
        old = final.with_name(f".{final.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        final.rename(old)
        try:
            tmp.rename(final)
        except BaseException:
            old.rename(final)
            raise
    _remove(old)


def _remove(path: Path) -> None:
    """Remove a replaced folder; one that cannot be removed is reported and left (the new one is in place)."""
    try:
        shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
    except OSError as exc:
        warnings.warn(f"the replaced {path} could not be removed ({exc.strerror or exc}); remove it by hand",
                      RuntimeWarning, stacklevel=3)


@contextlib.contextmanager
def staged_directory(final: Path, replace: bool = True) -> Iterator[Path]:
    """Yield an empty folder beside `final`, holding the writer's lock of `final`; when the block ends without an
    error, `publish` puts it in place (replacing an existing `final` only when `replace`). On an error, a Ctrl-C or
    (under `signals_interrupt`) SIGTERM/SIGHUP, it is removed and `final` is left as it was."""
    with exclusive(final):
        tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        tmp.mkdir()  # with the umask's mode, as `final` would get (mkdtemp's would be private)
        try:
            yield tmp
            publish(tmp, final, replace)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
