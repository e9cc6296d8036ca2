"""scripts/bench.py --precision int8 on the golden mini network: an int8 copy calibrated on
random inputs (said in the rows), its paths in the forward rows and the --profile table.
No timing is judged."""
import json
import subprocess
import sys

import pytest
from conftest import GOLDEN, REPO

from yolo9000.kernels import int8

SCRIPT = REPO / "scripts" / "bench.py"
UNIT = int8.int8_hardware_kernel()


@pytest.mark.skipif(UNIT is None, reason="this CPU has neither AMX-INT8 nor VNNI")
def test_forward_and_profile_rows_in_int8(tmp_path):
    out = tmp_path / "out.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "forward", "--profile", "--cfg",
                           str(GOLDEN / "mini.cfg"), "--precision", "int8", "--no-torch",
                           "--quick", "--threads", "1", "--json", str(out)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())
    rows = {r["what"]: r for r in data["results"]}
    assert list(rows) == ["forward mini 64 b1", "forward mini 64 b2", "forward mini 64 b1 int8",
                          "forward mini 64 b2 int8"]
    note = f"int8 on {UNIT} (calibrated on 4 random inputs)"
    int8_row = rows["forward mini 64 b1 int8"]
    assert int8_row["precision"] == note
    # 8 convolutions: the first and last kept fp32, the 6 between int8
    assert sum(n for path, n in int8_row["paths"].items() if path.startswith("int8")) == 6
    assert sum(int8_row["paths"].values()) == 8
    assert f"forward mini 64 b1 int8: {note}; convolutions: " in proc.stdout
    profile = [p for p in data["profile"] if note in p["title"]]
    assert len(profile) == 1
    paths = [r["path"] for r in profile[0]["layers"] if r["type"] == "conv"]
    assert [p.startswith(f"int8 {UNIT}") for p in paths] == [False] + [True] * 6 + [False]
