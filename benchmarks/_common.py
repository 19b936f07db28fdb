"""Shared by the benchmark scripts: where the real graphs are, and which files to run."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

#: ``../shared/models/onnx`` beside the checkout.
DEFAULT_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "models" / "onnx"


def model_paths(paths: list[Path]) -> list[Path]:
    """The ``.onnx`` files named, or found in the directories named (default: DEFAULT_DIR)."""
    found: list[Path] = []
    for p in paths or [DEFAULT_DIR]:
        if p.is_dir():
            found += sorted(p.glob("*.onnx"))
        elif p.is_file():
            found.append(p)
        else:
            print(f"skipping {p}: not found", file=sys.stderr)
    return found


def parser(doc: str | None) -> argparse.ArgumentParser:
    """A benchmark's argument parser: its docstring as help, model paths as arguments."""
    ap = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "paths", nargs="*", type=Path, help=f"models or directories (default {DEFAULT_DIR})"
    )
    return ap
