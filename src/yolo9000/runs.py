"""Run folders: where a command that writes several files puts them (ultralytics' layout).

`runs/<command>/exp`, then `exp2`, `exp3`, ...: the folder is claimed with one mkdir, so two runs
started at the same moment never share a folder and an old run's files are never mixed in.
Inside one, a file written for each input is named after the input (`OutputNamer`).
"""
from pathlib import Path

from .errors import UserError
from .fileio import check_output_path


def new_run_dir(project, name="exp", exist_ok=False):
    """Create and return project/name, or the first free project/name2, name3, ...

    With exist_ok, project/name itself is used even when it exists (files in it may be replaced).
    """
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
        folder.mkdir(exist_ok=True)
        return folder
    n = 1
    while True:
        folder = project / (name if n == 1 else f"{name}{n}")
        try:
            folder.mkdir()
            return folder
        except FileExistsError:
            n += 1


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
