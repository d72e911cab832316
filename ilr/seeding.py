"""Seeds derived from names: the same in every process, run and machine (Python's hash() of a str is salted)."""

from __future__ import annotations

import hashlib


def stable_seed(*parts) -> int:
    """A 32-bit seed from any values, e.g. stable_seed("rollout", seed, step, rank)."""
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:4], "little")
