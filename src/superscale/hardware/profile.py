"""Measured efficiency profiles: what a device's kernels actually reach, by shape and size.

Every accurate performance model in this field is a formula skeleton plus measured tables: a
datasheet peak is not what a kernel gets (Calculon's efficiency tables; the MAMF method of
stas00/ml-engineering). A profile holds, for one device, the achieved

- matmul rate by GEMM shape (m, n, k) and precision,
- memory bandwidth by transfer size (bytes read + written by one kernel),
- fused causal attention rate (forward + backward) by key length and head size,
- collective bus bandwidth by collective, payload size and group size, where measured,

and interpolates between the measured points: GEMM rates by inverse-distance weighting of
log(rate) over the nearest measured shapes in (log m, log n, log k) space, the other tables
piecewise-linearly in log-log space. Queries outside the measured range are clamped to its
edge. Rates come from `superscale calibrate` (superscale.calibrate) or any tool that writes
the same YAML; a catalog chip may ship one as `catalog/profiles/<chip>.yaml`.

A device with no catalog entry (a CPU, a new accelerator) is described by its profile alone:
`to_chip` synthesizes a `Chip` whose peak is the best measured matmul rate and whose memory
bandwidth is the best measured copy rate, carrying the profile (`ProfiledChip`).
"""

from __future__ import annotations

import math
import re
from functools import cached_property, lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, ValidationError, model_validator

from superscale.errors import SpecError
from superscale.hardware.spec import Chip, ComputeEfficiency, Precision
from superscale.spec import Spec, spec_error_from

PROFILE_FORMAT = "superscale-profile/1"
MAX_PROFILE_BYTES = 4 * 1024 * 1024
NEAREST_SHAPES = 8  # corners of the enclosing cell on a full (m, n, k) grid
CollectiveName = Literal["all_reduce", "all_gather", "reduce_scatter", "all_to_all"]


class DeviceInfo(Spec):
    """Which device was measured, with what software, when and where."""

    name: str = Field(description="Device name as the runtime reports it.")
    kind: Literal["cpu", "cuda", "fitted"] = Field(
        description="torch device type measured; fitted: fitted from published component "
        "measurements (python -m superscale.calibrate.fit), not measured here."
    )
    index: int | None = Field(None, ge=0, description="Device index (cuda:N), if any.")
    count: int = Field(1, gt=0, description="Devices of this kind present on the host.")
    memory_gib: float = Field(gt=0, description="Device memory (CPU: host RAM), GiB.")
    host: str | None = Field(None, description="Host name the measurement ran on.")
    date: str = Field(description="ISO 8601 date and time of the measurement.")
    software: dict[str, str] = Field(
        default_factory=dict, description="Versions: torch, cuda/hip, python, superscale."
    )


class MatmulPoint(Spec):
    """One GEMM shape C[m, n] = A[m, k] · B[k, n] and its achieved rate."""

    m: int = Field(gt=0)
    n: int = Field(gt=0)
    k: int = Field(gt=0)
    tflops: float = Field(gt=0, description="Achieved rate, 2mnk / median time, TFLOP/s.")


class MemoryPoint(Spec):
    """One device-to-device copy and its achieved bandwidth."""

    bytes: int = Field(gt=0, description="Bytes one kernel reads plus writes.")
    gb_per_s: float = Field(gt=0, description="Achieved bandwidth, GB/s (read + write).")


class AttentionPoint(Spec):
    """One causal fused attention (forward + backward) and its achieved rate."""

    seq_len: int = Field(gt=0, description="Query = key length, tokens.")
    head_dim: int = Field(gt=0, description="Per-head width.")
    tflops: float = Field(
        gt=0,
        description="Work done (causal: the unmasked half, superscale's flash convention) of "
        "forward + backward / median time, TFLOP/s.",
    )


class CollectivePoint(Spec):
    """One collective on a group of ranks and its bus bandwidth (nccl-tests' busbw)."""

    collective: CollectiveName
    bytes: int = Field(gt=0, description="Payload per rank (nccl-tests' size), bytes.")
    ranks: int = Field(gt=1, description="Group size.")
    bus_gb_per_s: float = Field(gt=0, description="Bus bandwidth, GB/s.")


class Provenance(Spec):
    """Where one component of a fitted profile comes from, and how well it fits its rows."""

    component: Literal["gemm", "attention", "memory", "collective"]
    precision: str = Field(
        description="Precision of the component ('-' for memory; for a collective, which "
        "one on how many ranks, e.g. 'all_reduce x8')."
    )
    rows: int = Field(ge=0, description="Component measurement rows used (0: an estimate).")
    median_abs_error_pct: float | None = Field(
        None, ge=0, description="Median |fitted/measured - 1| over those rows, %."
    )
    method: str = Field(description="How the points were made from the rows, in a line.")
    sources: tuple[str, ...] = Field((), description="The rows' sources.")
    estimate: bool = Field(False, description="True when no row of this chip was used.")


def _no_duplicates(points: tuple[Any, ...], key: Any, where: str) -> None:
    seen: set[Any] = set()
    for point in points:
        k = key(point)
        if k in seen:
            raise ValueError(f"{where}: point {k} is measured twice")
        seen.add(k)


class EfficiencyProfile(Spec):
    """Achieved kernel rates of one device, with interpolation between measured points."""

    format: Literal["superscale-profile/1"] = Field(description="Schema tag and version.")
    device: DeviceInfo
    matmul: dict[Precision, tuple[MatmulPoint, ...]] = Field(
        description="Measured GEMMs per precision."
    )
    memory: tuple[MemoryPoint, ...] = Field(description="Measured copies by transfer size.")
    attention: dict[Precision, tuple[AttentionPoint, ...]] = Field(
        default_factory=dict, description="Measured fused attention per precision."
    )
    collectives: tuple[CollectivePoint, ...] = Field(
        (), description="Measured collectives (empty on a single device)."
    )
    notes: str | None = Field(None, description="How the figures were taken.")
    provenance: tuple[Provenance, ...] = Field(
        (), description="Per component: rows used, fit error, sources (fitted profiles)."
    )

    @model_validator(mode="after")
    def _enough_points(self) -> EfficiencyProfile:
        if not self.matmul:
            raise ValueError("matmul: a profile needs at least one measured GEMM")
        for precision, points in self.matmul.items():
            if not points:
                raise ValueError(f"matmul.{precision}: no points (drop the precision instead)")
            _no_duplicates(points, lambda p: (p.m, p.n, p.k), f"matmul.{precision}")
        if not self.memory:
            raise ValueError("memory: a profile needs at least one measured copy")
        _no_duplicates(self.memory, lambda p: p.bytes, "memory")
        for precision, attn in self.attention.items():
            if not attn:
                raise ValueError(f"attention.{precision}: no points (drop the precision)")
            _no_duplicates(attn, lambda p: (p.seq_len, p.head_dim), f"attention.{precision}")
        _no_duplicates(self.collectives, lambda p: (p.collective, p.bytes, p.ranks), "collectives")
        return self

    # --- interpolation ---------------------------------------------------------------------

    @cached_property
    def _gemm_tables(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        tables: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for precision, points in self.matmul.items():
            logs = np.log([[p.m, p.n, p.k] for p in points], dtype=float)
            rates = np.log([p.tflops * 1e12 for p in points])
            tables[precision] = (logs, rates)
        return tables

    def gemm_flops_per_s(self, precision: str, shape: tuple[int, int, int]) -> float | None:
        """Achieved FLOP/s of a GEMM of `shape` (m, n, k); None if `precision` is unmeasured.

        Inverse-distance weighting (power 2) of log(rate) over the `NEAREST_SHAPES` nearest
        measured shapes in (log m, log n, log k), after clamping each dimension to the measured
        range; a measured shape returns its own rate.
        """
        table = self._gemm_tables.get(precision)
        if table is None:
            return None
        logs, rates = table
        query = np.log(np.maximum(np.asarray(shape, dtype=float), 1.0))
        query = np.clip(query, logs.min(axis=0), logs.max(axis=0))
        return _idw(logs, rates, query, NEAREST_SHAPES)

    def gemm_flops_per_s_array(self, precision: str, m: Any, n: Any, k: Any) -> np.ndarray | None:
        """`gemm_flops_per_s` over many shapes at once: m, n and k broadcast together
        (serving tabulates a GEMM over every token count); None if unmeasured."""
        table = self._gemm_tables.get(precision)
        if table is None:
            return None
        logs, rates = table
        dims = np.broadcast_arrays(*(np.asarray(d, dtype=float) for d in (m, n, k)))
        query = np.log(np.maximum(np.stack([d.ravel() for d in dims], axis=1), 1.0))
        query = np.clip(query, logs.min(axis=0), logs.max(axis=0))
        return _idw_many(logs, rates, query, NEAREST_SHAPES).reshape(dims[0].shape)

    @cached_property
    def _memory_table(self) -> tuple[np.ndarray, np.ndarray]:
        points = sorted(self.memory, key=lambda p: p.bytes)
        return (
            np.log([float(p.bytes) for p in points]),
            np.log([p.gb_per_s * 1e9 for p in points]),
        )

    def memory_bytes_per_s(self, transfer_bytes: float) -> float:
        """Achieved bandwidth of a kernel moving `transfer_bytes` (read + write), bytes/s."""
        sizes, rates = self._memory_table
        x = math.log(max(transfer_bytes, 1.0))
        return math.exp(float(np.interp(x, sizes, rates)))  # np.interp clamps at the ends

    def memory_bytes_per_s_array(self, transfer_bytes: Any) -> np.ndarray:
        """`memory_bytes_per_s` for each transfer size of an array, bytes/s."""
        sizes, rates = self._memory_table
        x = np.log(np.maximum(np.asarray(transfer_bytes, dtype=float), 1.0))
        out: np.ndarray = np.exp(np.interp(x, sizes, rates))
        return out

    @property
    def best_memory_bytes_per_s(self) -> float:
        return max(p.gb_per_s for p in self.memory) * 1e9

    def attention_flops_per_s(
        self, precision: str, seq_len: float, head_dim: int | None = None
    ) -> float | None:
        """Achieved FLOP/s of causal fused attention; None if `precision` is unmeasured.

        Piecewise-linear in log(seq_len) per measured head size, clamped; with `head_dim`
        None (the op does not say), the geometric mean over the measured head sizes.
        """
        points = self.attention.get(precision)  # type: ignore[call-overload]
        if not points:
            return None
        dims = sorted({p.head_dim for p in points})
        if head_dim is not None:
            dims = [min(dims, key=lambda d: (abs(math.log(d / head_dim)), d))]
        x = math.log(max(seq_len, 1.0))
        logs = []
        for dim in dims:
            row = sorted((p for p in points if p.head_dim == dim), key=lambda p: p.seq_len)
            xs = np.log([float(p.seq_len) for p in row])
            ys = np.log([p.tflops * 1e12 for p in row])
            logs.append(float(np.interp(x, xs, ys)))
        return math.exp(sum(logs) / len(logs))

    def collective_bus_bytes_per_s(
        self, collective: str, payload_bytes: float, ranks: int
    ) -> float | None:
        """Measured bus bandwidth of `collective` at this size on the nearest group size.

        None when the collective was not measured (a single-device profile).
        """
        points = [p for p in self.collectives if p.collective == collective]
        if not points:
            return None
        nearest = min({p.ranks for p in points}, key=lambda r: (abs(r - ranks), r))
        row = sorted((p for p in points if p.ranks == nearest), key=lambda p: p.bytes)
        xs = np.log([float(p.bytes) for p in row])
        ys = np.log([p.bus_gb_per_s * 1e9 for p in row])
        return math.exp(float(np.interp(math.log(max(payload_bytes, 1.0)), xs, ys)))

    @property
    def peak_tflops(self) -> dict[str, float]:
        """Best measured matmul rate per precision, TFLOP/s."""
        return {prec: max(p.tflops for p in pts) for prec, pts in self.matmul.items()}

    # --- a chip for a device the catalog does not know -------------------------------------

    def to_chip(self, name: str | None = None) -> ProfiledChip:
        """A chip described by this profile alone (peaks and bandwidth as measured)."""
        dev = self.device
        chip_name = name or _kebab(f"{dev.kind}-{dev.name}")
        return ProfiledChip.model_validate(
            {
                "name": chip_name,
                "display_name": f"{dev.name} (calibrated {dev.date[:10]})",
                "vendor": dev.name.split()[0] if dev.name.split() else dev.kind,
                "peak_tflops": {k: round(v, 6) for k, v in self.peak_tflops.items()},
                "hbm_gib": dev.memory_gib,
                "hbm_bandwidth_tb_per_s": self.best_memory_bytes_per_s / 1e12,
                "measured_matmul_tflops": self.peak_tflops,
                "efficiency": ComputeEfficiency(matmul_fraction=1.0),
                "source": f"superscale calibrate on {dev.host or 'unknown host'}, {dev.date}",
                "profile": self,
            }
        )


class ProfiledChip(Chip):
    """A chip whose compute cost model reads a measured `EfficiencyProfile`."""

    profile: EfficiencyProfile = Field(description="Measured rates that replace the defaults.")


def _idw(points: np.ndarray, values: np.ndarray, query: np.ndarray, nearest: int) -> float:
    d2 = np.sum((points - query) ** 2, axis=1)
    best = int(np.argmin(d2))
    if d2[best] < 1e-12:
        return math.exp(float(values[best]))
    idx = np.argsort(d2)[:nearest]
    weights = 1.0 / d2[idx]
    return math.exp(float(np.dot(weights, values[idx]) / weights.sum()))


def _idw_many(
    points: np.ndarray, values: np.ndarray, queries: np.ndarray, nearest: int
) -> np.ndarray:
    """`_idw` for each row of `queries`, computed together (distinct rows once)."""
    unique, inverse = np.unique(queries, axis=0, return_inverse=True)
    d2 = np.sum((points[None, :, :] - unique[:, None, :]) ** 2, axis=2)
    idx = np.argsort(d2, axis=1)[:, :nearest]
    near = np.take_along_axis(d2, idx, axis=1)
    exact = near[:, 0] < 1e-12
    weights = 1.0 / np.where(exact[:, None], 1.0, near)
    blended = np.sum(weights * values[idx], axis=1) / weights.sum(axis=1)
    logs = np.where(exact, values[idx[:, 0]], blended)
    out: np.ndarray = np.exp(logs)[inverse.ravel()]
    return out


def _kebab(text: str) -> str:
    out = "".join(c.lower() if c.isalnum() else "-" for c in text)
    return "-".join(part for part in out.split("-") if part)


# --- loading ---------------------------------------------------------------------------------


def parse_profile(data: Any, *, origin: str = "profile") -> EfficiencyProfile:
    """Validate an already-parsed mapping into a profile.

    Raises:
        SpecError: naming the origin, the field path and what is wrong.
    """
    if not isinstance(data, dict):
        raise SpecError(f"{origin}: a profile must be a mapping, got {type(data).__name__}")
    if data.get("format") != PROFILE_FORMAT:
        raise SpecError(
            f"{origin}: format must be '{PROFILE_FORMAT}', got {data.get('format')!r} "
            "(write one with 'superscale calibrate')"
        )
    try:
        return EfficiencyProfile.model_validate(data)
    except ValidationError as exc:
        err = spec_error_from(exc)
        raise SpecError(f"{origin}: {err}") from None


def load_profile(path: str | Path) -> EfficiencyProfile:
    """Read and validate a profile YAML file.

    Raises:
        SpecError: unreadable, malformed or incomplete file, with its path in the message.
    """
    from superscale.readers import Bounds, read_yaml

    # A profile is mostly measured points: many more values than a scenario holds.
    bounds = Bounds(max_nodes=1_000_000)
    data = read_yaml(path, limit_bytes=MAX_PROFILE_BYTES, what="calibration profile", bounds=bounds)
    if data is None:
        raise SpecError(f"{path} is empty; a profile needs format, device and rates")
    return parse_profile(data, origin=str(path))


_CATALOG_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{0,63}")


def profile_path(chip_name: str) -> Path | None:
    """The catalog's profile file for `chip_name`, if one ships with the package (only a
    lowercase-kebab catalog name can name one: never a path)."""
    if _CATALOG_NAME.fullmatch(chip_name) is None or ".." in chip_name:
        return None
    base = resources.files("superscale.hardware.catalog").joinpath("profiles")
    candidate = Path(str(base)) / f"{chip_name}.yaml"
    return candidate if candidate.is_file() else None


@lru_cache(maxsize=64)  # bounded: inline chips bring names of their own
def catalog_profile(chip_name: str) -> EfficiencyProfile | None:
    """The catalog's profile for `chip_name`, loaded once; None if it has none."""
    path = profile_path(chip_name)
    return load_profile(path) if path is not None else None


def profile_of(chip: Chip) -> EfficiencyProfile | None:
    """The profile the compute cost model uses for `chip`: its own, the catalog's, or None."""
    if isinstance(chip, ProfiledChip):
        return chip.profile
    return catalog_profile(chip.name)


def efficiency_source(chip: Chip) -> str:
    """One line saying where `chip`'s compute efficiency comes from (for `show`)."""
    if isinstance(chip, ProfiledChip):
        dev = chip.profile.device
        if dev.kind == "fitted":
            return f"profile fitted from component measurements ({dev.date})"
        return f"measured profile ({dev.name}, {dev.date})"
    path = profile_path(chip.name)
    if path is not None:
        return f"measured profile {path.name} (catalog/profiles)"
    return "documented defaults (catalog `efficiency:`; no measured profile)"


FITTED = "fitted"


def fitted_profile_path(chip_name: str) -> Path | None:
    """The shipped component-fitted profile of catalog chip `chip_name`, if there is one."""
    if _CATALOG_NAME.fullmatch(chip_name) is None or ".." in chip_name:
        return None
    base = resources.files("superscale.hardware.catalog").joinpath("fitted")
    candidate = Path(str(base)) / f"{chip_name}.yaml"
    return candidate if candidate.is_file() else None


def named_profile(name: str, chip_name: str, base_dir: Path | None) -> EfficiencyProfile:
    """The profile a scenario names (`cluster.profile`): 'fitted' or a file path.

    Raises:
        SpecError: no fitted profile for this chip, or an unreadable or invalid file.
    """
    if name == FITTED:
        path = fitted_profile_path(chip_name)
        if path is None:
            base = resources.files("superscale.hardware.catalog").joinpath("fitted")
            known = sorted(p.name[:-5] for p in base.iterdir() if p.name.endswith(".yaml"))
            raise SpecError(
                f"cluster.profile: no fitted profile for chip '{chip_name}' (fitted: "
                f"{', '.join(known)}); give a profile file from 'superscale calibrate'"
            )
        return load_profile(path)
    path = Path(name)
    if base_dir is not None and not path.is_absolute():
        path = base_dir / path
    try:
        return load_profile(path)
    except SpecError as exc:
        raise SpecError(f"cluster.profile: {exc}") from None


def with_profile(chip: Chip, profile: EfficiencyProfile) -> ProfiledChip:
    """`chip` with the same datasheet figures, its compute times read from `profile`."""
    return ProfiledChip.model_validate({**chip.model_dump(), "profile": profile})
