"""Build the Cython core with optimisation and, where the compiler has it, OpenMP."""
import glob
import os
import shutil
import subprocess
import sys
import tempfile

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_py import build_py


class build_py_fresh(build_py):
    """Copy the package into an empty build/lib, so a module deleted or moved in src/ cannot
    survive in the wheel from an earlier build of this checkout (setuptools only ever adds there)."""

    def run(self):
        shutil.rmtree(os.path.join(self.build_lib, "yolo9000"), ignore_errors=True)
        super().run()


def compiler_has_openmp():
    """Try to compile and link a tiny OpenMP program; fall back to serial kernels if it fails."""
    if sys.platform == "win32" or os.environ.get("YOLO9000_NO_OPENMP"):
        return False
    cc = os.environ.get("CC", "cc")
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "t.c")
        with open(src, "w") as f:
            f.write("#include <omp.h>\nint main(void){return omp_get_max_threads() > 0 ? 0 : 1;}\n")
        try:
            r = subprocess.run([cc, "-fopenmp", src, "-o", os.path.join(tmp, "t")],
                               capture_output=True)
        except OSError:
            return False
        return r.returncode == 0


openmp = compiler_has_openmp()
compile_args = ["-O3", "-ffast-math", "-fno-finite-math-only"] if sys.platform != "win32" else ["/O2"]
link_args = []
if openmp:
    compile_args.append("-fopenmp")
    link_args.append("-fopenmp")
# Tuning for the build machine would make the wheel crash elsewhere; allow it only on request.
if os.environ.get("YOLO9000_NATIVE"):
    compile_args.append("-march=native")

# the compiled core: _kernels.pyx includes its sections (csrc/*.pxi), _kernels.pxd declares
# their C (csrc/*.h; block_pool.c and team.c are compiled beside); a change to any of them rebuilds it
CORE_SOURCES = "src/yolo9000/csrc"
extensions = [
    Extension(
        "yolo9000._kernels",
        ["src/yolo9000/_kernels.pyx", f"{CORE_SOURCES}/block_pool.c", f"{CORE_SOURCES}/team.c"],
        include_dirs=[CORE_SOURCES, numpy.get_include()],
        depends=sorted(glob.glob(f"{CORE_SOURCES}/*")) + ["src/yolo9000/_kernels.pxd"],
        extra_compile_args=compile_args,
        extra_link_args=link_args,
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    )
]

setup(
    cmdclass={"build_py": build_py_fresh},
    ext_modules=cythonize(
        extensions,
        compiler_directives={"language_level": 3, "boundscheck": False, "wraparound": False,
                             "cdivision": True, "initializedcheck": False},
    ),
)
