"""Which precision and kernel run (kernels/lowp.resolve_precision) with int8 in the mix: the
int8 unit (AMX-INT8 before VNNI), auto's choice for int8 and fp32 weights, one line without a
unit (YOLO9000_PORTABLE_KERNELS stands in for a CPU without one)."""
import json
import os
import subprocess
import sys

import pytest

from yolo9000.kernels import core, int8, lowp


def expected_int8_unit():
    """The unit the CPU check says this machine has, read from the features directly."""
    features = core.cpu_features()
    if features["portable_kernels"]:
        return None
    if features["amx_int8"] and not features["amx_refused"]:
        return "amx"
    return "vnni" if features["avx512_vnni"] else None


def test_int8_runs_on_the_fastest_unit():
    unit = expected_int8_unit()
    if unit is None:
        pytest.skip("this CPU (or YOLO9000_PORTABLE_KERNELS) has neither AMX-INT8 nor VNNI")
    assert lowp.resolve_precision("int8", quantized=True) == ("int8", unit, f"int8 on {unit}")
    assert lowp.resolve_precision("auto", quantized=True) == ("int8", unit,
                                                              f"auto: int8 on {unit}")


def test_auto_on_fp32_weights_never_picks_int8():
    resolved, _, note = lowp.resolve_precision("auto", quantized=False)
    assert resolved in ("bf16", "fp32") and "int8" not in note


def test_the_portable_int8_kernel_runs_anywhere_and_units_only_where_present():
    assert lowp.resolve_precision("int8", "portable", quantized=True) == (
        "int8", "portable", "int8 on portable")
    if expected_int8_unit() != "amx":
        with pytest.raises(lowp.PrecisionUnavailable, match="the int8 kernel 'amx' cannot run"):
            lowp.resolve_precision("int8", "amx", quantized=True)
    with pytest.raises(lowp.UserError, match="unknown int8 kernel 'avx512_bf16'"):
        lowp.resolve_precision("int8", "avx512_bf16", quantized=True)


def test_the_names_the_cli_offers():
    from yolo9000.kernels.precisions import PRECISION_CHOICES
    assert PRECISION_CHOICES == ("fp32", "bf16", "int8", "auto")
    assert int8.INT8_UNITS == "AMX-INT8 or AVX512-VNNI"
    assert list(int8.INT8_KERNELS) == ["amx", "vnni", "portable"]


NO_UNIT = """
import json
from yolo9000.kernels import lowp
try:
    lowp.resolve_precision("int8", quantized=True)
    int8 = "ran"
except lowp.UserError as e:
    int8 = str(e)
print(json.dumps({"int8": int8, "auto": lowp.resolve_precision("auto", quantized=True)}))
"""


def test_without_a_unit_int8_says_so_and_auto_falls_back():
    env = dict(os.environ, YOLO9000_PORTABLE_KERNELS="1")
    run = subprocess.run([sys.executable, "-c", NO_UNIT], env=env, capture_output=True,
                         text=True, check=True)
    report = json.loads(run.stdout)
    assert report["int8"] == ("--precision int8 needs AMX-INT8 or AVX512-VNNI: "
                              "YOLO9000_PORTABLE_KERNELS is set; use --precision fp32 (or auto)")
    assert report["auto"] == ["fp32", None, "auto: fp32 (YOLO9000_PORTABLE_KERNELS is set)"]
