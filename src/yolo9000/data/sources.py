"""The images a command is given: files, folders and glob patterns, expanded to image files.

`detect` and `classify` take the same SOURCE arguments and report the same problems.
"""
import errno
import glob
import os
from pathlib import Path

from ..errors import shown_path
from .images import is_image_name

GLOB_CHARS = set("*?[")


def expand_sources(sources):
    """Files, directories (their images, not recursive) and glob patterns -> (paths, errors, notes).

    Explicitly named files are always tried (whatever their suffix); inside directories and
    glob matches only files with an image suffix are taken, others are counted in a note.
    """
    paths, errors, notes, seen = [], [], [], set()

    def add(p):
        key = os.path.realpath(p)
        if key not in seen:
            seen.add(key)
            paths.append(str(p))

    def add_many(candidates, origin):
        files = [c for c in candidates if os.path.isfile(c)]
        images = [c for c in files if is_image_name(c)]
        if len(files) > len(images):
            notes.append(f"{shown_path(origin)}: skipped {len(files) - len(images)} non-image file(s)")
        loops = {}        # a loop's links -> the candidates that lead into it
        for c in candidates:
            key = _loop_key(c)
            if key is not None:
                loops.setdefault(key, []).append(c)
        for entries in loops.values():
            notes.append(f"{shown_path(origin)}: skipped {', '.join(map(shown_path, entries))}: "
                         "a symbolic link loop")
        if not images:
            errors.append(f"{shown_path(origin)}: no images found")
        for c in images:
            add(c)

    for s in sources:
        if os.path.isdir(s):
            add_many(sorted(str(p) for p in Path(s).iterdir()), s)
        elif os.path.exists(s):
            add(s)
        elif GLOB_CHARS & set(s):
            matches = sorted(glob.glob(s, recursive=True))
            if not matches:
                errors.append(f"{shown_path(s)}: no files match this pattern")
            else:
                add_many(matches, s)
        else:
            errors.append(f"{shown_path(s)}: no such file or directory")
    return paths, errors, notes


def _loop_key(path):
    """None unless resolving `path` loops (ELOOP); then the set of the links that repeat (one
    key for every name leading into the same loop), or `path` itself for a loop the chain of
    its final links does not show (a folder link inside its own path)."""
    try:
        os.stat(path)
        return None
    except OSError as e:
        if e.errno != errno.ELOOP:
            return None
    chain, current = [], os.path.abspath(path)
    while os.path.islink(current):
        if current in chain:
            return frozenset(chain[chain.index(current):])
        chain.append(current)
        current = os.path.normpath(os.path.join(os.path.dirname(current), os.readlink(current)))
    return path
