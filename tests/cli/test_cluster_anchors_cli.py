"""`yolo9000 cluster-anchors` end to end through the real entry point (yolo9000.cli.main)."""
import json
import re
import sys

import numpy as np
import pytest
from PIL import Image

from yolo9000.cli import main
from conftest import VOC_SAMPLE



def run(capsys, *args):
    """Run the CLI like the console script does -> (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as exit_info:
        main(["cluster-anchors", *map(str, args)])
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def yolo_dataset(root, n_images=12, seed=0, label_text=None):
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for i in range(n_images):
        Image.new("RGB", (64, 48)).save(root / "images" / f"{i}.jpg")
        rows = [f"{rng.integers(3)} 0.5 0.5 {rng.uniform(0.05, 0.9):.4f} {rng.uniform(0.05, 0.9):.4f}"
                for _ in range(5)]
        text = label_text if (label_text is not None and i == 0) else "\n".join(rows) + "\n"
        (root / "labels" / f"{i}.txt").write_text(text)
    return root


def assert_one_line_error(code, err, needle):
    assert code == 1
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and needle in lines[0], err


def test_table_and_cfg_line(tmp_path, capsys):
    code, out, err = run(capsys, yolo_dataset(tmp_path / "d"), "-k", 3, "--seed", 1)
    assert code == 0, err
    line = next(l for l in out.splitlines() if l.startswith("anchors = "))
    assert re.fullmatch(r"anchors = \d+\.\d\d,\d+\.\d\d(,  \d+\.\d\d,\d+\.\d\d){2}", line), line
    values = [float(v) for v in line[len("anchors = "):].replace(" ", "").split(",")]
    assert len(values) == 6
    assert re.search(r"average IoU: \d+\.\d\d%", out)
    areas = [values[i] * values[i + 1] for i in range(0, 6, 2)]
    assert areas == sorted(areas)


def test_json_and_out_file(tmp_path, capsys):
    data = yolo_dataset(tmp_path / "d")
    out_file = tmp_path / "res" / "anchors.json"
    code, out, err = run(capsys, data, "-k", 4, "--seed", 0, "--save-json", out_file,
                         "--size", 608)
    assert code == 0, err
    assert f"JSON written to {out_file}" in out         # the table still prints
    printed = json.loads(out_file.read_text())
    assert printed["k"] == 4 and printed["boxes"] == 60 and printed["size"] == 608
    assert sum(printed["populations"]) == 60
    # grid units = pixels / 32
    np.testing.assert_allclose(np.array(printed["anchors"]) * 32,
                               np.array(printed["anchors_pixels"]), atol=0.05)
    assert list(out_file.parent.iterdir()) == [out_file]        # no temp file left behind
    code2, out2, _ = run(capsys, data, "-k", 4, "--seed", 0, "--save-json", "-", "--size", 608)
    assert json.loads(out2) == printed                          # --seed reproduces


def test_default_seed_is_0_printed_and_reproducible(tmp_path, capsys):
    """Like train and make-shapes: without --seed the result is that of --seed 0, every time,
    and the seed used is printed and stored."""
    data = yolo_dataset(tmp_path / "d", n_images=20, seed=5)
    runs = [run(capsys, data, "-k", 5, "--restarts", 1, "--save-json", "-") for _ in range(3)]
    assert [code for code, _, _ in runs] == [0, 0, 0]
    first = json.loads(runs[0][1])
    assert first["seed"] == 0
    assert all(json.loads(out) == first for _, out, _ in runs[1:])
    code, out, _ = run(capsys, data, "-k", 5, "--restarts", 1, "--save-json", "-", "--seed", 0)
    assert json.loads(out) == first
    code, out, err = run(capsys, data, "-k", 5, "--restarts", 1)
    assert code == 0 and ", seed 0, " in out, out


def test_old_option_spellings_still_work_with_a_warning(tmp_path, capsys):
    data = yolo_dataset(tmp_path / "d")
    out_file = tmp_path / "anchors.json"
    code, out, err = run(capsys, data, "-k", 2, "--seed", 0, "--format", "yolo", "--out", out_file)
    assert code == 0, err
    assert "warning: --format is deprecated" in err and "use --data-format" in err
    assert "warning: --out is deprecated" in err
    assert json.loads(out_file.read_text())["k"] == 2
    code, out, err = run(capsys, data, "-k", 2, "--seed", 0, "--json")
    assert code == 0 and json.loads(out)["k"] == 2 and "--json is deprecated" in err


def test_compare_and_euclidean(tmp_path, capsys):
    data = yolo_dataset(tmp_path / "d")
    code, out, err = run(capsys, data, "-k", 2, "--seed", 0, "--metric", "euclidean", "--save-json", "-",
                         "--compare", "1.0,1.0, 5.0,5.0")
    assert code == 0, err
    res = json.loads(out)
    assert res["metric"] == "euclidean" and res["compare"]["k"] == 2
    assert 0 < res["compare"]["avg_iou"] < 1
    code, _, err = run(capsys, data, "--compare", "1.0,2.0,3.0")
    assert code == 2 and "Traceback" not in err


def test_sweep_plot(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    plot = tmp_path / "fig.png"
    code, out, err = run(capsys, yolo_dataset(tmp_path / "d"), "--sweep", "1-4", "--plot", plot,
                         "--seed", 0, "--restarts", 3)
    assert code == 0, err
    assert plot.stat().st_size > 1000
    with Image.open(plot) as im:
        assert im.format == "PNG"
    rows = [l.split() for l in out.splitlines() if re.match(r"^\s*\d+\s+[\d.]+%\s+[\d.]+%$", l)]
    assert [int(r[0]) for r in rows] == [1, 2, 3, 4]


def test_plot_without_matplotlib(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)      # import fails as if absent
    code, _, err = run(capsys, yolo_dataset(tmp_path / "d"), "--sweep", "1-3", "--plot",
                       tmp_path / "x.png")
    assert_one_line_error(code, err, "matplotlib")


# -- bad input (issue point 7) ----------------------------------------------------------------

def test_missing_path(tmp_path, capsys):
    code, _, err = run(capsys, tmp_path / "nowhere")
    assert_one_line_error(code, err, str(tmp_path / "nowhere"))


def test_no_boxes_found(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code, _, err = run(capsys, tmp_path / "empty")
    assert_one_line_error(code, err, str(tmp_path / "empty"))
    assert "voc" in err and "coco" in err and "yolo" in err


def test_malformed_line_warned_and_skipped_then_strict(tmp_path, capsys):
    data = yolo_dataset(tmp_path / "d", label_text="0 0.5 0.5 0.2 0.3\n1 0.5 zzz 0.2 0.2\n")
    label = data / "labels" / "0.txt"
    code, out, err = run(capsys, data, "-k", 2, "--seed", 0)
    assert code == 0
    assert f"warning: {label}:2:" in err
    assert "skipped 1 malformed" in err
    code, _, err = run(capsys, data, "-k", 2, "--strict")
    assert_one_line_error(code, err, f"{label}:2:")


def test_zero_size_boxes_dropped_and_counted(tmp_path, capsys):
    data = yolo_dataset(tmp_path / "d", label_text="0 0.5 0.5 0.0 0.3\n0 0.5 0.5 0.4 0.3\n")
    code, out, err = run(capsys, data, "-k", 2, "--seed", 0, "--save-json", "-")
    assert code == 0
    assert "dropped 1 box" in err and json.loads(out)["dropped_boxes"] == 1


def test_malformed_xml(tmp_path, capsys):
    root = tmp_path / "voc"
    (root / "Annotations").mkdir(parents=True)
    (root / "Annotations" / "1.xml").write_text("<annotation><object>")
    code, _, err = run(capsys, root)
    assert_one_line_error(code, err, str(root / "Annotations" / "1.xml"))


def test_malformed_json(tmp_path, capsys):
    bad = tmp_path / "instances_train.json"
    bad.write_text("{not json")
    code, _, err = run(capsys, bad)
    assert_one_line_error(code, err, str(bad))


def test_usage_errors(tmp_path, capsys):
    data = yolo_dataset(tmp_path / "d")
    for args in (["--size", 400], ["-k", 0], ["--sweep", "x-y"], ["--metric", "l1"]):
        code, _, err = run(capsys, data, *args)
        assert code == 2 and "Traceback" not in err, args


def test_subprocess_entry_point(tmp_path):
    import subprocess

    proc = subprocess.run([sys.executable, "-m", "yolo9000", "cluster-anchors",
                           str(tmp_path / "missing")], capture_output=True, text=True)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert str(tmp_path / "missing") in proc.stderr


# -- the real VOC sample (acceptance 1) -------------------------------------------------------

@pytest.mark.skipif(not VOC_SAMPLE.is_dir(), reason="../shared/voc2007-sample not present")
def test_voc_sample_k5_and_sweep(capsys):
    code, out, err = run(capsys, VOC_SAMPLE, "-k", 5, "--seed", 0)
    assert code == 0, err
    line = next(l for l in out.splitlines() if l.startswith("anchors = "))
    assert len(line[len("anchors = "):].split(",")) == 10
    assert "average IoU:" in out
    code, out, err = run(capsys, VOC_SAMPLE, "--sweep", "1-10", "--seed", 0, "--save-json", "-")
    assert code == 0, err
    sweep = json.loads(out)["sweep"]
    assert [r["k"] for r in sweep] == list(range(1, 11))
    for row in sweep:
        assert row["avg_iou_iou"] >= row["avg_iou_euclidean"] - 1e-6, row
    ious = [r["avg_iou_iou"] for r in sweep]
    assert all(b >= a - 0.002 for a, b in zip(ious, ious[1:])), ious
    assert ious[-1] > ious[0]
