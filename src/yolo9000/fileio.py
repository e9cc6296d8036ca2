"""Writing output files. A regular file is replaced atomically: a temp file in the same folder,
then rename, so a crash mid-write never leaves a half-written file where a good one was.
Anything else named as an output (a device such as /dev/null, a named pipe another program
reads, this process's own standard output) is written through, never replaced; a symlink's
target is replaced, not the link."""
import contextlib
import errno
import glob
import os
import shutil
import stat
import sys
import tempfile
from pathlib import Path


def _temp_prefix(path):
    return f".{path.name}."


TEMP_SUFFIX = ".tmp"


def _standard_stream(status):
    """1 or 2 when `status` is the file behind this process's standard output or error, which
    is then written through its descriptor: its position and whatever the process printed
    before stay as they are."""
    for fd in (1, 2):
        try:
            behind = os.fstat(fd)
        except OSError:
            continue
        if (behind.st_dev, behind.st_ino) == (status.st_dev, status.st_ino):
            return fd
    return None


def replaced_file(path):
    """The regular file that writing `path` replaces atomically (a symlink's target, resolved),
    or None when `path` is written through: it exists and is not a regular file (a device, a
    named pipe), or it is the file behind this process's standard output or error."""
    path = Path(path)
    try:
        status = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return Path(os.path.realpath(path)) if path.is_symlink() else path
    if not stat.S_ISREG(status.st_mode) or _standard_stream(status) is not None:
        return None
    return Path(os.path.realpath(path))


def errno_text(error):
    """'No space left on device (ENOSPC)': the system's words and the errno's name."""
    name = errno.errorcode.get(error.errno)
    text = error.strerror or str(error)
    return f"{text} ({name})" if name else text


@contextlib.contextmanager
def _written_through(path):
    """Yields a temporary path whose content, once the block succeeds, is written into `path`
    as it stands (opened for writing, never created, truncated or renamed over)."""
    fd, tmp = tempfile.mkstemp(prefix=".yolo9000-output.", suffix=TEMP_SUFFIX)
    os.close(fd)
    try:
        yield tmp
        stream = _standard_stream(os.stat(path))
        if stream is not None:
            sys.stdout.flush()
            sys.stderr.flush()
            target = os.dup(stream)
        else:
            target = os.open(path, os.O_WRONLY)
        with open(tmp, "rb") as source, open(target, "wb", closefd=True) as sink:
            try:
                shutil.copyfileobj(source, sink)
                sink.flush()
            except OSError as e:      # a device's own refusal (ENOSPC of /dev/full): name it
                raise OSError(e.errno, e.strerror, str(path)) from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


@contextlib.contextmanager
def atomic_path(path):
    """Yields a temporary path next to `path`; on success it replaces `path` in one rename,
    after the data reached the disk (a power loss then leaves the old file or the new one).
    A `path` that is not a regular file is written through instead (see replaced_file)."""
    target = replaced_file(path)
    if target is None:
        with _written_through(path) as tmp:
            yield tmp
        return
    path = target
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
    except BaseException as error:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(error, OSError) and error.errno and error.filename in (None, tmp):
            # the user named `path`, never saw the hidden temp file
            raise OSError(error.errno, error.strerror, str(path)) from None
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


def _megabytes(n):
    return f"{n / 1e6:.1f} MB"


def require_free_space(path, needed, what):
    """OSError ENOSPC naming `path` when the file system that would hold it has fewer than
    `needed` bytes free. Checked before a large write whose writer fails badly when the disk
    fills halfway (HDF5 prints a traceback per open object and can crash at exit)."""
    folder = Path(path).parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise OSError(errno.ENOSPC, f"{os.strerror(errno.ENOSPC)}: {what} needs about "
                                    f"{_megabytes(needed)}, {_megabytes(free)} free", str(path))


def remove_stale_temps(path):
    """Delete the temp files atomic_path left next to `path` when its process was killed
    mid-write (kill -9 cannot be cleaned up after). Only for a path no other process is writing
    at the moment. Returns the removed paths."""
    path = replaced_file(path)
    if path is None:
        return []
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
    """Write a command's result text to `path` (atomic_path), or to standard output for '-'.

    `what` names the result in the one-line error when the file cannot be written.
    """
    from .errors import UserError
    if str(path) == "-":
        _require_stdout(what)
        try:
            sys.stdout.write(text)
            sys.stdout.flush()
        except OSError as e:      # a reader that went away, a full disk behind a redirect
            raise UserError(f"cannot write the {what} to standard output: "
                            f"{errno_text(e)}") from None
        return
    try:
        atomic_write_text(path, text)
    except OSError as e:
        raise UserError(f"cannot write the {what}: {errno_text(e)}", path=path) from None


def output_path_problem(path, folder=False):
    """Why `path` cannot be written as a file (or created as a folder), or None if it can.

    Checked before a command starts its work, so that a mistyped output path costs nothing:
    the nearest existing ancestor must be a writable folder, and the target itself must be a
    file (or, with folder, a folder) or not exist yet. A device or named pipe (written through,
    not replaced) must itself be writable; a symlink is judged by its target.
    """
    path = Path(path)
    if path.exists():
        if folder and not path.is_dir():
            return "exists and is not a folder"
        if not folder and path.is_dir():
            return "is a folder; give a file name"
        if folder:
            return None if os.access(path, os.W_OK | os.X_OK) else "no permission to write in it"
    if not folder:
        target = replaced_file(path)
        if target is None:
            return None if os.access(path, os.W_OK) else "no permission to write it"
        path = target
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        return f"{ancestor} is a file, not a folder"
    if not os.access(ancestor, os.W_OK | os.X_OK):
        return f"no permission to write in {ancestor}"
    return None


def _require_stdout(what):
    """UserError when this process has no standard output (started with it closed, `>&-`):
    Python then has no sys.stdout at all."""
    if sys.stdout is None:
        from .errors import UserError
        raise UserError(f"cannot write the {what} to standard output: it is closed")


def check_output_path(path, what, folder=False):
    """UserError naming `path` when the command could not write its `what` there ('-':
    standard output, when it is open)."""
    if path is None:
        return
    if str(path) == "-":
        _require_stdout(what)
        return
    problem = output_path_problem(path, folder)
    if problem:
        from .errors import UserError
        raise UserError(f"cannot write the {what}: {problem}", path=path)
