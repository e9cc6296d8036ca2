"""Run folders: where a command that writes several files puts them (ultralytics' layout).

`runs/<command>/exp`, then `exp2`, `exp3`, ...: the folder is claimed with one mkdir, so two runs
started at the same moment never share a folder and an old run's files are never mixed in.
Inside one, a file written for each input is named after the input (`OutputNamer`).

A run folder is one run's: the process using it holds an advisory lock (flock) on a lock file
in it, so `--exist-ok` or `train --resume` on a folder that a live run is still writing is
refused with the live run's pid instead of deleting its checkpoint temp files and rewriting its
args.json. The kernel drops the lock when the process dies, even by kill -9.
"""
import atexit
import contextlib
import fcntl
import os
from pathlib import Path

from .errors import UserError
from .fileio import check_output_path, errno_text

LOCK_FILE = ".run.lock"

# (device, inode) of a claimed folder -> (descriptor holding its lock, the lock file's path)
_held = {}


def new_run_dir(project, name="exp", exist_ok=False):
    """Create, claim (claim_run_dir) and return project/name, or the first free project/name2,
    name3, ...

    With exist_ok, project/name itself is used even when it exists (files in it may be replaced).
    """
    check_run_name(name)
    check_output_path(project, "run folder", folder=True)
    project = Path(project)
    try:
        project.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create the run folder: {e.strerror}", path=project) from None
    if exist_ok:
        folder = project / name
        if folder.exists() and not folder.is_dir():
            raise UserError("exists and is not a folder", path=folder)
        _make_folder(folder, exist_ok=True)
        claim_run_dir(folder)
        return folder
    n = 1
    while True:
        folder = project / (name if n == 1 else f"{name}{n}")
        try:
            _make_folder(folder)
        except FileExistsError:
            n += 1
            continue
        claim_run_dir(folder)
        return folder


def check_run_name(name):
    """UserError unless `name` is one path component: '../x' or '/x' would put the run
    outside --project."""
    if not name or name in (".", "..") or "/" in name or os.sep in name or "\0" in name:
        raise UserError(f"--name {name!r} must be a folder name, one path component (no '/', "
                        "not '.' or '..'): the run goes in --project")


def _make_folder(folder, exist_ok=False):
    """mkdir, a UserError when the system refuses (a /proc or /sys folder, a read-only
    mount); FileExistsError stays for new_run_dir's numbering."""
    try:
        folder.mkdir(exist_ok=exist_ok)
    except FileExistsError:
        raise
    except OSError as e:
        raise UserError(f"cannot create the run folder: {errno_text(e)}", path=folder) from None


def claim_run_dir(folder):
    """Hold `folder` for this process until release_run_dirs() or its exit; a UserError naming
    the pid of the live process that holds it already. Claiming a folder twice (under any
    name) is a no-op."""
    try:
        identity = _identity(os.stat(folder))
    except OSError as e:
        raise UserError(f"cannot lock the run folder: {e.strerror}", path=folder) from None
    if identity in _held:
        return
    lock_path = os.path.join(folder, LOCK_FILE)
    while True:
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as e:
            raise UserError(f"cannot lock the run folder: {e.strerror}", path=folder) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder_pid(fd)
            os.close(fd)
            raise UserError(f"the run folder is in use by a running process (pid {holder}); "
                            "a run folder belongs to one run at a time", path=folder) from None
        # the holder we were refused by may have removed the file (release_run_dirs) between
        # our open and our lock: then the lock is on a file nobody else will ever open
        if _is_file_at(fd, lock_path):
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
    except OSError as e:        # a full disk: the pid is the lock file's only content
        os.close(fd)
        raise UserError(f"cannot lock the run folder: {errno_text(e)}", path=folder) from None
    _held[identity] = (fd, lock_path)


def _identity(status):
    return status.st_dev, status.st_ino


def run_dir_entries(folder):
    """What a run folder holds besides its lock file."""
    return [entry for entry in Path(folder).iterdir() if entry.name != LOCK_FILE]


def _holder_pid(fd):
    text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    return text if text.isdigit() else "unknown"


def _is_file_at(fd, path):
    try:
        return _identity(os.stat(path)) == _identity(os.fstat(fd))
    except FileNotFoundError:
        return False


def release_run_dirs():
    """Let go of every run folder this process claimed (the CLI calls it when a command ends);
    the lock files go too, so a finished run's folder holds only its results."""
    while _held:
        fd, lock_path = _held.popitem()[1]
        # gone already when a run refused at its start removed its folder
        with contextlib.suppress(OSError):
            if _is_file_at(fd, lock_path):
                os.unlink(lock_path)
        os.close(fd)


def _forget_inherited_locks():
    """A forked child (a data-loading worker) closes its copies of the lock descriptors:
    a lock lasts while any copy is open, and a worker outliving a killed run by a moment must
    not keep the run's folder locked. Closing a copy leaves the parent's lock in place."""
    while _held:
        os.close(_held.popitem()[1][0])


os.register_at_fork(after_in_child=_forget_inherited_locks)
atexit.register(release_run_dirs)


class OutputNamer:
    """One output file stem per input file; inputs with the same file name (from different
    folders) get _2, _3, ..."""

    def __init__(self):
        self.used = set()

    def stem(self, path):
        stem, n = Path(path).stem, 1
        while (stem if n == 1 else f"{stem}_{n}") in self.used:
            n += 1
        stem = stem if n == 1 else f"{stem}_{n}"
        self.used.add(stem)
        return stem
