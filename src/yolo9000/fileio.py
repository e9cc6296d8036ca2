"""Atomic file writing: a temp file in the same folder, then rename, so a crash mid-write never
leaves a half-written file where a good one was."""
import contextlib
import glob
import os
import sys
import tempfile
from pathlib import Path


def _temp_prefix(path):
    return f".{path.name}."


TEMP_SUFFIX = ".tmp"


@contextlib.contextmanager
def atomic_path(path):
    """Yields a temporary path next to `path`; on success it replaces `path` in one rename,
    after the data reached the disk (a power loss then leaves the old file or the new one)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=TEMP_SUFFIX, dir=path.parent)
    os.close(fd)
    try:
        yield tmp
        with open(tmp, "rb") as written:    # whoever wrote it (h5py, savefig) did not fsync
            os.fsync(written.fileno())
        # mkstemp makes the file private (0600); give it the permissions a plain open() would
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_folder(path.parent)


def _fsync_folder(folder):
    """Make a rename in `folder` durable; not every system can open a folder (then skip)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def remove_stale_temps(path):
    """Delete the temp files atomic_path left next to `path` when its process was killed
    mid-write (kill -9 cannot be cleaned up after). Only for a path no other process is writing
    at the moment. Returns the removed paths."""
    path = Path(path)
    removed = []
    for stale in path.parent.glob(glob.escape(_temp_prefix(path)) + "*" + TEMP_SUFFIX):
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()
            removed.append(stale)
    return removed


@contextlib.contextmanager
def atomic_open(path):
    """A binary file to write in pieces; it replaces `path` only if the block succeeds."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            yield f


def atomic_write_bytes(path, data):
    with atomic_open(path) as f:
        f.write(data)


def atomic_write_text(path, text):
    atomic_write_bytes(path, text.encode("utf-8"))


def write_output(path, text, what):
    """Write a command's result text to `path` atomically, or to standard output for '-'.

    `what` names the result in the one-line error when the file cannot be written.
    """
    if str(path) == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    from .errors import UserError
    try:
        atomic_write_text(path, text)
    except OSError as e:
        raise UserError(f"cannot write the {what}: {e.strerror or e}", path=path) from None


def output_path_problem(path, folder=False):
    """Why `path` cannot be written as a file (or created as a folder), or None if it can.

    Checked before a command starts its work, so that a mistyped output path costs nothing:
    the nearest existing ancestor must be a writable folder, and the target itself must be a
    file (or, with folder, a folder) or not exist yet.
    """
    path = Path(path)
    if path.exists():
        if folder and not path.is_dir():
            return "exists and is not a folder"
        if not folder and path.is_dir():
            return "is a folder; give a file name"
        if folder:
            return None if os.access(path, os.W_OK | os.X_OK) else "no permission to write in it"
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        return f"{ancestor} is a file, not a folder"
    if not os.access(ancestor, os.W_OK | os.X_OK):
        return f"no permission to write in {ancestor}"
    return None


def check_output_path(path, what, folder=False):
    """UserError naming `path` when the command could not write its `what` there ('-', standard
    output, always can)."""
    if path is None or str(path) == "-":
        return
    problem = output_path_problem(path, folder)
    if problem:
        from .errors import UserError
        raise UserError(f"cannot write the {what}: {problem}", path=path)
