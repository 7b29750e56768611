"""Collectives priced from measured bus bandwidths instead of the topology model.

A profile's `collectives` (what `superscale calibrate` measures on several devices of one
machine, or the nccl-tests rows of a chip's own node in a fitted profile) say what the
library achieved on a group of `ranks` GPUs of one system, NCCL's own algorithm and
protocol choices included. Where a group lies inside one system and the profile measured
that collective on that many ranks, those figures price it, so a measured mid-size dip
(8 A100s: 109 GB/s busbw at 16 MiB where the linear model gives 165, LL128's rate before
Simple takes over) shows in the step; everything else is priced by the registered
algorithms on the topology. The scenario's profile is read first; where it measured no
collectives (a single device, or none named), the chip's shipped fitted profile's are
(`collectives_for`): measured figures take precedence over the model, as for a GEMM.

Between measured sizes the time is interpolated in log-log; below the smallest it stays at
the smallest size's time (latency-bound), above the largest it grows with the bytes at the
largest size's rate.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from superscale import vec
from superscale.collectives.base import BUS_FACTOR
from superscale.hardware.profile import (
    CollectivePoint,
    fitted_profile_path,
    load_profile,
    profile_of,
)
from superscale.hardware.spec import Chip

# the fewest sizes a (collective, ranks) curve needs before it prices anything: one or two
# points cannot tell a latency floor from a bandwidth
MIN_POINTS = 3


@dataclass(frozen=True)
class MeasuredCost:
    """A collective's time from measured (payload bytes, seconds) points, sorted by size.

    It answers like a `LinearCost`: `fixed_s` is 0, `per_byte_s` the largest size's time
    per byte (what the busiest link carries), and `fill_s` the rest of the time, so the
    event engine splits latency from link time as for a modelled algorithm.
    """

    payload_bytes: tuple[float, ...]
    seconds: tuple[float, ...]
    fixed_s: float = 0.0
    fills: tuple[tuple[float, float], ...] = ()

    @property
    def per_byte_s(self) -> float:
        return self.seconds[-1] / self.payload_bytes[-1]

    def time_s(self, nbytes: vec.Num) -> vec.Num:
        """Seconds for `nbytes` (a number or an array), interpolated as the module says."""
        sizes = np.asarray(self.payload_bytes)
        times = np.asarray(self.seconds)
        x = np.asarray(nbytes, dtype=np.float64)
        inside = np.exp(np.interp(np.log(np.maximum(x, 1.0)), np.log(sizes), np.log(times)))
        above = times[-1] * x / sizes[-1]
        out = np.where(x >= sizes[-1], above, inside)
        return float(out) if np.ndim(out) == 0 else out

    def fill_s(self, nbytes: float) -> float:
        """The part of the time beyond the link's bytes (latency, protocol and fill)."""
        return max(0.0, float(self.time_s(nbytes)) - self.per_byte_s * float(nbytes))


def measured_costs(points: tuple[CollectivePoint, ...]) -> dict[tuple[str, int], MeasuredCost]:
    """The measured curve of every (collective, ranks) with at least MIN_POINTS sizes.

    A point's time is bytes · bus factor / bus bandwidth (nccl-tests' definition), with
    the factor of `collectives.base.BUS_FACTOR` for its rank count.
    """
    curves: dict[tuple[str, int], dict[int, float]] = {}
    for p in points:
        factor = BUS_FACTOR[p.collective](p.ranks)
        seconds = p.bytes * factor / (p.bus_gb_per_s * 1e9)
        curves.setdefault((p.collective, p.ranks), {})[p.bytes] = seconds
    out = {}
    for key, curve in curves.items():
        if len(curve) >= MIN_POINTS:
            sizes = sorted(curve)
            out[key] = MeasuredCost(tuple(float(s) for s in sizes), tuple(curve[s] for s in sizes))
    return out


def collectives_for(chip: Chip) -> dict[tuple[str, int], MeasuredCost]:
    """The measured curves that price `chip`'s collectives: its own profile's, else its
    shipped fitted profile's (none for a chip the catalog does not fit)."""
    profile = profile_of(chip)
    if profile is not None and profile.collectives:
        return measured_costs(profile.collectives)
    return _fitted_collectives(chip.name)


@lru_cache(maxsize=64)  # bounded: one entry per catalog chip asked about
def _fitted_collectives(chip_name: str) -> dict[tuple[str, int], MeasuredCost]:
    path = fitted_profile_path(chip_name)
    return measured_costs(load_profile(path).collectives) if path is not None else {}
