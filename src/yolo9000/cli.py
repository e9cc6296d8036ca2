"""The `yolo9000` command line.

Each sub-command lives in its own module under `yolo9000.commands` and is imported only when
it is run, so `yolo9000 --help` stays fast and one command's dependencies never slow another.
"""
import errno
import importlib
import io
import os
import sys

import click

from ._version import __version__
from .errors import Interrupted, UserError

# name -> (module under yolo9000.commands, one-line help shown by `yolo9000 --help`)
COMMANDS = {
    "detect": ("detect", "Detect objects in images, videos or a camera; write annotated files and JSON."),
    "classify": ("classify", "Classify images with a classifier; print the top classes."),
    "train": ("train", "Train a detector or a classifier from a darknet cfg on a dataset."),
    "evaluate": ("evaluate", "Compute a detector's mAP or a classifier's top-1/top-5 on a dataset."),
    "cluster-anchors": ("cluster_anchors", "Cluster box sizes into anchors (k-means, d = 1 - IoU)."),
    "make-shapes": ("make_shapes", "Generate a synthetic shapes detection dataset."),
    "demo": ("demo", "Make data, cluster anchors, train, evaluate and detect, end to end."),
    "summary": ("summary", "Print a network's layers, shapes and BFLOPs from a cfg."),
    "convert": ("convert", "Convert between darknet .weights (+ .cfg) and .h5 checkpoints."),
    "export": ("export", "Export a network to ONNX (ONNX Runtime, OpenVINO, ...)."),
}
# what the system says when an output cannot be written: the user's to fix (make room, mount
# read-write, change permissions), not a bug, wherever in a command it happens
WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}
# the commands that share their work over the ranks of `mpiexec -n N` (parallel.py)
MPI_COMMANDS = ("train", "evaluate", "detect")


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        module = importlib.import_module(f"yolo9000.commands.{COMMANDS[name][0]}")
        return module.command

    def format_commands(self, ctx, formatter):
        # Show the short help without importing every command module.
        rows = [(name, COMMANDS[name][1]) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="yolo9000")
@click.option("--threads", type=click.IntRange(min=1), default=None, envvar="YOLO9000_THREADS",
              help="Threads for BLAS and the OpenMP kernels (default: all cores).")
def cli(threads):
    """yolo9000: YOLOv2 / YOLO9000 object detection on the CPU (NumPy + Cython)."""
    from .runs import release_run_dirs
    from .parallel import launched_size
    # the run folders a command claimed are free again when it ends, however it ends
    click.get_current_context().call_on_close(release_run_dirs)
    command = click.get_current_context().invoked_subcommand
    if launched_size() > 1 and command not in MPI_COMMANDS:
        raise UserError(f"{command} does not run on several MPI ranks (only "
                        f"{', '.join(MPI_COMMANDS)} do): run it without mpiexec")
    if threads:
        # before NumPy is imported (commands import it lazily), so BLAS starts with this count
        for var in ("YOLO9000_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            os.environ[var] = str(threads)
        if "numpy" in sys.modules:      # too late for the environment: set the pools directly
            from .kernels.threads import set_threads
            set_threads(threads)


def outcome(error):
    """(exit code, message for stderr) for an exception a command raised, or None for one that
    is not the user's to fix (a bug: its traceback is shown)."""
    if isinstance(error, UserError):
        return 1, f"error: {error}"
    if isinstance(error, Interrupted):
        return error.exit_code, str(error)
    if isinstance(error, click.exceptions.Abort):
        return 130, "aborted"
    if isinstance(error, click.ClickException):
        shown = io.StringIO()
        error.show(file=shown)
        return error.exit_code, shown.getvalue().rstrip("\n")
    if isinstance(error, KeyboardInterrupt):
        return 130, "interrupted"
    if isinstance(error, OSError) and error.errno in WRITE_ERRNOS and error.filename:
        from .errors import shown_path
        from .fileio import errno_text
        return 1, f"error: {shown_path(error.filename)}: {errno_text(error)}"
    return None


def main(argv=None):
    """Entry point: user errors become one line on stderr and exit code 1, never a traceback.
    Under an MPI launcher every rank runs the command (parallel.py)."""
    from .kernels.threads import keep_freed_memory
    from .parallel import run_command
    keep_freed_memory()
    try:
        rv = run_command(lambda: cli.main(args=argv, prog_name="yolo9000", standalone_mode=False),
                         outcome)
    except BaseException as error:
        result = outcome(error)
        if result is None:
            raise
        code, message = result
        click.echo(message, err=True)
        sys.exit(code)
    if isinstance(rv, int) and rv != 0:
        sys.exit(rv)
    sys.exit(0)


if __name__ == "__main__":
    main()
