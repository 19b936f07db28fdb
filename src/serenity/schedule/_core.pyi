"""Types of the compiled search core (``_core.cpp``)."""

MAX_WORDS: int
DONE: int
SLICE: int
TIMEOUT: int
GIVE_UP: int
MEMORY_CAP: int
EXHAUSTED: int
FOUND: int
NONE: int

class Core:
    expanded: int
    free_moves: int
    level: int
    peak: int
    order: list[int]
    bytes: int
    states: int
    def begin(self) -> None: ...
    def run(
        self,
        upper: int,
        max_expanded: int,
        remaining: float,
        give_up_at: int,
        max_bytes: int,
        slice: float,
    ) -> int: ...
    def clear(self) -> None: ...
    visited: int
    evicted: int
    next_level: int
    dead_count: int
    dead_most: int
    decide_bytes: int
    decide_peak_bytes: int
    dead_dropped: int
    def decide(
        self,
        limit: int,
        remaining: float,
        max_bytes: int,
        slice: float,
        max_dead: int = -1,
        threads: int = 1,
        max_visits: int = -1,
    ) -> int: ...
    def decide_reset(self) -> None: ...
    generated: int
    def beam(self, width: int, bound: int, remaining: float, max_generated: int) -> int: ...

def make_core(
    words: int,
    out_bytes: list[int],
    dead_bytes: list[int],
    preds: list[list[int]],
    succs: list[list[int]],
    ins: list[list[tuple[int, list[int]]]],
    inplace: list[list[tuple[int, list[int]]]],
    wait: list[list[int]],
    block: list[list[int]],
    pair: list[int],
    start_mem: int,
    bound: int,
    free_moves: bool,
    free_set_ops: int = 0,
) -> Core: ...
