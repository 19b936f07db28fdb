"""Build of the compiled cores (search, pathwidth, minimum cuts); every other piece of metadata is in pyproject.toml."""

import platform
import sys

from pybind11.setup_helpers import Pybind11Extension, build_ext
from setuptools import setup

# The pathwidth search counts bits in its inner loop: without -mpopcnt GCC calls a
# library routine per word (x86-64 CPUs have had the instruction since 2008).
POPCNT = (
    ["-mpopcnt"] if platform.machine() in ("x86_64", "AMD64") and sys.platform != "win32" else []
)

setup(
    ext_modules=[
        Pybind11Extension(
            "serenity.schedule._core",
            ["src/serenity/schedule/_core.cpp"],
            cxx_std=17,
            extra_compile_args=["-O3"],
        ),
        Pybind11Extension(
            "serenity.memory._flow",
            ["src/serenity/memory/_flow.cpp"],
            cxx_std=17,
            extra_compile_args=["-O3"],
        ),
        Pybind11Extension(
            "serenity.memory._width",
            ["src/serenity/memory/_width.cpp"],
            cxx_std=17,
            extra_compile_args=["-O3", *POPCNT],
        ),
    ],
    cmdclass={"build_ext": build_ext},
)
