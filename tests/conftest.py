import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))   # gradcheck.py, torch_darknet.py

SHARED = TESTS.parents[1] / "shared"
if not SHARED.exists():
    SHARED = TESTS.parent.parent / "shared"


@pytest.fixture(scope="session")
def shared():
    if not SHARED.exists():
        pytest.skip("../shared reference material not present")
    return SHARED
