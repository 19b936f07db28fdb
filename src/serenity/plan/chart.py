"""An ASCII chart of an arena plan: time downwards, addresses across.

In the spirit of TensorFlow Lite Micro's ``PrintMemoryPlan``: one row per step,
one column per ``arena / width`` bytes; each live buffer paints its columns
with its letter, ``.`` is free. A legend maps letters to buffers.

Example:
    >>> from serenity.plan import Buffer, plan
    >>> bufs = [Buffer(32, 0, 1, name="a"), Buffer(16, 1, 2, name="b")]
    >>> print(ascii_chart(bufs, plan(bufs), width=6))
    step | address 0..48 bytes, 8 per column |  live bytes
       0 | AAAA.. |     32
       1 | AAAABB |     48
       2 | ....BB |     16
    A a: 32 bytes at 0, steps 0..1
    B b: 16 bytes at 32, steps 1..2
"""

from __future__ import annotations

from collections.abc import Sequence

from serenity.plan.lifetimes import Buffer, align_up
from serenity.plan.planners import ArenaPlan

_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def _letter(k: int) -> str:
    return _LETTERS[k % len(_LETTERS)]


def ascii_chart(buffers: Sequence[Buffer], plan: ArenaPlan, width: int = 64) -> str:
    """Draw ``plan`` as text: a row per step, a column per ``arena / width`` bytes.

    Letters repeat after 62 buffers; the legend lists each buffer with its
    letter. Zero-size buffers are left out.

    Complexity: O(T x (width + L)) for ``T`` steps and ``L`` live buffers.
    """
    shown = [k for k, b in enumerate(buffers) if align_up(b.size, plan.alignment)]
    arena = max(plan.arena_bytes, 1)
    width = max(1, width)
    per_col = -(-arena // width)
    head = f"step | address 0..{plan.arena_bytes} bytes, {per_col} per column |  live bytes"
    lines = [head]
    if shown:
        start = min(buffers[k].first_step for k in shown)
        end = max(buffers[k].last_step for k in shown)
        for step in range(start, end + 1):
            row = ["."] * width
            live = 0
            for n, k in enumerate(shown):
                b = buffers[k]
                if not b.first_step <= step <= b.last_step:
                    continue
                size = align_up(b.size, plan.alignment)
                live += size
                lo = plan.offsets[k] // per_col
                hi = -(-(plan.offsets[k] + size) // per_col)
                for c in range(lo, min(hi, width)):
                    row[c] = _letter(n)
            lines.append(f"{step:>4} | {''.join(row)} | {live:>6}")
    for n, k in enumerate(shown):
        b = buffers[k]
        lines.append(
            f"{_letter(n)} {b.name or k}: {b.size} bytes at {plan.offsets[k]}, "
            f"steps {b.first_step}..{b.last_step}"
        )
    return "\n".join(lines)
