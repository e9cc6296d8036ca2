"""darknet's own files, which its detector and classifier datasets share: ``.data`` files
(``key = value`` lines: ``train =``, ``valid =``, ``names =`` ...), image lists (one path per
line) and the relative paths in them."""
from __future__ import annotations

import os
from pathlib import Path

from ...errors import UserError
from ..images import is_image_name


def resolve_entry(entry: str, bases):
    p = Path(entry).expanduser()
    if p.is_absolute():
        return p
    for base in bases:
        if (base / p).exists():
            return base / p
    return bases[0] / p


def read_data_file(data_path: Path):
    """key=value pairs of a darknet .data file."""
    try:
        text = data_path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read .data file: {e}", path=data_path) from None
    values = {}
    for n, line in enumerate(text.splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if "=" not in line:
            raise UserError("expected 'key = value'", path=data_path, line=n)
        key, value = line.split("=", 1)
        values[key.strip()] = value.strip()
    return values


def data_split_key(split) -> str:
    """The key of a darknet ``.data`` file that names the list of ``split`` (default train;
    'val' and 'validation' mean darknet's ``valid``)."""
    key = split or "train"
    return {"val": "valid", "validation": "valid"}.get(key, key)


def data_file_path(data_path: Path, values, key, what) -> Path:
    """The path a ``.data`` file's ``key =`` entry names, resolved against the file's own
    folder first (then the working folder and the folder above, darknet's usual root)."""
    resolved = resolve_entry(values[key], [data_path.parent, Path.cwd(), data_path.parent.parent])
    if not resolved.exists():
        raise UserError(f"{what} {values[key]!r} does not exist", path=data_path)
    return resolved


def evaluation_list_key(data_path) -> str:
    """The list of a darknet ``.data`` file that evaluation reads when no split is given:
    ``valid``, as darknet's validator does, or ``train`` when the file has no ``valid =``."""
    return "valid" if "valid" in read_data_file(Path(data_path)) else "train"


def read_list_entries(list_path: Path) -> list[str]:
    """The image paths of a list file as written (one per line, blank lines skipped)."""
    try:
        text = list_path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read image list: {e}", path=list_path) from None
    return [line.strip() for line in text.splitlines() if line.strip()]


def read_list_file(list_path: Path, bases):
    return [resolve_entry(entry, bases) for entry in read_list_entries(list_path)]


def scan_images(folder: Path):
    """The images under a folder, in an order that is the same on every file system."""
    found = []
    for dirpath, dirnames, files in os.walk(folder):
        # labels/ holds the label files, hidden folders only tools' litter; sorted, because
        # os.walk's order is the file system's and seeded shuffles start from this list
        dirnames[:] = sorted(d for d in dirnames if d != "labels" and not d.startswith("."))
        found += [Path(dirpath) / f for f in sorted(files) if is_image_name(f)]
    return found
