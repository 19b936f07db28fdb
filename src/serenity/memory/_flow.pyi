"""Types of the compiled minimum cuts (``_flow.cpp``)."""

class Cuts:
    def __init__(
        self,
        nodes: int,
        tails: list[int],
        heads: list[int],
        caps: list[int],
        source: int,
        sink: int,
        infinite: int,
        side_nodes: int,
        closure_bytes: int,
    ) -> None: ...
    def solve(
        self, inside: list[int], outside: list[int], want_side: bool
    ) -> tuple[int, bytes]: ...
    def solve_bits(self, inside: bytes, outside: bytes, want_side: bool) -> tuple[int, bytes]: ...
    def solve_group(
        self, inside: bytes, outside: bytes, extras: list[bytes], want_side: bool
    ) -> list[tuple[int, bytes]]: ...
    def solve_between(
        self, inside: bytes, outside: bytes, extras: list[bytes], sinks: list[bytes]
    ) -> list[int]: ...
    def has_closures(self) -> bool: ...
    def work(self) -> int: ...

class Sequences:
    def __init__(
        self,
        cuts: Cuts,
        chosen: list[int],
        direct: list[bytes],
        steps: list[int],
        ancestors: list[list[int]],
        most: int,
        cut_bytes: int,
        dead_bytes: int,
        previous: Sequences | None,
        dead_choices: int,
        reverse: bool = False,
        stop_past_level: bool = True,
    ) -> None: ...
    def bound(
        self, level: int, upper: int, stop_at: int, solves: int, seconds: float
    ) -> tuple[int, bool, int]: ...
    def path(self) -> tuple[list[int], list[bytes]] | None: ...
    def kept(self) -> int: ...
    def held(self) -> int: ...
    def forgotten(self) -> int: ...
    def set_guide(self, guide: list[int]) -> None: ...
    def dead_sets(self) -> list[tuple[int, list[tuple[bytes, int]]]]: ...
