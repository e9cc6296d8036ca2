"""Options shared by several commands, so that each option name has one meaning everywhere.

| option | meaning |
| --- | --- |
| --project DIR, --name NAME, --exist-ok | the run folder (DIR/NAME, NAME2, ...) of a command that writes several files |
| --save-json FILE | write the command's results as JSON to FILE ('-' = standard output) |
| --json-format | the layout of the detections --save-json writes (yolo9000, coco; inference/export.py) |
| --data-format | the format of a dataset read (yolo, voc, coco) |
| --train-images, --val-images | how many images to generate |
| --precision | inference arithmetic: fp32, bf16, int8, auto |

Old spellings keep working for one release through `deprecated_option`, with a warning.
"""
import functools

import click

from ..kernels.precisions import FP32, PRECISION_CHOICES

REMOVED_IN = "0.3"


def run_folder_options(command):
    """--project/--name/--exist-ok for a command whose results go to runs/<command>/<name>."""
    def decorate(f):
        f = click.option("--exist-ok", is_flag=True,
                         help="Write into PROJECT/NAME even if it exists, instead of NAME2, NAME3, ...")(f)
        f = click.option("--name", default="exp", show_default=True,
                         help="Run folder name inside --project.")(f)
        f = click.option("--project", default=f"runs/{command}", show_default=True,
                         help="Folder of run folders.")(f)
        return f
    return decorate


JSON_FORMATS = ("yolo9000", "coco")


def json_format_option(default, coco_ids):
    """--json-format for a command whose --save-json writes detections; coco_ids says how the
    COCO layout numbers images and categories for this command."""
    return click.option(
        "--json-format", type=click.Choice(JSON_FORMATS), default=default, show_default=True,
        help="Layout of --save-json: yolo9000 = one object per image (path, size, detections "
             "with pixel corner boxes); coco = COCO results [{image_id, category_id, bbox "
             f"[x, y, w, h] in pixels, score}}] as pycocotools reads them, {coco_ids}.")


def deprecated_option(old, replacement, translate, **option_kwargs):
    """A hidden option `old` that still works, says it is deprecated, and sets other parameters.

    translate(value) -> {parameter: value} for the command function (e.g. --out DIR becomes
    project, name and exist_ok). The old option wins over the new ones' defaults.
    """
    dest = "deprecated_" + old.lstrip("-").replace("-", "_")

    def decorate(f):
        @functools.wraps(f)
        def wrapper(*args, **kwargs):
            value = kwargs.pop(dest)
            if value is not None and value is not False and value != ():
                click.echo(f"warning: {old} is deprecated and will be removed in {REMOVED_IN}; "
                           f"use {replacement}", err=True)
                kwargs.update(translate(value))
            return f(*args, **kwargs)
        return click.option(old, dest, hidden=True, **option_kwargs)(wrapper)
    return decorate


def check_size_option(ctx, param, value):
    """click callback of a --size option: a network input side (a positive multiple of 32)."""
    if value is not None:
        from ..model.cfg import input_size_problem   # NumPy loads only after --threads is set
        problem = input_size_problem(value)
        if problem:
            raise click.BadParameter(problem, ctx=ctx, param=param)
    return value


def out_folder_as_run_folder(value):
    """The old `--out DIR` (a folder for results): that folder itself, as the run folder."""
    from pathlib import Path
    path = Path(value)
    return {"project": str(path.parent), "name": path.name, "exist_ok": True}


def echo_to_stderr(message):
    click.echo(message, err=True)


def echo_dataset_report(dataset, label=None):
    """Every command that loads a dataset tells its problems this way (data/report.py)."""
    from ..data.report import dataset_report
    for line in dataset_report(dataset, label):
        echo_to_stderr(line)


PRECISION_HELP = ("Inference arithmetic: fp32; bf16 (weights and activations rounded to "
                  "bfloat16, sums in fp32: AMX or AVX512-BF16, an error on a CPU without "
                  "either); int8 (an int8 checkpoint from `convert --quantize int8`: AMX-INT8 "
                  "or AVX512-VNNI, an error without either); auto (int8 for an int8 "
                  "checkpoint, else bf16, where the CPU has it, else fp32; says which). An int8 "
                  "checkpoint run in fp32 or bf16 runs its weights dequantized, and says so.")


def precision_option(command=None, *, default=FP32, also=""):
    """--precision: the arithmetic of inference (kernels/lowp.py). As @precision_option, or
    @precision_option(default=None, also="...") for a command that does something more when
    the option is given (`also` ends its help)."""
    def decorate(f):
        return click.option("--precision", type=click.Choice(PRECISION_CHOICES), default=default,
                            show_default=default is not None,
                            help=PRECISION_HELP + (" " + also if also else ""))(f)
    return decorate(command) if command is not None else decorate


def tree_options(command):
    """--hier-thresh and --tree-walk: how a word-tree (YOLO9000) model names a box."""
    command = click.option(
        "--tree-walk", type=click.Choice(["paper", "darknet"]), default="paper", show_default=True,
        help="Word-tree models: descend the tree by conditional probabilities (the paper) or "
             "as darknet does (absolute probabilities compounded; gives darknet's labels with "
             "the published yolo9000.weights).")(command)
    return click.option(
        "--hier-thresh", type=click.FloatRange(0, 1), default=0.5, show_default=True,
        help="Word-tree models: descend to a child only while the path probability stays "
             "above this.")(command)
