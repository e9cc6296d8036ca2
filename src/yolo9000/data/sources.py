"""The images a command is given: files, folders and glob patterns, expanded to image files.

`detect` and `classify` take the same SOURCE arguments and report the same problems.
"""
import glob
import os
from pathlib import Path

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
            notes.append(f"{origin}: skipped {len(files) - len(images)} non-image file(s)")
        if not images:
            errors.append(f"{origin}: no images found")
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
                errors.append(f"{s}: no files match this pattern")
            else:
                add_many(matches, s)
        else:
            errors.append(f"{s}: no such file or directory")
    return paths, errors, notes
