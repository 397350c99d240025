"""Distinct viewer sessions in bounded memory: exact while small, HyperLogLog beyond.

Up to `EXACT_MAX` sessions the set of their 64-bit hashes is kept, so the count is exact
(a 64-bit collision among a few thousand ids has odds near 1e-13). Past that the hashes
go into a HyperLogLog of 2^14 one-byte registers (16 KiB per stream, whatever the
audience): relative standard error 1.04 / sqrt(2^14) = 0.81 %, so 99.7 % of estimates
fall within +-2.4 % (Flajolet et al. 2007; linear counting below 2.5 m, where it is
better; 64-bit hashes need no large-range correction).
"""

from __future__ import annotations

import hashlib
import math

EXACT_MAX = 2_048
_P = 14
_M = 1 << _P
_ALPHA = 0.7213 / (1 + 1.079 / _M)
_REST_BITS = 64 - _P
STANDARD_ERROR = 1.04 / math.sqrt(_M)


def session_hash(session: str) -> int:
    """A stable 64-bit hash (Python's `hash` of a str changes per process)."""
    digest = hashlib.blake2b(session.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big")


class UniqueSessions:
    """How many distinct session ids were added: exact to EXACT_MAX, then estimated."""

    __slots__ = ("_exact", "_registers", "_sum", "_zeros")

    def __init__(self) -> None:
        self._exact: set[int] | None = set()
        self._registers = bytearray()
        self._sum = 0.0  # sum of 2^-register over all registers, kept as they rise
        self._zeros = 0

    @property
    def exact(self) -> bool:
        return self._exact is not None

    def add(self, session: str) -> None:
        self.add_hash(session_hash(session))

    def add_hash(self, value: int) -> None:
        if self._exact is not None:
            self._exact.add(value)
            if len(self._exact) <= EXACT_MAX:
                return
            hashes, self._exact = self._exact, None
            self._registers = bytearray(_M)
            self._sum = float(_M)
            self._zeros = _M
            for h in hashes:
                self._add_register(h)
            return
        self._add_register(value)

    def _add_register(self, value: int) -> None:
        index = value >> _REST_BITS
        rest = value & ((1 << _REST_BITS) - 1)
        rank = _REST_BITS - rest.bit_length() + 1  # leading zeros of the rest, plus one
        old = self._registers[index]
        if rank > old:
            self._registers[index] = rank
            self._sum += 2.0 ** -rank - 2.0 ** -old
            if old == 0:
                self._zeros -= 1

    def count(self) -> int:
        if self._exact is not None:
            return len(self._exact)
        estimate = _ALPHA * _M * _M / self._sum
        if estimate <= 2.5 * _M and self._zeros:
            estimate = _M * math.log(_M / self._zeros)
        return round(estimate)
