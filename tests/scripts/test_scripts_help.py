"""Every script in scripts/ starts and explains itself (`--help`): an import or syntax error in a
script that only long runs use shows up here, not an hour into a run."""
import subprocess
import sys

import pytest

from conftest import REPO

SCRIPTS = sorted((REPO / "scripts").glob("*.py"))


def test_the_scripts_are_found():
    names = {p.name for p in SCRIPTS}
    assert {"bench.py", "classifier_voc_crops.py", "yolo9000_mixed_sample.py", "scaling.py"} <= names


@pytest.mark.parametrize("script", SCRIPTS, ids=[p.name for p in SCRIPTS])
def test_script_help(script, tmp_path):
    r = subprocess.run([sys.executable, str(script), "--help"], cwd=tmp_path, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "usage:" in r.stdout
