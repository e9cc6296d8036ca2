"""`yolo9000 detect`'s run: a detector over images, each image's annotated copy (and label
file) in a run folder, the detections of all of them as JSON.

The images go through `Detector.stream` (decoded ahead in background threads while the network
runs). A bad image is reported and skipped. Under MPI each rank runs its share of the images;
rank 0 reports them in input order and writes the JSON. The layouts of the JSON and label files
are inference/export.py's.

A run cut short - SIGINT / SIGTERM, or an output it cannot write (a full disk) - still writes
the --save-json file with the images finished, ending in the record that marks it
incomplete (export.mark_incomplete), says so in one line and exits 130 / 143 (a signal) or
1 (a write error).
"""
import time

from ..kernels.precisions import FP32


def detect_images(paths, *, model, cfg, weights, names, size, thresh, hier_thresh, tree_walk,
                  nms_thresh, project, name, exist_ok, json_path, json_format, save_txt,
                  save_conf, batch, say, fail, warn, precision=FP32):
    """Detect objects in the image files `paths`; say(line) reports each image and the run,
    fail(message) each image that failed, warn(line) notes. Returns how many images failed,
    or None on a rank other than 0 (which reports nothing)."""
    from ..data.images import save_image, written_suffix
    from ..errors import Interrupted, UserError, shown_path, stop_requests
    from ..fileio import atomic_write_text, errno_text, write_output
    from ..parallel import world
    from ..progress import images_rate_line
    from ..runs import OutputNamer, new_run_dir
    from .detector import Detector
    from .draw import draw_detections
    from .export import (coco_results, image_entry, json_list_text, mark_incomplete, summarise,
                         yolo_label_text)

    detector = Detector(model=model, cfg=cfg, weights=weights, names=names, size=size,
                        thresh=thresh, nms=nms_thresh, hier_thresh=hier_thresh,
                        tree_walk=tree_walk, precision=precision)
    if detector.notice:
        warn(f"note: {detector.notice}")

    ranks = world()
    out_dir = ranks.from_main(lambda: new_run_dir(project, name, exist_ok))
    labels_dir = out_dir / "labels"
    if save_txt and ranks.is_main:
        labels_dir.mkdir(exist_ok=True)
    namer = OutputNamer()
    # named before any image runs: the same names however the images are shared over ranks
    outputs = [(namer.stem(path), written_suffix(path)) for path in paths]
    mine = ranks.shard(len(paths))
    # under MPI the ranks' reports are printed by rank 0, in input order, once all are done
    live = ranks.size == 1
    stopped_by = []     # the first output this rank could not write (a UserError)

    def detect_mine(mine_paths):
        reports = {}     # position among mine_paths -> (error or None, stdout line, entries)
        # result.index (in `paths`), the image_id of the COCO layout: failed images keep
        # their numbers
        for result in detector.stream(mine_paths, batch_size=batch, skip_errors=True):
            if stop_signals:
                break
            index = mine[result.index]
            if result.error is not None:
                report = (result.error, None, [])
            else:
                path, image, dets = result.source, result.image, result.detections
                stem, suffix = outputs[index]
                scale = (image.rgb.shape[1] / image.width, image.rgb.shape[0] / image.height)
                try:
                    save_image(draw_detections(image.rgb, dets, scale=scale),
                               out_dir / (stem + suffix), "annotated image")
                    if save_txt:
                        label_path = labels_dir / f"{stem}.txt"
                        try:
                            atomic_write_text(label_path, yolo_label_text(
                                dets, image.width, image.height, save_conf))
                        except OSError as e:
                            raise UserError(f"cannot write the label file: {errno_text(e)}",
                                            path=label_path) from None
                except UserError as e:
                    stopped_by.append(e)
                    break
                if json_format == "coco":
                    entries = coco_results(index, dets)
                else:
                    entries = [image_entry(path, image.width, image.height, dets, detector.names)]
                report = (None, f"{shown_path(path)} {image.width}x{image.height}: {summarise(dets)}, "
                                f"{result.seconds * 1000:.0f} ms", entries)
            if live:
                show(report)
            reports[result.index] = report
        return reports

    def show(report):
        error, line, _ = report
        if error is not None:
            fail(error)
        else:
            say(line)

    start = time.perf_counter()
    with stop_requests() as stop_signals:
        reports = ranks.map_sharded(paths, detect_mine)
    if not ranks.is_main:
        return None
    entries = []        # of the --save-json file
    for report in reports.values():
        if not live:
            show(report)
        entries.extend(report[2])
    done = sum(error is None for error, _, _ in reports.values())

    elapsed = time.perf_counter() - start
    cut_short = bool(stop_signals or stopped_by)
    if json_path is not None:
        text = json_list_text(entries)
        if cut_short:
            text = mark_incomplete(text, len(reports), len(paths))
        write_output(json_path, text, "detections")
    if cut_short:
        kept = (f"; {shown_path(json_path)} holds the detections of the {len(reports)} images finished, "
                "marked incomplete" if json_path not in (None, "-") else "")
        if stop_signals:
            raise Interrupted(f"interrupted after {len(reports)} of {len(paths)} images{kept}",
                              stop_signals[0])
        raise UserError(f"{stopped_by[0]}; stopped after {len(reports)} of {len(paths)} "
                        f"images{kept}")
    say(images_rate_line(done, elapsed))
    say(f"annotated images: {shown_path(out_dir)}")
    if save_txt:
        say(f"labels: {shown_path(labels_dir)}")
    if json_path is not None and json_path != "-":
        say(f"json: {shown_path(json_path)}")
    return len(reports) - done
