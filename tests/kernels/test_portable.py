"""YOLO9000_PORTABLE_KERNELS: the switch that turns every instruction-set-specific kernel off,
so that the portable twins run (and are tested) on a machine that has AVX2 and AVX-512."""
import json
import os
import subprocess
import sys

import pytest

from conftest import REPO
from yolo9000.kernels import core

SWITCH = "YOLO9000_PORTABLE_KERNELS"

# the kernels' own tests and the network against darknet's golden numbers (forward, training
# forward) and finite differences (backward): what the portable twins must give as well
PORTABLE_SLICE = [
    "tests/kernels", f"--ignore={os.path.join('tests', 'kernels', 'test_portable.py')}",
    "tests/model/test_network.py::test_mini_forward_matches_darknet_every_layer",
    "tests/model/test_network.py::test_mini_training_mode_forward_matches_darknet",
    "tests/model/test_network.py::test_network_backward_matches_finite_differences",
]

# in the child: which paths the kernels and the layers take, then the slice's tests
CHILD = """
import json, sys
import pytest
from yolo9000.kernels import core, int8, winograd
from yolo9000.layers.convolutional import ConvolutionalLayer
paths = dict(core.cpu_features(), products_kernel=bool(winograd.PRODUCTS_KERNEL),
             rgb_layer_direct=ConvolutionalLayer((3, 8, 8), 4, 3, 1, 1).use_direct,
             int8_kernels=[int8.INT8_KERNEL_NAMES[k] for k in core.int8_kernels()],
             int8_unit=int8.int8_hardware_kernel())
exit_code = pytest.main(["-q", "-p", "no:cacheprovider"] + sys.argv[1:])
print(json.dumps(dict(paths, exit_code=int(exit_code))))
"""


@pytest.mark.skipif(core.cpu_features()["portable_kernels"],
                    reason=f"this whole run has {SWITCH} set: the slice runs in it already")
def test_portable_kernels_pass_the_kernel_and_network_tests():
    env = dict(os.environ, **{SWITCH: "1"})
    run = subprocess.run([sys.executable, "-c", CHILD, *PORTABLE_SLICE], cwd=REPO, env=env,
                         capture_output=True, text=True)
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report == {"sse2": False, "avx2_fma": False, "avx512f": False,
                      "avx512_bf16": False, "amx_bf16": False, "avx512_vnni": False,
                      "amx_int8": False, "amx_refused": False,
                      "portable_kernels": True, "products_kernel": False,
                      "rgb_layer_direct": False, "int8_kernels": ["portable"],
                      "int8_unit": None, "exit_code": 0}, run.stdout[-3000:]


@pytest.mark.parametrize("value,portable", [("0", False), ("", False), ("1", True)])
def test_the_switch_is_read_once_at_import(value, portable):
    """Set to anything but "" or "0" at import, the switch turns every path off; the paths the
    CPU has are the same with the switch off as without it."""
    code = "import json; from yolo9000.kernels import core; print(json.dumps(core.cpu_features()))"
    env = {k: v for k, v in os.environ.items() if k != SWITCH}
    unset = json.loads(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                                      text=True, check=True).stdout)
    env[SWITCH] = value
    features = json.loads(subprocess.run([sys.executable, "-c", code], env=env,
                                         capture_output=True, text=True, check=True).stdout)
    assert features["portable_kernels"] is portable and not unset["portable_kernels"]
    if portable:
        assert not any(features[k] for k in ("sse2", "avx2_fma", "avx512f"))
    else:
        assert features == unset
