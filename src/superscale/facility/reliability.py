"""Failures, checkpoints and goodput: how long a job really takes on thousands of GPUs.

Failure rates. Per-component rates come from the unexpected interruptions of the Llama 3
405B run: 419 in a 54-day snapshot on 16,384 H100 GPUs in 2,048 hosts (Dubey et al. 2024,
"The Llama 3 Herd of Models", Sec. 3.3.4, Table 5; counts in facility/catalog/failures.yaml).
GPU-side causes (268) give a rate per GPU-hour, host causes including unplanned maintenance
(53) a rate per host-hour, network switches and cables (35) a rate per link-hour and per
switch-hour (split `NETWORK_LINK_SHARE`, an assumption: the table does not separate them;
counts of links and switches come from the reference cluster's fabric, fabric.py), and
software, dependency and NCCL-timeout causes (63) a rate per GPU-hour of the job. Rates add
(independent exponential failures), so a cluster's interruptions per hour is
Σ rate × count, and its mean time between failures M = 1 / that.

Checkpoints. A checkpoint holds the bf16 weights and the fp32 master weights, Adam momentum
and variance: 2 + 12 = 14 bytes per parameter (the memory model's accounting, training/
memory.py). Writing it takes δ = size / storage bandwidth; restarting costs R = a fixed
overhead + reading it back. The optimal interval is Young's τ = √(2δM) (Young 1974, "A first
order approximation to the optimum checkpoint interval") or Daly's higher-order
τ = √(2δM)·[1 + ⅓·√(δ/2M) + (δ/2M)/9] − δ for δ < 2M, else M (Daly 2006, "A higher order
estimate of the optimum checkpoint interval for restart dumps", eq. 37); Daly's is used.

Goodput. Each interval of τ useful seconds costs δ more to checkpoint (synchronous writes),
and each failure costs R plus, on average, half an interval of lost work (τ + δ)/2. With
failures at rate 1/M over the wall-clock time W to do T useful seconds:
W = T·(1 + δ/τ) + (W/M)·(R + (τ + δ)/2), so goodput T/W = (1 − (R + (τ + δ)/2)/M) / (1 + δ/τ).
Planned interruptions (47 in the Llama 3 snapshot) are not modelled.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

from superscale.facility.catalog import failure_causes
from superscale.facility.fabric import estimate_fabric

# The Llama 3 405B snapshot (Dubey et al. 2024, Sec. 3.3.4 and Table 5).
REFERENCE_CLUSTER = "h100-16k"
REFERENCE_GPUS = 16_384
REFERENCE_HOSTS = 2_048
REFERENCE_DAYS = 54
REFERENCE_INTERRUPTIONS = 419
# Share of "network switch/cable" interruptions put on links (cables, optics, ports) rather
# than whole switches: an assumption, Table 5 does not split them.
NETWORK_LINK_SHARE = 0.5
# bf16 weights (2 B) + fp32 master weights, momentum, variance (12 B) per parameter.
CHECKPOINT_BYTES_PER_PARAM = 14
HOURS_PER_DAY = 24.0


@dataclass(frozen=True, slots=True, kw_only=True)
class FailureRates:
    """Failures per hour of one component."""

    gpu_per_hour: float
    host_per_hour: float
    link_per_hour: float
    switch_per_hour: float
    software_per_gpu_hour: float

    def scaled(self, factor: float) -> FailureRates:
        return FailureRates(
            gpu_per_hour=self.gpu_per_hour * factor,
            host_per_hour=self.host_per_hour * factor,
            link_per_hour=self.link_per_hour * factor,
            switch_per_hour=self.switch_per_hour * factor,
            software_per_gpu_hour=self.software_per_gpu_hour * factor,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Components:
    """How many of each failing component a job runs on."""

    gpus: int
    hosts: int
    links: int
    switches: int


@cache
def reference_components() -> Components:
    """The Llama 3 run's GPUs, hosts, and its fabric's links and switches (fabric.py)."""
    from superscale.hardware.catalog import clusters

    fabric = estimate_fabric(clusters().get(REFERENCE_CLUSTER))
    return Components(
        gpus=REFERENCE_GPUS, hosts=REFERENCE_HOSTS, links=fabric.links, switches=fabric.switches
    )


@cache
def default_rates() -> FailureRates:
    """Per-component failure rates derived from Llama 3 Table 5."""
    by_component = {"gpu": 0, "host": 0, "network": 0, "software": 0}
    for cause in failure_causes():
        by_component[cause.component] += cause.interruptions
    ref = reference_components()
    hours = REFERENCE_DAYS * HOURS_PER_DAY
    network = by_component["network"]
    return FailureRates(
        gpu_per_hour=by_component["gpu"] / (ref.gpus * hours),
        host_per_hour=by_component["host"] / (ref.hosts * hours),
        link_per_hour=network * NETWORK_LINK_SHARE / (ref.links * hours),
        switch_per_hour=network * (1 - NETWORK_LINK_SHARE) / (ref.switches * hours),
        software_per_gpu_hour=by_component["software"] / (ref.gpus * hours),
    )


def interruptions_per_hour(rates: FailureRates, parts: Components) -> float:
    """Expected unexpected interruptions per hour of a job on `parts` (rates add)."""
    return (
        rates.gpu_per_hour * parts.gpus
        + rates.host_per_hour * parts.hosts
        + rates.link_per_hour * parts.links
        + rates.switch_per_hour * parts.switches
        + rates.software_per_gpu_hour * parts.gpus
    )


def checkpoint_bytes(params: float) -> float:
    """Bytes of one full training checkpoint: weights + optimizer states."""
    return params * CHECKPOINT_BYTES_PER_PARAM


def young_interval_s(checkpoint_s: float, mtbf_s: float) -> float:
    """Young's optimal checkpoint interval √(2δM), s (Young 1974)."""
    return math.sqrt(2 * checkpoint_s * mtbf_s)


def daly_interval_s(checkpoint_s: float, mtbf_s: float) -> float:
    """Daly's higher-order optimal checkpoint interval, s (Daly 2006, eq. 37)."""
    if checkpoint_s >= 2 * mtbf_s:
        return mtbf_s
    x = checkpoint_s / (2 * mtbf_s)
    return math.sqrt(2 * checkpoint_s * mtbf_s) * (1 + math.sqrt(x) / 3 + x / 9) - checkpoint_s


def goodput(*, interval_s: float, checkpoint_s: float, restart_s: float, mtbf_s: float) -> float:
    """Useful time / wall-clock time with checkpoints, lost work and restarts (0 if none).

    Args:
        interval_s: useful seconds between checkpoints (τ).
        checkpoint_s: seconds to write one checkpoint (δ), blocking.
        restart_s: seconds from a failure to running again (R), reload included.
        mtbf_s: mean time between failures of the whole job (M), s.
    """
    if math.isinf(mtbf_s):
        return 1.0 / (1.0 + checkpoint_s / interval_s) if interval_s > 0 else 1.0
    lost = (restart_s + (interval_s + checkpoint_s) / 2) / mtbf_s
    return max(0.0, (1.0 - lost) / (1.0 + checkpoint_s / interval_s))


def availability(*, restart_s: float, mtbf_s: float) -> float:
    """Share of time a service without checkpoints is up: M / (M + R)."""
    return 1.0 if math.isinf(mtbf_s) else mtbf_s / (mtbf_s + restart_s)
