"""Model formats in and out, behind one interface (:mod:`serenity.io.format`).

``load(path)`` picks the format by the file's content and returns a
:class:`Model`; each format is one module registered in
:data:`~serenity.io.format.FORMAT_MODULES` (ONNX: :mod:`serenity.io.onnx_import`,
with its writer :mod:`~serenity.io.onnx_export` and its runtime check
:mod:`~serenity.io.verify`).
"""

from serenity.io.format import (
    FORMAT_MODULES,
    Format,
    Model,
    VerifyReport,
    check_output_path,
    format_of,
    formats,
    load,
    parse_input_shapes,
)
from serenity.io.onnx_import import OnnxModel, load_onnx, read_model

__all__ = [
    "FORMAT_MODULES",
    "Format",
    "Model",
    "OnnxModel",
    "VerifyReport",
    "check_output_path",
    "format_of",
    "formats",
    "load",
    "load_onnx",
    "parse_input_shapes",
    "read_model",
]
