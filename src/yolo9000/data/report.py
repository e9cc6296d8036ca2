"""What a dataset's reader skipped, dropped or changed, told the same way by every command.

    for line in dataset_report(ds, "train"):
        click.echo(line, err=True)

The first ``shown`` problems are listed with their ``file:line``, the rest counted, then one
summary line of the counters, so a dataset's problems never pass unnoticed in any command.
"""
from __future__ import annotations

SHOWN_WARNINGS = 10


def _plural(n, word, plural=None):
    return f"{n} {word if n == 1 else (plural or word + 's')}"


def dataset_report(ds, label=None, shown=SHOWN_WARNINGS) -> list[str]:
    """Lines (warnings first, then a summary) describing what loading ``ds`` left out.

    label: which of a command's datasets this is (e.g. 'train', 'val'), named in the summary.
    Returns [] for a dataset read without any problem."""
    lines = [f"warning: {w}" for w in ds.warnings[:shown]]
    if len(ds.warnings) > shown:
        lines.append(f"warning: ... and {len(ds.warnings) - shown} more")
    counts = []
    if ds.skipped_lines:
        counts.append(f"skipped {_plural(ds.skipped_lines, 'malformed label line/entry', 'malformed label line(s)/entries')}")
    if ds.skipped_images:
        counts.append(f"skipped {_plural(ds.skipped_images, 'missing or unreadable image')}")
    if ds.dropped_boxes:
        counts.append(f"dropped {_plural(ds.dropped_boxes, 'box', 'box(es)')} of zero or negative "
                      "size or wholly outside the image")
    if ds.clipped_boxes:
        counts.append(f"clipped {_plural(ds.clipped_boxes, 'box', 'box(es)')} partly outside the image")
    if counts or lines:
        what = f"{label} data" if label else "data"
        lines.append(f"{what} {ds.root}: " + ("; ".join(counts) if counts else
                                               f"{_plural(len(ds.warnings), 'warning')}"))
    return lines
