"""CPython's string ``hash()`` under a given ``PYTHONHASHSEED``, for any CPython version.

The CoSA reference code seeds its projections with ``hash(f"{layer_id}_L") % 10000``.  That value
depends on the seed *and* on the interpreter's algorithm: SipHash-2-4 up to Python 3.10 (the
reference README installs ``python=3.10``), SipHash-1-3 from 3.11 on (``sys.hash_info.algorithm``).
Running ``hash()`` in a subprocess with ``PYTHONHASHSEED`` set is only faithful when the reading
interpreter uses the training run's algorithm, so this module reimplements CPython's
``Python/pyhash.c`` and ``Python/bootstrap_hash.c``; the tests check it against the running
interpreter (SipHash-1-3) and against the SipHash reference test vectors (SipHash-2-4).

- secret: 24 bytes; zero for seed 0, else ``lcg_urandom(seed)`` (x ← 214013·x + 2531011 mod 2³²,
  byte = (x >> 16) & 0xff); SipHash keys k0, k1 are its first two little-endian 64-bit words;
- data: the string's internal representation (1, 2 or 4 bytes per character by its widest one);
- result: the 64-bit digest read as a signed integer, −1 mapped to −2; the empty string hashes to 0.
"""
from __future__ import annotations

__all__ = ["ALGORITHMS", "string_hash", "siphash"]

ALGORITHMS = {"siphash24": (2, 4), "siphash13": (1, 3)}
_M = (1 << 64) - 1


def _rotl(x: int, b: int) -> int:
    return ((x << b) | (x >> (64 - b))) & _M


def _round(v0, v1, v2, v3):
    v0 = (v0 + v1) & _M
    v1 = _rotl(v1, 13) ^ v0
    v0 = _rotl(v0, 32)
    v2 = (v2 + v3) & _M
    v3 = _rotl(v3, 16) ^ v2
    v0 = (v0 + v3) & _M
    v3 = _rotl(v3, 21) ^ v0
    v2 = (v2 + v1) & _M
    v1 = _rotl(v1, 17) ^ v2
    v2 = _rotl(v2, 32)
    return v0, v1, v2, v3


def siphash(k0: int, k1: int, data: bytes, c: int = 2, d: int = 4) -> int:
    """SipHash-c-d of ``data`` with key (k0, k1), as an unsigned 64-bit integer."""
    v = [k0 ^ 0x736F6D6570736575, k1 ^ 0x646F72616E646F6D, k0 ^ 0x6C7967656E657261, k1 ^ 0x7465646279746573]
    end = len(data) - len(data) % 8
    for i in range(0, end, 8):
        m = int.from_bytes(data[i:i + 8], "little")
        v[3] ^= m
        for _ in range(c):
            v = list(_round(*v))
        v[0] ^= m
    b = ((len(data) & 0xFF) << 56) | int.from_bytes(data[end:], "little")
    v[3] ^= b
    for _ in range(c):
        v = list(_round(*v))
    v[0] ^= b
    v[2] ^= 0xFF
    for _ in range(d):
        v = list(_round(*v))
    return v[0] ^ v[1] ^ v[2] ^ v[3]


def _secret(seed: int) -> bytes:
    if seed == 0:
        return bytes(24)
    x, out = seed, bytearray(24)
    for i in range(24):
        x = (x * 214013 + 2531011) & 0xFFFFFFFF
        out[i] = (x >> 16) & 0xFF
    return bytes(out)


def string_hash(text: str, seed: int, algorithm: str = "siphash24") -> int:
    """``hash(text)`` of a CPython using ``algorithm`` and run with ``PYTHONHASHSEED=seed``."""
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm={algorithm!r} must be one of {', '.join(ALGORITHMS)}")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= 4294967295:
        raise ValueError(f"seed={seed!r} must be an integer in [0, 4294967295] (a PYTHONHASHSEED value)")
    if not text:
        return 0
    widest = max(map(ord, text))
    data = text.encode("latin-1" if widest < 256 else "utf-16-le" if widest < 65536 else "utf-32-le")
    secret = _secret(seed)
    c, d = ALGORITHMS[algorithm]
    x = siphash(int.from_bytes(secret[:8], "little"), int.from_bytes(secret[8:16], "little"), data, c, d)
    x = x - (1 << 64) if x >> 63 else x
    return -2 if x == -1 else x
