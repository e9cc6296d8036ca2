"""The compiled core as a whole: kernels/core.py names all of it."""
import types

from yolo9000 import _kernels
from yolo9000.kernels import core


def public_names(module):
    return {name for name, value in vars(module).items()
            if not name.startswith("_") and not isinstance(value, types.ModuleType)}


def test_core_lists_every_kernel_of_the_compiled_module():
    """A kernel added to the .pyx's sections but not to core's list would be out of the
    layers' reach (and core's list out of date as the API's one page)."""
    assert public_names(_kernels) == public_names(core)
    for name in public_names(core):
        assert getattr(core, name) is getattr(_kernels, name)
