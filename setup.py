"""Build of the compiled cores (search, pathwidth); every other piece of metadata is in pyproject.toml."""

from pybind11.setup_helpers import Pybind11Extension, build_ext
from setuptools import setup

setup(
    ext_modules=[
        Pybind11Extension(
            "serenity.schedule._core",
            ["src/serenity/schedule/_core.cpp"],
            cxx_std=17,
            extra_compile_args=["-O3"],
        ),
        Pybind11Extension(
            "serenity.memory._width",
            ["src/serenity/memory/_width.cpp"],
            cxx_std=17,
            extra_compile_args=["-O3"],
        ),
    ],
    cmdclass={"build_ext": build_ext},
)
