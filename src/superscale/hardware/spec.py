"""Hardware specs: chips, links, systems (server, super-node) and clusters.

A cluster is `count` identical systems joined by a scale-out network. A system holds `gpus`
chips split into scale-up domains: GPUs inside one domain talk over the chip-to-chip fabric
(NVLink + NVSwitch, MetaXLink, UB, xGMI); domains inside one system, if there are several,
talk over `domain_link` (e.g. PCIe); systems talk over their NICs. Human units are in the
field names (GiB, GB/s, Gb/s, µs, TFLOP/s); SI values are properties. Sources: the datasheets
and papers named in each catalog entry's `source`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from superscale import units
from superscale.spec import MAX_COUNT, MAX_GPUS, MAX_PEAK_TFLOPS, Spec

Precision = Literal["fp32", "tf32", "bf16", "fp16", "fp8", "int8", "fp4"]
PRECISIONS: tuple[str, ...] = ("fp32", "tf32", "bf16", "fp16", "fp8", "int8", "fp4")


class Sourced(Spec):
    """Fields every catalog entry carries: where its figures come from, and which are guesses."""

    source: str = Field(description="Datasheet, paper or URL the figures come from.")
    estimate: bool = Field(False, description="True when any figure is not published.")
    estimate_reason: str | None = Field(
        None, description="One line on how the unpublished figures were estimated."
    )
    estimated_fields: tuple[str, ...] = Field(
        (), description="Which fields are estimates (empty with estimate=true means all)."
    )

    @model_validator(mode="after")
    def _estimate_needs_reason(self) -> Sourced:
        if self.estimate and not self.estimate_reason:
            raise ValueError("estimate: true needs an estimate_reason (one line)")
        if self.estimated_fields and not self.estimate:
            raise ValueError("estimated_fields given but estimate is false")
        return self


class ComputeEfficiency(Spec):
    """Parameters of the shape-aware compute-efficiency model (training/compute.py).

    Calibratable per chip; the defaults are documented starting points, not fits.
    """

    matmul_fraction: float | None = Field(
        None,
        gt=0,
        le=1,
        description="Fraction of dense peak a large GEMM reaches; default: measured matmul "
        "peak / datasheet peak where measured, else 0.75.",
    )
    matmul_half_dim: float = Field(
        96.0,
        ge=0,
        description="GEMM dimension at which that dimension halves the rate (Hockney n_1/2).",
    )
    attention_fraction: float = Field(
        0.55, gt=0, le=1, description="Fraction of dense peak a fused attention kernel reaches."
    )
    memory_fraction: float = Field(
        0.80, gt=0, le=1, description="Fraction of HBM bandwidth streaming kernels reach."
    )
    kernel_overhead_us: float = Field(
        4.0, ge=0, description="Fixed launch/tail cost per kernel, µs."
    )
    sustained_clock_fraction: float = Field(
        1.0,
        gt=0,
        le=1,
        description="Share of the datasheet tensor rate a chip sustains through hours of "
        "training at its power limit (clocks settle below boost); scales compute-bound work.",
    )


class ScaleUpPort(Spec):
    """A chip's chip-to-chip interface: which fabric, and how fast per GPU."""

    link: str = Field(description="Links-catalog name of the fabric, e.g. nvlink4.")
    bandwidth_gb_per_s: float = Field(
        gt=0, description="Aggregate bandwidth per GPU per direction, GB/s."
    )
    ports: int | None = Field(None, gt=0, description="Number of links/ports on the chip.")

    @property
    def bandwidth_bytes_per_s(self) -> float:
        return units.gb_per_s_to_bytes_per_s(self.bandwidth_gb_per_s)


class Chip(Sourced):
    """One accelerator: peak rates per precision, HBM, power and interfaces."""

    name: str
    display_name: str
    vendor: str
    form_factor: str | None = None
    peak_tflops: dict[Precision, float] = Field(
        description="Dense (no sparsity) peak per precision, TFLOP/s; absent = unsupported."
    )
    hbm_gib: float = Field(gt=0, le=1e6, description="HBM capacity, GiB.")
    hbm_bandwidth_tb_per_s: float = Field(gt=0, le=1e4, description="HBM bandwidth, TB/s.")
    tdp_w: float | None = Field(None, gt=0, description="Board power limit, W.")
    scale_up: ScaleUpPort | None = None
    host_link: str | None = Field(None, description="Links-catalog name, e.g. pcie5-x16.")
    measured_matmul_tflops: dict[Precision, float] = Field(
        default_factory=dict,
        description="Measured maximum achievable matmul rate (MAMF), TFLOP/s.",
    )
    mx_formats: bool = Field(
        False,
        description="Tensor cores scale MX block formats (MXFP8/MXFP4) natively (Blackwell).",
    )
    efficiency: ComputeEfficiency = Field(default_factory=ComputeEfficiency)

    @field_validator("peak_tflops", "measured_matmul_tflops")
    @classmethod
    def _positive_rates(cls, rates: dict[str, float]) -> dict[str, float]:
        for precision, value in rates.items():
            if not 0 < value <= MAX_PEAK_TFLOPS:
                raise ValueError(
                    f"{precision} rate must be in (0, {MAX_PEAK_TFLOPS:g}] TFLOP/s, got {value}"
                )
        return rates

    @property
    def hbm_bytes(self) -> float:
        return units.gib_to_bytes(self.hbm_gib)

    @property
    def hbm_bandwidth_bytes_per_s(self) -> float:
        return units.tb_per_s_to_bytes_per_s(self.hbm_bandwidth_tb_per_s)

    def peak_flops(self, precision: str) -> float:
        """Dense peak in FLOP/s; raises InfeasiblePlan if the chip lacks the precision."""
        from superscale.errors import InfeasiblePlan

        if precision not in self.peak_tflops:
            have = ", ".join(self.peak_tflops)
            raise InfeasiblePlan(
                f"chip '{self.name}' has no {precision} support (it supports: {have})"
            )
        return units.tflops_to_flops(self.peak_tflops[precision])

    def matmul_fraction(self, precision: str) -> float:
        """Large-GEMM fraction of peak: the catalog's figure, else measured/peak, else 0.75."""
        if self.efficiency.matmul_fraction is not None:
            return self.efficiency.matmul_fraction
        measured = self.measured_matmul_tflops.get(precision)  # type: ignore[call-overload]
        peak = self.peak_tflops.get(precision)  # type: ignore[call-overload]
        if measured and peak:
            return float(min(1.0, measured / peak))
        return 0.75


LinkKind = Literal["scale-up", "host", "scale-out"]


class Link(Sourced):
    """A kind of link or fabric: bandwidth per port and direction, latency per hop."""

    name: str
    display_name: str
    kind: LinkKind
    bandwidth_gb_per_s: float | None = Field(
        None, gt=0, description="Per port (NIC, lane group) per direction, GB/s."
    )
    bandwidth_gbit_per_s: float | None = Field(
        None, gt=0, description="Per port per direction, Gb/s (NIC speeds: 400)."
    )
    latency_us: float = Field(ge=0, description="One-way latency per hop, µs.")
    in_network_reduction: bool = Field(
        False, description="Switch-side reduction (NVLink SHARP / NVLS, InfiniBand SHARP)."
    )
    unified_memory: bool = Field(
        False, description="Load/store across GPUs in one address space over this fabric."
    )
    protocol_efficiency: float | None = Field(
        None,
        gt=0,
        le=1,
        description="Share of the link rate a bulk collective achieves (packet headers, "
        "protocol); default by kind: scale-up 0.80, host 0.80, scale-out 0.90.",
    )
    in_network_reduction_efficiency: float = Field(
        0.60,
        gt=0,
        le=1,
        description="Share of the link rate an in-switch reduction (NVLS/SHARP) achieves.",
    )

    @model_validator(mode="after")
    def _one_bandwidth(self) -> Link:
        if (self.bandwidth_gb_per_s is None) == (self.bandwidth_gbit_per_s is None):
            raise ValueError("give exactly one of bandwidth_gb_per_s, bandwidth_gbit_per_s")
        return self

    @property
    def bandwidth_bytes_per_s(self) -> float:
        if self.bandwidth_gb_per_s is not None:
            return units.gb_per_s_to_bytes_per_s(self.bandwidth_gb_per_s)
        assert self.bandwidth_gbit_per_s is not None  # guaranteed by _one_bandwidth
        return units.gbit_per_s_to_bytes_per_s(self.bandwidth_gbit_per_s)

    @property
    def latency_s(self) -> float:
        return units.us_to_s(self.latency_us)

    @property
    def efficiency(self) -> float:
        """Achieved share of the link rate for bulk transfers."""
        if self.protocol_efficiency is not None:
            return self.protocol_efficiency
        return {"scale-up": 0.80, "host": 0.80, "scale-out": 0.90}[self.kind]


def _resolve(kind: str, value: Any) -> Any:
    """Replace a catalog name by its entry; inline mappings pass through to validation."""
    if isinstance(value, str):
        from superscale.hardware import catalog

        lookup: dict[str, Callable[[], Any]] = {
            "chip": catalog.chips,
            "link": catalog.links,
            "system": catalog.systems,
        }
        return lookup[kind]().get(value)
    return value


class ScaleUpDomain(Spec):
    """The GPUs joined by one chip-to-chip fabric inside a system."""

    link: Link = Field(description="Links-catalog name of the fabric.")
    topology: Literal["switch", "full-mesh", "ring"] = Field(
        description="switch: any-to-any through switches; full-mesh: point-to-point links "
        "between every pair; ring: neighbours only."
    )
    gpus: int = Field(gt=0, le=MAX_GPUS, description="GPUs in one domain.")
    bandwidth_gb_per_s: float | None = Field(
        None, gt=0, description="Per GPU per direction, GB/s; default: the chip's scale_up."
    )

    _link = field_validator("link", mode="before")(lambda v: _resolve("link", v))


class NicSpec(Spec):
    """The scale-out NICs of one system."""

    link: Link = Field(description="Links-catalog name of the NIC type, e.g. ib-ndr-400g.")
    count: int = Field(gt=0, description="NICs per system.")

    _link = field_validator("link", mode="before")(lambda v: _resolve("link", v))


class System(Sourced):
    """A server or super-node: chips, its scale-up domains, NICs, cooling, space, power."""

    name: str
    display_name: str
    kind: Literal["board", "server", "super-node"]
    chip: Chip
    gpus: int = Field(gt=0)
    scale_up: ScaleUpDomain
    domain_link: Link | None = Field(
        None, description="Link joining scale-up domains inside the system (e.g. PCIe)."
    )
    nics: NicSpec
    cooling: Literal["air", "liquid"]
    rack_units: int | None = Field(None, gt=0, description="Height of a server, U.")
    cabinets: float | None = Field(None, gt=0, description="Cabinets a super-node fills.")
    power_kw: float | None = Field(None, gt=0, description="Maximum system power, kW.")

    _chip = field_validator("chip", mode="before")(lambda v: _resolve("chip", v))
    _dlink = field_validator("domain_link", mode="before")(lambda v: _resolve("link", v))

    @model_validator(mode="after")
    def _domains_tile_system(self) -> System:
        if self.gpus % self.scale_up.gpus:
            raise ValueError(
                f"gpus ({self.gpus}) must be a multiple of scale_up.gpus ({self.scale_up.gpus})"
            )
        if self.gpus > self.scale_up.gpus and self.domain_link is None:
            raise ValueError("a system with several scale-up domains needs a domain_link")
        if self.scale_up.bandwidth_gb_per_s is None and self.chip.scale_up is None:
            raise ValueError("scale_up.bandwidth_gb_per_s is needed: the chip has no scale_up")
        return self

    @property
    def domains(self) -> int:
        return self.gpus // self.scale_up.gpus

    @property
    def scale_up_bytes_per_s(self) -> float:
        """Scale-up bandwidth per GPU per direction, bytes/s."""
        if self.scale_up.bandwidth_gb_per_s is not None:
            return units.gb_per_s_to_bytes_per_s(self.scale_up.bandwidth_gb_per_s)
        assert self.chip.scale_up is not None  # checked in _domains_tile_system
        return self.chip.scale_up.bandwidth_bytes_per_s


class ScaleOut(Spec):
    """The network joining systems."""

    network: Link | None = Field(
        None, description="Links-catalog NIC/fabric name; default: the system's NICs."
    )
    topology: Literal["fat-tree", "rail-optimized", "rail-fat-tree", "dragonfly", "torus"] = Field(
        "rail-optimized",
        description="fat-tree: any NIC to any NIC through leaf and spine; rail-optimized "
        "(= rail-fat-tree): NIC i of every server on the same leaf (rail); dragonfly: groups "
        "of systems, non-blocking inside, joined all-to-all by global links (Kim et al. 2008); "
        "torus: systems on a wrap-around grid (torus_dims), neighbour links only.",
    )
    torus_dims: tuple[int, ...] | None = Field(
        None,
        min_length=1,
        max_length=6,
        description="torus: systems along each dimension, e.g. [4, 4, 4]; their product is "
        "cluster.count. A hypercube is a torus of 2s.",
    )
    torus_link_gb_per_s: float | None = Field(
        None,
        gt=0,
        le=1e6,
        description="torus: one neighbour link per direction, GB/s; default the system's NIC "
        "bandwidth split over its 2 x dimensions links (one per direction of each axis).",
    )
    dragonfly_group_systems: int = Field(
        16,
        gt=0,
        le=MAX_COUNT,
        description="dragonfly: systems per group (HPE Slingshot: a group is one or a few "
        "racks); default 16.",
    )
    global_links_per_group: int | None = Field(
        None,
        gt=0,
        description="dragonfly: global links leaving one group, each at the NIC rate, spread "
        "evenly over the other groups (minimal routing); default one per NIC in the group, "
        "the balanced dragonfly of Kim et al. 2008 (a = 2p = 2h). Fewer tapers it.",
    )
    oversubscription: float = Field(
        1.0,
        ge=1.0,
        le=1024,
        description="Downlink:uplink ratio at the leaf tier; 1 = non-blocking.",
    )
    pod_oversubscription: float = Field(
        1.0, ge=1.0, le=1024, description="Downlink:uplink ratio at the spine (pod) tier."
    )
    leaf_radix: int = Field(
        64, ge=4, description="Ports per leaf switch (64 for 400G Quantum-2 / Tomahawk-class)."
    )
    pod_gpus: int | None = Field(
        None, gt=0, description="GPUs under one spine block (pod); default from leaf_radix."
    )
    planes: int = Field(
        1,
        ge=1,
        le=64,
        description="Independent network planes (multi-plane fat-tree: DeepSeek-V3's 8 "
        "planes, Alibaba HPN's dual plane): each system's NICs split evenly over them, "
        "each plane is its own leaf-spine fabric, and traffic for a NIC of another plane "
        "first crosses the scale-up fabric to a GPU on that plane (PXN). 1 = one fabric.",
    )

    _net = field_validator("network", mode="before")(lambda v: _resolve("link", v))

    @model_validator(mode="after")
    def _torus_has_dims(self) -> ScaleOut:
        if self.topology == "torus" and self.torus_dims is None:
            raise ValueError("topology torus needs torus_dims, e.g. [4, 4, 4]")
        if self.torus_dims is not None and min(self.torus_dims) < 2:
            raise ValueError(f"torus_dims must each be >= 2, got {list(self.torus_dims)}")
        if self.planes > 1 and self.topology in {"dragonfly", "torus"}:
            raise ValueError(
                f"planes ({self.planes}) split a fat-tree or rail-optimized fabric; "
                f"topology '{self.topology}' has none (use planes: 1)"
            )
        return self


class Cluster(Spec):
    """`count` identical systems joined by a scale-out network."""

    name: str | None = None
    display_name: str | None = None
    system: System
    count: int = Field(gt=0, le=MAX_COUNT, description="How many systems.")
    gpus_per_system: int | None = Field(
        None,
        gt=0,
        description="GPUs used in each system; default all. Fewer takes a slice of each "
        "system (64 of an NVL72 rack's 72 GPUs, 2 trays, half a 128-GPU cube): the slice's "
        "GPUs keep their scale-up fabric and their NICs, and each slice still fills its "
        "cabinet.",
    )
    power_limit_w: float | None = Field(
        None,
        gt=0,
        description="Board power cap per GPU, W (nvidia-smi -pl; TorchTitan's H100 runs: 500); "
        "default the chip's TDP. Lowers the sustained clock by the power-clock model.",
    )
    scale_out: ScaleOut = Field(default_factory=ScaleOut)
    profile: str | None = Field(
        None,
        description="Efficiency profile the chip's compute times are read from: 'fitted' "
        "(the profile fitted from published component measurements, shipped for every "
        "catalog chip) or a path, relative to the scenario, to one 'superscale calibrate' "
        "wrote on a real device; default: the catalog's documented efficiency.",
    )
    source: str | None = None
    # Optional so inline clusters in scenarios need none; catalog presets mark guesses here.
    estimate: bool = Field(False, description="True when the preset is not a published cluster.")
    estimate_reason: str | None = Field(
        None, description="One line on what is assumed about the preset."
    )
    estimated_fields: tuple[str, ...] = Field(
        (), description="Which fields are estimates (empty with estimate=true means all)."
    )

    _system = field_validator("system", mode="before")(lambda v: _resolve("system", v))

    @model_validator(mode="before")
    @classmethod
    def _slice_systems(cls, data: Any) -> Any:
        """Replace the system by its `gpus_per_system` slice, so placement sees the slice."""
        used = data.get("gpus_per_system") if isinstance(data, dict) else None
        system = _given_system(data) if used is not None else None
        if system is None or not isinstance(used, int) or isinstance(used, bool):
            return data  # nothing to do, or field validation reports the bad value
        return {**data, "system": slice_system(system, used)}

    @model_validator(mode="before")
    @classmethod
    def _cap_power(cls, data: Any) -> Any:
        """Replace the chip by its power-capped self, so compute and facility both follow."""
        cap = data.get("power_limit_w") if isinstance(data, dict) else None
        system = _given_system(data) if cap is not None else None
        if system is None or isinstance(cap, bool) or not isinstance(cap, int | float):
            return data
        if not math.isfinite(cap):
            return data  # field validation reports the bad value
        chip = capped_chip(system.chip, float(cap))
        return {**data, "system": system.model_copy(update={"chip": chip})}

    @model_validator(mode="after")
    def _estimate_needs_reason(self) -> Cluster:
        if self.estimate and not self.estimate_reason:
            raise ValueError("estimate: true needs an estimate_reason (one line)")
        if self.estimated_fields and not self.estimate:
            raise ValueError("estimated_fields given but estimate is false")
        return self

    @model_validator(mode="after")
    def _torus_tiles_systems(self) -> Cluster:
        dims = self.scale_out.torus_dims
        torus = self.scale_out.topology == "torus" and dims is not None
        if torus and dims is not None and math.prod(dims) != self.count:
            raise ValueError(
                f"scale_out.torus_dims {list(dims)} hold {math.prod(dims)} systems, "
                f"but count is {self.count}"
            )
        nics, planes = self.system.nics.count, self.scale_out.planes
        if nics % planes:
            raise ValueError(
                f"scale_out.planes ({planes}) must divide the system's NICs ({nics}): "
                "each plane takes an equal share of them"
            )
        return self

    @model_validator(mode="after")
    def _bounded_gpus(self) -> Cluster:
        if self.system.gpus * self.count > MAX_GPUS:
            raise ValueError(
                f"cluster: {self.count:,} x {self.system.gpus} GPUs = "
                f"{self.system.gpus * self.count:,} GPUs exceeds the {MAX_GPUS:,} modelled"
            )
        return self

    @property
    def gpus(self) -> int:
        return self.system.gpus * self.count

    @property
    def chip(self) -> Chip:
        return self.system.chip

    @property
    def nic(self) -> Link:
        return self.scale_out.network or self.system.nics.link

    @property
    def nic_bytes_per_s_per_system(self) -> float:
        return self.nic.bandwidth_bytes_per_s * self.system.nics.count


def _given_system(data: dict[str, Any]) -> System | None:
    """A cluster mapping's system as a `System` (catalog name or inline), or None."""
    system = _resolve("system", data.get("system"))
    if isinstance(system, dict):
        system = System.model_validate(system)
    return system if isinstance(system, System) else None


IDLE_SHARE_OF_TDP = 0.11  # static (idle) power when a chip gives none: H100's 75 W of 700 W


def capped_clock_fraction(tdp_w: float, cap_w: float) -> float:
    """Clock a power cap leaves, as a share of the clock at TDP.

    CMOS dynamic power is α·C·V²·f, and across the DVFS range the voltage scales about with
    the frequency, so the dynamic part goes as f³ (Weste & Harris, "CMOS VLSI Design",
    Sec. 5.1); the static part (`IDLE_SHARE_OF_TDP` of TDP) stays. A chip that already
    runs at its limit in sustained training therefore keeps ((cap − idle)/(TDP − idle))^(1/3)
    of its clock.
    """
    idle = IDLE_SHARE_OF_TDP * tdp_w
    return float(((cap_w - idle) / (tdp_w - idle)) ** (1.0 / 3.0))


def capped_chip(chip: Chip, cap_w: float) -> Chip:
    """`chip` under a board power cap: TDP = the cap, sustained clock scaled down.

    Raises:
        ValueError: a chip without a TDP, or a cap above it or at its idle power.
    """
    if chip.tdp_w is None:
        raise ValueError(f"cluster.power_limit_w: chip '{chip.name}' has no tdp_w to cap")
    idle = IDLE_SHARE_OF_TDP * chip.tdp_w
    if not idle < cap_w <= chip.tdp_w:
        raise ValueError(
            f"cluster.power_limit_w must be in {idle:.0f}..{chip.tdp_w:.0f} W for "
            f"{chip.name} (its idle power to its TDP), got {cap_w:g}"
        )
    if cap_w == chip.tdp_w:
        return chip
    fraction = capped_clock_fraction(chip.tdp_w, cap_w)
    efficiency = chip.efficiency.model_copy(
        update={"sustained_clock_fraction": chip.efficiency.sustained_clock_fraction * fraction}
    )
    return chip.model_copy(update={"tdp_w": cap_w, "efficiency": efficiency})


def slice_system(system: System, gpus: int) -> System:
    """The first `gpus` GPUs of `system`, with their share of NICs, power and its cabinet.

    Raises:
        ValueError: a slice larger than the system, or one that splits a scale-up domain
            of a multi-domain system.
    """
    if gpus == system.gpus:
        return system
    domain = system.scale_up.gpus
    if gpus > system.gpus:
        raise ValueError(
            f"cluster.gpus_per_system ({gpus}) exceeds the {system.gpus} GPUs of {system.name}"
        )
    if gpus > domain and gpus % domain:
        raise ValueError(
            f"cluster.gpus_per_system ({gpus}) must be a multiple of {system.name}'s "
            f"{domain}-GPU scale-up domain, or fit inside one"
        )
    share = gpus / system.gpus
    return system.model_copy(
        update={
            "name": f"{system.name}/{gpus}",
            "display_name": f"{system.display_name} ({gpus}-GPU slice)",
            "gpus": gpus,
            "scale_up": system.scale_up.model_copy(update={"gpus": min(domain, gpus)}),
            "nics": system.nics.model_copy(
                update={"count": max(1, round(system.nics.count * share))}
            ),
            "power_kw": None if system.power_kw is None else system.power_kw * share,
        }
    )
