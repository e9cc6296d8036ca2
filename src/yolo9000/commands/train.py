"""`yolo9000 train`: darknet's train_detector with a run folder, progress and exact resume."""
from pathlib import Path

import click

from .options import check_size_option, echo_to_stderr, run_folder_options


def _floats(text):
    return [float(v) for v in text.replace(" ", "").split(",") if v] if text else None


def _ints(text):
    return [int(float(v)) for v in text.replace(" ", "").split(",") if v] if text else None


@click.command(help="Train a YOLOv2 detector or a Darknet-19-style classifier (a cfg ending in "
                    "[softmax]). The cfg's [net] section gives the schedule and augmentation; "
                    "every option below overrides it.")
@click.option("--cfg", help="Network cfg: a .cfg path, a bundled model name (yolov2-voc, "
                            "darknet19, darknet-mini, yolov2-mini, ...) or an .h5 checkpoint "
                            "(its cfg). Its classes are adapted to the dataset. [default: the "
                            "--weights checkpoint's cfg, else yolov2-tiny-voc]")
@click.option("--data", help="Training data. Detector: YOLO folder/list/.data, VOC folder or "
                             "COCO json. Classifier: a folder of class folders, or darknet's "
                             "image list / .data file with a labels file.")
@click.option("--val", help="Validation data (same formats); evaluated every --eval-every iterations.")
@click.option("--classification-data",
              help="YOLO9000 joint training (a word-tree cfg, e.g. yolo9000): classification "
                   "images (class folders named by tree node names or WordNet ids) mixed into "
                   "every mini-batch; they teach classes, not boxes.")
@click.option("--classification-ratio", type=click.FloatRange(0, 1, max_open=True),
              help="The share of each mini-batch taken from --classification-data. [default 0.25]")
@click.option("--val-fraction", type=click.FloatRange(0, 1, max_open=True),
              help="Classifier without --val: hold out this share of --data for validation "
                   "(deterministic for --seed; crops of one photo stay together; 0: none). "
                   "[default 0.1]")
@click.option("--names", type=click.Path(dir_okay=False), help="Class names file overriding the dataset's.")
@click.option("--weights", type=click.Path(dir_okay=False),
              help="Initial weights: darknet .weights (see --cutoff) or an .h5 checkpoint.")
@click.option("--cutoff", type=click.IntRange(min=1),
              help="Load only the first N layers of --weights (a backbone, e.g. darknet19_448.conv.23 "
                   "for yolov2-voc with --cutoff 23). The file must hold exactly those layers' "
                   "weights, or the whole network's.")
@click.option("--anchors", help="Anchors in grid units, 'w1,h1, w2,h2, ...' (e.g. from cluster-anchors).")
@click.option("--size", type=int, callback=check_size_option,
              help="Base input size, a multiple of 32 (default: the cfg's).")
@click.option("--max-batches", type=int, help="Iterations (weight updates) to train for.")
@click.option("--epochs", type=click.FloatRange(min=0, min_open=True),
              help="Instead of --max-batches: passes over the training set.")
@click.option("--batch", type=int, help="Images per iteration.")
@click.option("--subdivisions", type=int, help="Mini-batches per iteration (gradient accumulation).")
@click.option("--lr", "learning_rate", type=float,
              help="Learning rate (also with --resume: continue a diverged run at a lower rate).")
@click.option("--momentum", type=float)
@click.option("--decay", type=float, help="Weight decay (conv weights only).")
@click.option("--burn-in", type=int, help="Iterations of lr·(i/burn_in)^4 warm-up.")
@click.option("--steps", help="Iterations at which the lr is scaled, e.g. '400,500'.")
@click.option("--scales", help="Factors applied at --steps, e.g. '.1,.1'.")
@click.option("--optimizer", type=click.Choice(["sgd", "adam"]), default="sgd", show_default=True,
              help="darknet's SGD with momentum, or Adam (quicker from scratch on a CPU).")
@click.option("--no-multiscale", is_flag=True, help="Keep the input size fixed.")
@click.option("--no-augment", is_flag=True, help="No jitter, flip or colour changes (letterbox only).")
@click.option("--workers", type=int, default=2, show_default=True, help="Data-loading processes (0: in-process).")
@click.option("--parallel", type=click.IntRange(min=1), default=1, show_default=True,
              help="Subdivisions (mini-batches) computed at once, one thread each; the result "
                   "equals the sequential one. Pays on small mini-batches with 2+ cores.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--eval-every", type=int, default=0, help="Evaluate on --val every N iterations (0: at the end).")
@click.option("--save-every", type=int, default=100, show_default=True, help="Write weights/last.h5 every N iterations.")
@click.option("--max-bad-steps", type=click.IntRange(min=0),
              help="Skip up to K batches whose loss or gradient is not finite before stopping "
                   "(default 0: stop at the first, keeping the last good weights).")
@run_folder_options("train")
@click.option("--resume", "resume_dir", type=click.Path(file_okay=False),
              help="Continue the run in this folder exactly where it stopped.")
@click.option("--iterations", type=int, help="Stop after this many more iterations (the run can be resumed).")
def command(cfg, data, val, classification_data, classification_ratio, val_fraction, names, weights, cutoff, anchors, size, max_batches, epochs,
            batch, subdivisions,
            learning_rate, momentum, decay, burn_in, steps, scales, optimizer, no_multiscale, no_augment,
            workers, parallel, seed, eval_every, save_every, max_bad_steps, project, name, exist_ok, resume_dir, iterations):
    from ..errors import UserError, shown_path
    from ..fileio import check_output_path
    from ..runs import claim_run_dir, new_run_dir
    from ..parallel import world
    from ..training.settings import TrainSettings, load_settings
    from ..training.trainer import Trainer

    if resume_dir:
        run = Path(resume_dir)
        args_path = run / "args.json"
        if not args_path.exists():
            raise UserError("not a training run folder (no args.json)", path=run)
        check_output_path(run, "training run", folder=True)
        world().from_main(lambda: claim_run_dir(run))
        settings = load_settings(args_path)
        settings.out = str(run)
        if max_batches:
            settings.max_batches = max_batches
        if epochs:
            raise click.UsageError("--epochs sets the length of a new run; extend a resumed "
                                   "one with --max-batches")
        if learning_rate is not None:
            settings.learning_rate = learning_rate
        if max_bad_steps is not None:
            settings.max_bad_steps = max_bad_steps
        trainer = Trainer(settings, echo=click.echo, warn=echo_to_stderr).setup(resume=True)
        trainer.resume()
    else:
        if not data:
            raise click.UsageError("--data is required (or --resume RUN_DIR)")
        anchor_values = _floats(anchors)
        if anchor_values is not None and (len(anchor_values) % 2 or not anchor_values):
            raise click.BadParameter("give pairs w,h", param_hint="--anchors")
        if max_batches and epochs:
            raise click.UsageError("give --max-batches or --epochs, not both")
        if cfg is None:
            from ..model.checkpoint import is_hdf5
            cfg = weights if weights and is_hdf5(weights) else "yolov2-tiny-voc"
        ranks = world()
        out = ranks.from_main(lambda: new_run_dir(project, name, exist_ok))
        settings = TrainSettings(
            cfg=cfg, data=data, val=val, classification_data=classification_data,
            classification_ratio=classification_ratio, names=names, weights=weights, cutoff=cutoff, out=str(out),
            max_batches=max_batches, epochs=epochs, val_fraction=val_fraction, batch=batch, subdivisions=subdivisions,
            learning_rate=learning_rate, momentum=momentum, decay=decay, burn_in=burn_in,
            policy="steps" if steps else None, steps=_ints(steps), scales=_floats(scales),
            size=size, optimizer=optimizer, multiscale=not no_multiscale, augment=not no_augment, anchors=anchor_values,
            workers=workers, parallel=parallel, seed=seed, eval_every=eval_every, save_every=save_every,
            max_bad_steps=max_bad_steps or 0)
        try:
            trainer = Trainer(settings, echo=click.echo, warn=echo_to_stderr).setup()
        except BaseException:
            # nothing was trained: a bad --data, --weights or cfg leaves no half-made run behind
            # (the folder is this run's own unless --exist-ok reused one)
            if not exist_ok and ranks.is_main:
                import shutil
                shutil.rmtree(out, ignore_errors=True)
            raise
    o = trainer.net.options
    click.echo(f"run folder: {shown_path(trainer.run_dir)}")
    joint = getattr(trainer.task, "classification_set", None)
    click.echo(f"data: {len(trainer.train_set.records)} training images, {len(trainer.names)} classes"
               + (f" (word-tree nodes)" if trainer.net.region is not None and
                  trainer.net.region.tree is not None else "")
               + (f"; {len(trainer.val_set.records)} validation images" if trainer.val_set else "")
               + (f"; {len(joint.records)} classification images, {trainer.task.share:g} of each "
                  "mini-batch" if joint is not None else ""))
    click.echo(f"schedule: {o.max_batches} iterations of {o.batch} images ({o.subdivisions} "
               f"mini-batches), lr {o.learning_rate} (burn-in {o.burn_in}, {o.policy} "
               + (f"power {o.power:g}" if o.policy == "poly" else f"{o.steps} x {o.scales}")
               + f"), momentum {o.momentum}, decay {o.decay}")
    click.echo(f"input {o.width}x{o.height}" + (", multi-scale every 10 iterations" if trainer.multiscale else "")
               + ("" if trainer.augment.enabled else ", no augmentation"))
    result = trainer.train(iterations=iterations)
    click.echo(f"weights: {shown_path(result['last'])}"
               + (f", best: {shown_path(result['best'])}" if "best" in result else ""))
    if "mAP50" in result:
        click.echo(f"validation mAP@0.5 {result['mAP50']:.4f}, mAP@[.5:.95] {result['mAP50_95']:.4f}")
    if "top1" in result:
        click.echo(f"validation top-1 {result['top1']:.4f}, top-5 {result['top5']:.4f}")
    logs = [trainer.run_dir / name for name in ("train_log.csv", "results.csv", "results.png")]
    click.echo("logs: " + ", ".join(shown_path(path) for path in logs if path.is_file()))
