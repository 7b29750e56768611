"""The one place where human units become SI (bytes, seconds, bytes/s, FLOP/s).

Catalog YAML and scenario files use the units people read on datasheets, named in the key
(`hbm_gib`, `bandwidth_gb_per_s`, `latency_us`, `peak_tflops`); specs expose SI properties
computed with these helpers. Decimal prefixes for rates (GB/s = 1e9 B/s, as vendors quote
links), binary for memory capacities (GiB = 2**30 B, as HBM is sized).
"""

from __future__ import annotations

KIB = 1024
MIB = 1024**2
GIB = 1024**3
TIB = 1024**4


def gib_to_bytes(gib: float) -> float:
    return gib * GIB


def bytes_to_gib(n_bytes: float) -> float:
    return n_bytes / GIB


def gb_per_s_to_bytes_per_s(gb_per_s: float) -> float:
    """GB/s (decimal, as on link datasheets) to bytes/s."""
    return gb_per_s * 1e9


def gbit_per_s_to_bytes_per_s(gbit_per_s: float) -> float:
    """Gb/s (as NIC speeds are quoted: 400G) to bytes/s."""
    return gbit_per_s * 1e9 / 8


def tb_per_s_to_bytes_per_s(tb_per_s: float) -> float:
    return tb_per_s * 1e12


def tflops_to_flops(tflops: float) -> float:
    return tflops * 1e12


def us_to_s(us: float) -> float:
    return us * 1e-6


def kw_to_w(kw: float) -> float:
    return kw * 1e3


def parse_bytes(text: str) -> int:
    """Parse a size such as '8', '64K', '1M', '8G' (binary multiples, as nccl-tests uses)."""
    s = text.strip().upper().removesuffix("B").removesuffix("I")
    multipliers = {"K": KIB, "M": MIB, "G": GIB, "T": TIB}
    if s and s[-1] in multipliers:
        return int(float(s[:-1]) * multipliers[s[-1]])
    return int(float(s))
