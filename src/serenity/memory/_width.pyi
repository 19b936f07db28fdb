"""Types of the compiled pathwidth decision (``_width.cpp``)."""

MAX_VERTICES: int

def pathwidth_at_most(adj: list[list[int]], k: int, max_visits: int) -> tuple[int, int]: ...
