"""Class-name lists: darknet's names files (line k names class k), the names a command or a
dataset reader is given (a list or such a file), and the names of a dataset that has none.

Models (their .names assets, `convert --names`), detection and the dataset readers all read
names files here, so a names file means the same everywhere.
"""
import os
from pathlib import Path

from .errors import UserError


def read_names(path) -> list[str]:
    """Class names from a names file: one per line (line k names class k, as in darknet);
    trailing blank lines are ignored."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError("names file not found", path=path) from None
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read names file: {e}", path=path) from None
    names = [line.strip() for line in text.splitlines()]
    while names and not names[-1]:
        names.pop()
    if not names:
        raise UserError("names file is empty", path=path)
    return names


def names_argument(names):
    """The class names a ``names=`` argument gives: a list of names, or the path of a names
    file; None when not given."""
    if names is None:
        return None
    if isinstance(names, (str, os.PathLike)):
        return read_names(names)
    names = [str(n) for n in names]
    if not names:
        raise UserError("the list of class names is empty")
    return names


def default_names(n_classes):
    """The names a dataset without a names file gets: class0, class1, ..."""
    return [f"class{i}" for i in range(n_classes)]
