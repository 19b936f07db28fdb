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
    def solve(self, inside: list[int], outside: list[int], want_side: bool) -> tuple[int, bytes]: ...
    def solve_bits(self, inside: bytes, outside: bytes, want_side: bool) -> tuple[int, bytes]: ...
    def solve_group(
        self, inside: bytes, outside: bytes, extras: list[bytes], want_side: bool
    ) -> list[tuple[int, bytes]]: ...
