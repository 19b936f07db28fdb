"""Model formats in and out (ONNX today)."""

from serenity.io.onnx_import import OnnxModel, load_onnx, parse_input_shapes, read_model

__all__ = ["OnnxModel", "load_onnx", "parse_input_shapes", "read_model"]
