"""The model zoo: cfgs, class names, word trees and the demo checkpoint shipped in `bundled/`.

Every lookup of a bundled file goes through here, so a cfg's darknet-relative path such as
`data/9k.tree` resolves the same way in the cfg parser, the network builder and the word tree.
"""
from pathlib import Path

BUNDLED_DIR = Path(__file__).resolve().parent / "bundled"
DEFAULT_CHECKPOINT = BUNDLED_DIR / "shapes.h5"
# Bundled class lists, chosen by class count when neither --names nor the checkpoint has names.
NAMES_BY_CLASS_COUNT = {20: "voc.names", 80: "coco.names", 9418: "9k.names"}


def bundled_file(name):
    """The bundled file with this file name (any folders in `name` are ignored), or None."""
    path = BUNDLED_DIR / Path(str(name)).name
    return path if path.is_file() else None


def find_cfg_file(value, cfg_source=None):
    """A file a cfg names (region `tree=`, `map=`): as given, next to the cfg, or the bundled
    file of that name; None when none exists."""
    candidates = [Path(value)]
    if cfg_source and Path(cfg_source).exists():
        candidates.append(Path(cfg_source).parent / value)
    for path in candidates:
        if path.is_file():
            return path
    return bundled_file(value)


# files a cfg names (tree=, map=) by their value in the cfg, kept inside a checkpoint so that
# it runs anywhere: its cfg's `tree=shapes/my.tree` need not exist where it is loaded
FILE_KEYS = ("tree", "map")


def cfg_file(value, what, cfg_source=None, files=None):
    """The path of the file a cfg option (tree=, map=) names: one carried in `files` (e.g. by a
    checkpoint), else found as find_cfg_file does; a ValueError naming the value when there is
    no such file."""
    if files and value in files:
        return str(carried_file(value, files[value]))
    found = find_cfg_file(value, cfg_source)
    if found is None:
        raise ValueError(f"{what} file '{value}' not found")
    return str(found)


def carried_file(value, text):
    """A file carried as text (in a checkpoint), written once per content to a cache folder so
    that code reading files by path reads it."""
    import hashlib
    import tempfile
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
    path = Path(tempfile.gettempdir()) / "yolo9000-carried" / digest / Path(value).name
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        from ..fileio import atomic_write_text
        atomic_write_text(path, text)
    return path


def referenced_files(config):
    """{value: text} of the non-bundled files a cfg's sections name with tree= or map=."""
    files = {}
    for section in config.sections:
        for key in FILE_KEYS:
            value = section.options.get(key)
            found = find_cfg_file(value, config.source) if value else None
            if found is not None and Path(found).resolve().parent != BUNDLED_DIR:
                files[value] = Path(found).read_text(encoding="utf-8")
    return files


def bundled_models():
    """Names of the network definitions shipped with the package."""
    return sorted(p.stem for p in BUNDLED_DIR.glob("*.cfg"))


def bundled_names_for(class_count):
    """The bundled class-name file for a network with this many classes, or None."""
    name = NAMES_BY_CLASS_COUNT.get(class_count)
    return bundled_file(name) if name else None
