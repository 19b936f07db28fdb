"""Collection settings for the whole repository (doctests of src/ included)."""

import importlib.util

# serenity.torch needs the optional `torch` extra: without it, its modules'
# doctests are not collected (tests/test_torch.py skips on its own).
collect_ignore_glob = [] if importlib.util.find_spec("torch") else ["src/serenity/torch/*"]
