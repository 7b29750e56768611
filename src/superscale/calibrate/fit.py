"""Fit each chip's compute-efficiency parameters from the component measurements.

    python -m superscale.calibrate.fit [--chip NAME] [--json] [--out FILE]

Reads the shipped component tables (`calibrate/data/components`, a copy of the project's
reference pack) and, per catalog chip:

- GEMM: the large-shape fraction of the dense peak f and the fixed time t0 of every GEMM
  kernel (t = max(FLOPs / (peak · f), bytes / HBM) + t0; `GemmModel`), per precision,
  from every dense GEMM row with a shape (cuBLASLt and hipBLASLt sweeps, DeepGEMM,
  FlagPerf; MAMF best shapes where a precision has nothing else, scaled to sustained
  clocks by `sustained_fraction`): f and t0 on a grid, minimising the mean
  |log(predicted/measured)|, the error as the median |predicted/measured − 1| over the rows;
- fused attention: the fraction of the 16-bit peak that FlashAttention forward + backward
  reaches (FlashAttention's own FLOP convention, which is superscale's flash convention);
- HBM streaming: the achieved fraction of the datasheet bandwidth.

Each figure comes with the rows it used and its fit error, and beside it the value the
catalog uses now (for GEMMs, matmul fraction × sustained clock fraction), so a gap between
a component measurement and the catalog shows. Nothing here reads an end-to-end training
or serving row. `--out` writes the fits as YAML (with provenance) for review.

`--profiles DIR` writes each chip's efficiency profile (`<chip>.yaml`), in the format
`superscale calibrate` writes from a real device (`superscale-profile/1`, device kind
`fitted`), with a provenance entry per component: rows used, median fit error, sources.
The points are made from the fits (GEMMs on a grid of shapes from f and t0, HBM as the
fitted fraction plus the catalog's per-kernel overhead) or are the measured rows
themselves (attention: the best kernel's causal forward + backward rate per sequence
length and head size). A chip without rows borrows a documented analogue's fractions
(`ANALOGUES`), or keeps the catalog's defaults, and that entry says `estimate`. A scenario
uses one with `cluster.profile: fitted` (the shipped copies in
`hardware/catalog/fitted/`) or a path; a profile measured with `superscale calibrate`
replaces it the same way.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import statistics
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from superscale.calibrate.components import component_rows
from superscale.collectives.measured import MIN_POINTS
from superscale.hardware.catalog import chips
from superscale.hardware.profile import PROFILE_FORMAT, EfficiencyProfile, parse_profile
from superscale.hardware.spec import Chip

# The component tables' chip labels -> catalog chips (PCIe and other variants left out).
CHIP_LABELS = {
    "A100": "a100-sxm-80g",
    "A100 SXM": "a100-sxm-80g",
    "H100 SXM": "h100-sxm",
    "H100": "h100-sxm",
    "H200": "h200-sxm",
    "H800": "h800-sxm",
    "B200": "b200",
    "B300": "b300",
    "GB200": "gb200",
    "MI300X": "mi300x",
    "MI325X": "mi325x",
    "MI355X": "mi355x",
    "Gaudi 3": "gaudi3",
    "Ascend 910B": "ascend-910b",
    "MetaX C500": "c500",
    "MetaX C550": "c550",
}
# Chips with no rows of a component borrow the fractions of the same silicon or family.
ANALOGUES = {
    "h800-sxm": "h100-sxm",  # H100 silicon, NVLink cut
    "h20": "h100-sxm",  # Hopper, cut-down compute: fractions of peak assumed alike
    "h200-sxm": "h100-sxm",  # H100 silicon with more HBM
    "b300": "b200",
    "gb300": "gb200",
    "mi325x": "mi300x",  # same CDNA 3 die, more HBM
    "ascend-910c": "ascend-910b",  # two 910B-class dies
    "c500": "c550",
    "c600": "c550",
}
# Chips without attention rows of their own that take another's fused-attention fraction
# of the 16-bit peak (same tensor-core generation, the same kernels)
ATTENTION_DONORS = {"gb200": "b200", "b300": "b200", "gb300": "b200"}
FLASH_BACKWARD_WORK = 2.5  # backward FLOPs over forward (FlashAttention's convention)
HEADLINE_SEQ_LEN = 8192  # where a headline rate without a stated shape is placed
GRID_DIMS = (16, 64, 256, 1024, 4096, 16384)  # GEMM shapes a fitted profile lists
MEMORY_SIZES = tuple(2**e for e in range(12, 33, 2))  # 4 KiB .. 4 GiB per kernel
# A best-shape MAMF row times 100 iterations after 50 warm-up ones, about a second: the chip
# has not yet reached its power and thermal steady state. The cloud sweeps (Azure's) run
# 10,000 warm-up iterations first. Where a chip has both kinds at one precision, its best
# sustained rate over its short-run rate is its sustained fraction (GB200 fp8 0.80, H100
# 0.99, H200 0.94); a chip with short-run rows only takes its own pair's fraction, else that
# of the chip named here (same silicon and power class), else none (said in the method).
SUSTAINED_DONORS = {
    "b200": "gb200",  # Blackwell at 1,000 W; GB200 runs 1,200 W and measured 0.80
    "b300": "gb200",
    "gb300": "gb200",
    "h800-sxm": "h100-sxm",
    "h20": "h100-sxm",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class ComponentFit:
    """One fitted parameter of one chip, with its provenance and error."""

    chip: str
    component: str  # gemm, attention, memory
    precision: str
    rows: int
    fitted: dict[str, float]
    median_abs_error_pct: float
    catalog: dict[str, float]
    sources: tuple[str, ...]
    note: str = ""  # how the fit was made, where more than a fit of the rows


def _precision(dtype: str) -> str | None:
    text = dtype.lower()
    for name in ("fp8", "fp4", "bf16", "fp16", "tf32", "fp32", "int8"):
        if text.startswith(name):
            return name
    return None


def _float(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) and value > 0 else None


def _median_error(pairs: list[tuple[float, float]]) -> float:
    return 100.0 * statistics.median(abs(p / m - 1.0) for p, m in pairs)


def _short_run(row: dict[str, str]) -> bool:
    """A best-shape MAMF row: timed before the chip reaches its sustained clocks."""
    return "MAMF" in row["value_kind"]


def _sustained(row: dict[str, str]) -> bool:
    return "10,000 warmup" in row["clock_power_notes"]


def _gemm_rows(chip: Chip) -> list[tuple[str, tuple[int, int, int], float, str, bool]]:
    """(precision, shape, TFLOP/s, source, short-run) of the chip's dense GEMM rows."""
    out = []
    for row in component_rows("gemm"):
        if CHIP_LABELS.get(row["chip"]) != chip.name or row["groups"] not in ("", "1"):
            continue
        if "claim" in row["value_kind"]:
            continue
        dims = [_float(row[k]) for k in ("m", "n", "k")]
        rate, precision = _float(row["achieved_tflops"]), _precision(row["dtype"])
        if rate is None or precision is None or any(d is None for d in dims):
            continue
        shape = (int(dims[0] or 0), int(dims[1] or 0), int(dims[2] or 0))
        out.append((precision, shape, rate, row["source"], _short_run(row)))
    return out


def own_sustained_fraction(chip: Chip) -> float | None:
    """Best sustained over best short-run GEMM rate at a precision the chip has both of
    (the median over such precisions), or None."""
    ratios = []
    rows = [r for r in component_rows("gemm") if CHIP_LABELS.get(r["chip"]) == chip.name]
    for precision in sorted({p for r in rows if (p := _precision(r["dtype"]))}):
        at = [r for r in rows if _precision(r["dtype"]) == precision]
        short = [x for r in at if _short_run(r) and (x := _float(r["achieved_tflops"]))]
        held = [x for r in at if _sustained(r) and (x := _float(r["achieved_tflops"]))]
        if short and held:
            ratios.append(max(held) / max(short))
    return statistics.median(ratios) if ratios else None


def sustained_fraction(chip: Chip) -> tuple[float, str]:
    """The fraction a short-run rate keeps when sustained, and where it comes from."""
    own = own_sustained_fraction(chip)
    if own is not None:
        return own, f"{chip.name}'s own sustained/short-run pair"
    donor = SUSTAINED_DONORS.get(chip.name)
    if donor is not None:
        ratio = own_sustained_fraction(chips().get(donor))
        if ratio is not None:
            return ratio, f"{donor}'s sustained/short-run pair"
    return 1.0, "no sustained/short-run pair for this chip: the short-run rate as measured"


# The GEMM model the fit uses: a GEMM of (m, n, k) takes
#   t = max(2mnk / (peak · f), bytes / HBM) + t0
# with f the large-shape fraction of the dense peak, bytes its operands at the input dtype
# plus a 16-bit output, HBM the chip's streaming rate, and t0 the fixed time every GEMM
# kernel pays (launch, pipeline fill, the last partial wave of tiles): a 1024³ GEMM is
# latency-bound on every chip swept (H100 fp8: 274 TFLOP/s, 2048³: 1,011), a skinny
# (802816, 192, 768) one memory-bound, and neither follows a per-dimension efficiency.
INPUT_BYTES = {
    "fp4": 0.5,
    "fp8": 1.0,
    "int8": 1.0,
    "bf16": 2.0,
    "fp16": 2.0,
    "tf32": 4.0,
    "fp32": 4.0,
}
OUTPUT_BYTES = 2.0
OVERHEADS_US = tuple(0.25 * i for i in range(61))  # t0 searched over 0 .. 15 µs
FRACTIONS = tuple(0.2 + 0.0025 * i for i in range(321))  # f searched over 0.2 .. 1.0


@dataclass(frozen=True, slots=True, kw_only=True)
class GemmModel:
    """A chip's fitted GEMM time at one precision (the model above)."""

    peak_flops_per_s: float
    fraction: float
    overhead_s: float
    hbm_bytes_per_s: float
    input_bytes: float

    def flops_per_s(self, shape: tuple[float, float, float]) -> float:
        m, n, k = shape
        flops = 2.0 * m * n * k
        moved = (m * k + k * n) * self.input_bytes + m * n * OUTPUT_BYTES
        seconds = max(flops / (self.peak_flops_per_s * self.fraction), moved / self.hbm_bytes_per_s)
        return flops / (seconds + self.overhead_s)


def _hbm_bytes_per_s(chip: Chip) -> float:
    """The chip's streaming rate: its own fitted memory fraction, else the catalog's."""
    fit = fit_memory(chip)
    fraction = fit[0].fitted["memory_fraction"] if fit else chip.efficiency.memory_fraction
    return chip.hbm_bandwidth_bytes_per_s * fraction


def _fit_fraction_and_overhead(
    points: list[tuple[tuple[int, int, int], float]], base: GemmModel
) -> tuple[float, float, float]:
    """(f, t0 s, mean |log error|) minimising the mean |log(predicted / measured)| over the
    rows, so a latency- or memory-bound shape counts as much as a large one."""
    import numpy as np

    m, n, k = (np.array([float(s[i]) for s, _ in points]) for i in range(3))
    measured = np.array([rate for _, rate in points]) * 1e12
    flops = 2.0 * m * n * k
    memory_s = ((m * k + k * n) * base.input_bytes + m * n * OUTPUT_BYTES) / base.hbm_bytes_per_s
    f = np.array(FRACTIONS)[:, None, None]
    t0 = np.array(OVERHEADS_US)[None, :, None] * 1e-6
    seconds = np.maximum(flops / (base.peak_flops_per_s * f), memory_s) + t0
    error = np.abs(np.log(flops / seconds / measured)).mean(axis=2)
    i, j = np.unravel_index(int(np.argmin(error)), error.shape)
    return FRACTIONS[i], OVERHEADS_US[j] * 1e-6, float(error[i, j])


def fit_gemm(chip: Chip) -> list[ComponentFit]:
    """f and t0 per precision from the chip's dense GEMM rows with a shape: the sustained
    rows where a precision has them, else its short-run rows times the sustained fraction.
    One row (a best shape) fixes f only, with the catalog's per-kernel overhead as t0."""
    by_precision: dict[str, list[tuple[tuple[int, int, int], float, str, bool]]] = {}
    for precision, shape, rate, source, short in _gemm_rows(chip):
        by_precision.setdefault(precision, []).append((shape, rate, source, short))
    hbm = _hbm_bytes_per_s(chip)
    eff = chip.efficiency
    fits = []
    for precision, every in sorted(by_precision.items()):
        peak = chip.peak_tflops.get(precision)  # type: ignore[call-overload]
        if not peak or precision not in INPUT_BYTES:
            continue
        held = [(s, r, src) for s, r, src, short in every if not short]
        note, scale = "", 1.0
        if held:
            points = held
        else:
            scale, why = sustained_fraction(chip)
            points = [(s, r * scale, src) for s, r, src, _ in every]
            note = f"short-run rows x {scale:.3f} ({why})"
        base = GemmModel(
            peak_flops_per_s=peak * 1e12,
            fraction=1.0,
            overhead_s=eff.kernel_overhead_us * 1e-6,
            hbm_bytes_per_s=hbm,
            input_bytes=INPUT_BYTES[precision],
        )
        if len(points) == 1:  # a best shape: the plateau less the catalog's per-kernel time
            (m, n, k), rate, _ = points[0]
            flops = 2.0 * m * n * k
            compute_s = max(flops / (rate * 1e12) - base.overhead_s, flops / base.peak_flops_per_s)
            f, t0 = flops / compute_s / base.peak_flops_per_s, base.overhead_s
        else:
            f, t0, _ = _fit_fraction_and_overhead([(s, r) for s, r, _ in points], base)
        model = replace(base, fraction=f, overhead_s=t0)
        pairs = [(model.flops_per_s(s), r * 1e12) for s, r, _ in points]
        fits.append(
            ComponentFit(
                chip=chip.name,
                component="gemm",
                precision=precision,
                rows=len(points),
                fitted={"large_gemm_fraction": round(f, 4), "gemm_overhead_us": round(t0 * 1e6, 2)},
                median_abs_error_pct=round(_median_error(pairs), 2),
                catalog={
                    "large_gemm_fraction": round(
                        chip.matmul_fraction(precision) * eff.sustained_clock_fraction, 4
                    ),
                    "gemm_overhead_us": eff.kernel_overhead_us,
                },
                sources=tuple(sorted({s for _, _, s in points})),
                note=note,
            )
        )
    return fits


def gemm_model(chip: Chip, fit: ComponentFit) -> GemmModel:
    """The GEMM model a fit describes, on `chip` (its peak and HBM rate)."""
    return GemmModel(
        peak_flops_per_s=chip.peak_tflops[fit.precision] * 1e12,  # type: ignore[index]
        fraction=fit.fitted["large_gemm_fraction"],
        overhead_s=fit.fitted["gemm_overhead_us"] * 1e-6,
        hbm_bytes_per_s=_hbm_bytes_per_s(chip),
        input_bytes=INPUT_BYTES[fit.precision],
    )


def _fraction_fit(
    chip: Chip, component: str, field: str, points: list[tuple[float, str]], *, precision: str
) -> list[ComponentFit]:
    """The median of measured fractions `points` ((fraction, source) rows) as `field`."""
    if not points:
        return []
    fractions = [x for x, _ in points]
    fraction = statistics.median(fractions)
    return [
        ComponentFit(
            chip=chip.name,
            component=component,
            precision=precision,
            rows=len(points),
            fitted={field: round(fraction, 4)},
            median_abs_error_pct=round(_median_error([(fraction, x) for x in fractions]), 2),
            catalog={field: getattr(chip.efficiency, field)},
            sources=tuple(sorted({s for _, s in points})),
        )
    ]


def fit_attention(chip: Chip) -> list[ComponentFit]:
    """FlashAttention forward + backward as a fraction of the 16-bit peak."""
    peak = chip.peak_tflops.get("bf16")
    if not peak:
        return []
    points = [
        (rate / peak, row["source"])
        for row in component_rows("attention")
        if CHIP_LABELS.get(row["chip"]) == chip.name
        and row["pass"] == "fwd+bwd"
        and (rate := _float(row["achieved_tflops"])) is not None
    ]
    return _fraction_fit(chip, "attention", "attention_fraction", points, precision="bf16")


def fit_memory(chip: Chip) -> list[ComponentFit]:
    """Achieved share of the datasheet HBM bandwidth (as each source counts bytes)."""
    points = [
        (pct / 100.0, row["source"])
        for row in component_rows("memory")
        if CHIP_LABELS.get(row["chip"]) == chip.name
        and (pct := _float(row["pct_of_spec"])) is not None
        and pct <= 100.0
    ]
    return _fraction_fit(chip, "memory", "memory_fraction", points, precision="-")


def fit_all(chip_names: list[str] | None = None) -> list[ComponentFit]:
    """Every fit for the named catalog chips (default: all of them)."""
    catalog = chips()
    names = chip_names if chip_names is not None else list(catalog.names())
    fits: list[ComponentFit] = []
    for name in names:
        chip = catalog.get(name)
        fits += fit_gemm(chip) + fit_attention(chip) + fit_memory(chip)
    return fits


def _rounded(value: float) -> float:
    """Five significant figures: the fits are not better than that."""
    return float(f"{value:.5g}")


def _own_or_analogue(
    fits: list[ComponentFit], chip: Chip, component: str, precision: str
) -> tuple[ComponentFit | None, bool]:
    """The chip's own fit of `component`, else its analogue's; and whether it borrowed."""
    for fit in fits:
        if fit.chip == chip.name and fit.component == component and fit.precision == precision:
            return fit, False
    donor = ANALOGUES.get(chip.name)
    if donor is not None:
        for fit in fits:
            if fit.chip == donor and fit.component == component and fit.precision == precision:
                return fit, True
    return None, True


def _provenance(
    fit: ComponentFit | None, borrowed: bool, *, component: str, precision: str, method: str
) -> dict[str, object]:
    if fit is None:
        return {
            "component": component,
            "precision": precision,
            "rows": 0,
            "method": f"{method}; no rows for this chip or an analogue: catalog defaults",
            "estimate": True,
        }
    return {
        "component": component,
        "precision": precision,
        "rows": 0 if borrowed else fit.rows,
        "median_abs_error_pct": None if borrowed else fit.median_abs_error_pct,
        "method": f"{method}; fractions borrowed from {fit.chip}" if borrowed else method,
        "sources": list(fit.sources),
        "estimate": borrowed,
    }


# nccl-tests rows that name the algorithm they forced (NVLS turned off) measure a choice
# NCCL would not make; a profile carries what the library picks by itself
_FORCED_ALGORITHM = ("NCCL_NVLS_ENABLE=0", "NVLS off")


def _collective_points(chip: Chip) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """The chip's nccl-tests rows of one whole node, as profile points (the best bus
    bandwidth per collective, size and rank count, NCCL's own algorithm), and a provenance
    entry per (collective, ranks) curve with enough sizes to price (`MIN_POINTS`)."""
    best: dict[tuple[str, int, int], float] = {}
    sources: dict[tuple[str, int], set[str]] = {}
    for r in component_rows("collectives"):
        busbw = _float(r["busbw_GBps"])
        size = _float(r["message_bytes"])
        if (
            CHIP_LABELS.get(r["chip"]) != chip.name
            or r["num_nodes"] != "1"
            or r["op"] not in ("all_reduce", "all_gather", "reduce_scatter")
            or busbw is None
            or size is None
            or any(flag in r["algorithm"] for flag in _FORCED_ALGORITHM)
        ):
            continue
        key = (r["op"], int(size), int(r["num_gpus"]))
        best[key] = max(best.get(key, 0.0), busbw)
        sources.setdefault((r["op"], int(r["num_gpus"])), set()).add(r["source"])
    curves: dict[tuple[str, int], int] = {}
    for op, _, ranks in best:
        curves[(op, ranks)] = curves.get((op, ranks), 0) + 1
    priced = {key for key, n in curves.items() if n >= MIN_POINTS}
    points: list[dict[str, object]] = [
        {"collective": op, "bytes": size, "ranks": ranks, "bus_gb_per_s": _rounded(bw)}
        for (op, size, ranks), bw in sorted(best.items())
        if (op, ranks) in priced
    ]
    provenance: list[dict[str, object]] = [
        {
            "component": "collective",
            "precision": f"{op} x{ranks}",
            "rows": curves[(op, ranks)],
            "method": f"nccl-tests bus bandwidth of {ranks} GPUs of one node at "
            f"{curves[(op, ranks)]} sizes, the best row per size with NCCL's own choice; "
            "prices groups of that size inside one system",
            "sources": sorted(sources[(op, ranks)]),
            "estimate": False,
        }
        for op, ranks in sorted(priced)
    ]
    return points, provenance


def _attention_points(chip: Chip) -> list[dict[str, float]]:
    """The best measured causal fwd+bwd rate per (seq, head dim) of this chip (or, without
    causal rows, the non-causal ones: the flash convention counts work done either way)."""
    rows = [
        r
        for r in component_rows("attention")
        if CHIP_LABELS.get(r["chip"]) == chip.name
        and r["pass"] == "fwd+bwd"
        and _float(r["achieved_tflops"]) is not None
        and _float(r["seq_len"]) is not None
        and _float(r["head_dim"]) is not None
    ]
    causal = [r for r in rows if r["causal"].lower() == "true"]
    best: dict[tuple[int, int], float] = {}
    for r in causal or rows:
        key = (int(float(r["seq_len"])), int(float(r["head_dim"])))
        best[key] = max(best.get(key, 0.0), float(r["achieved_tflops"]))
    return [{"seq_len": s, "head_dim": d, "tflops": t} for (s, d), t in sorted(best.items())]


def headline_attention(chip_name: str) -> tuple[float, tuple[str, ...]] | None:
    """Forward + backward TFLOP/s from a chip's dense-prefill forward and backward headline
    rates of one kernel (shape not stated): 3.5 / (1/F + 2.5/B), the flash convention's
    work over the two passes' time; with its sources."""
    rates: dict[tuple[str, str], float] = {}
    sources: dict[str, str] = {}
    for r in component_rows("attention"):
        rate = _float(r["achieved_tflops"])
        if CHIP_LABELS.get(r["chip"]) != chip_name or rate is None or r["dtype"] != "bf16":
            continue
        if "dense" in r["kernel"] and r["pass"] in ("prefill fwd", "prefill bwd"):
            kernel = r["kernel"].split(" (")[0]
            rates[(kernel, r["pass"])] = rate
            sources[kernel] = r["source"]
    for kernel in sorted(sources):
        fwd, bwd = rates.get((kernel, "prefill fwd")), rates.get((kernel, "prefill bwd"))
        if fwd and bwd:
            work = 1.0 + FLASH_BACKWARD_WORK
            return work / (1.0 / fwd + FLASH_BACKWARD_WORK / bwd), (sources[kernel],)
    return None


def _headline_points(
    chip: Chip,
) -> tuple[list[dict[str, float]], str, tuple[str, ...], bool] | None:
    """Attention points from a headline fwd/bwd pair, the chip's own or its donor's scaled
    by the 16-bit peaks: (points, method, sources, borrowed)."""
    donor = chip.name
    found = headline_attention(donor)
    if found is None and chip.name in ATTENTION_DONORS:
        donor = ATTENTION_DONORS[chip.name]
        found = headline_attention(donor)
    if found is None:
        return None
    rate, sources = found
    scale = chip.peak_tflops["bf16"] / chips().get(donor).peak_tflops["bf16"]
    tflops = _rounded(rate * scale)
    method = (
        f"{donor}'s dense-prefill forward and backward headline rates (shape not stated), "
        f"combined by the flash convention: {rate:.0f} TFLOP/s"
        + (f", x {scale:.3g} for {chip.name}'s 16-bit peak" if donor != chip.name else "")
        + f", at every key length (placed at {HEADLINE_SEQ_LEN})"
    )
    points = [{"seq_len": HEADLINE_SEQ_LEN, "head_dim": 128, "tflops": tflops}]
    return points, method, sources, donor != chip.name


def fitted_profile(chip: Chip, fits: list[ComponentFit], *, date: str) -> EfficiencyProfile:
    """`chip`'s efficiency profile made from the component fits (see the module doc)."""
    eff = chip.efficiency
    matmul: dict[str, list[dict[str, float]]] = {}
    provenance: list[dict[str, object]] = []
    for precision in sorted(chip.peak_tflops):
        fit, borrowed = _own_or_analogue(fits, chip, "gemm", precision)
        if fit is None:
            continue  # the formula path prices this precision from the catalog
        model = gemm_model(chip, fit)
        matmul[precision] = [
            {"m": m, "n": n, "k": k, "tflops": _rounded(model.flops_per_s((m, n, k)) / 1e12)}
            for m in GRID_DIMS
            for n in GRID_DIMS
            for k in GRID_DIMS
        ]
        f, t0_us = fit.fitted["large_gemm_fraction"], fit.fitted["gemm_overhead_us"]
        method = (
            f"grid of {len(GRID_DIMS)}^3 shapes from t = max(FLOPs/(peak·{f:g}), bytes/HBM) "
            f"+ {t0_us:g} us"
        )
        if fit.rows == 1:
            method += " (one best-shape row fixes f only: t0 is the catalog's per-kernel time)"
        if fit.note:
            method += f"; {fit.note}"
        provenance.append(
            _provenance(fit, borrowed, component="gemm", precision=precision, method=method)
        )
    if not matmul:  # a profile needs one GEMM table: the catalog's large-shape 16-bit rate
        precision = "bf16" if "bf16" in chip.peak_tflops else next(iter(chip.peak_tflops))
        model = GemmModel(
            peak_flops_per_s=chip.peak_tflops[precision] * 1e12,
            fraction=chip.matmul_fraction(precision),
            overhead_s=eff.kernel_overhead_us * 1e-6,
            hbm_bytes_per_s=_hbm_bytes_per_s(chip),
            input_bytes=INPUT_BYTES.get(precision, 2.0),
        )
        matmul[precision] = [
            {"m": m, "n": n, "k": k, "tflops": _rounded(model.flops_per_s((m, n, k)) / 1e12)}
            for m in GRID_DIMS
            for n in GRID_DIMS
            for k in GRID_DIMS
        ]
        provenance.append(
            _provenance(None, True, component="gemm", precision=precision, method="grid")
        )
    fit, borrowed = _own_or_analogue(fits, chip, "memory", "-")
    fraction = fit.fitted["memory_fraction"] if fit is not None else eff.memory_fraction
    rate = chip.hbm_bandwidth_bytes_per_s * fraction
    overhead_s = eff.kernel_overhead_us * 1e-6
    memory = [
        {"bytes": size, "gb_per_s": _rounded(size / (size / rate + overhead_s) / 1e9)}
        for size in MEMORY_SIZES
    ]
    method = (
        f"fraction {fraction:g} of {chip.hbm_bandwidth_tb_per_s:g} TB/s plus the catalog's "
        f"{eff.kernel_overhead_us:g} us per kernel"
    )
    provenance.append(_provenance(fit, borrowed, component="memory", precision="-", method=method))
    attention: dict[str, list[dict[str, float]]] = {}
    points = _attention_points(chip)
    if points:
        attention["bf16"] = points
        attn_fit, _ = _own_or_analogue(fits, chip, "attention", "bf16")
        entry = _provenance(
            attn_fit,
            False,
            component="attention",
            precision="bf16",
            method=f"{len(points)} measured points, best kernel per shape",
        )
        provenance.append({**entry, "rows": len(points)})
    elif (headline := _headline_points(chip)) is not None:
        points, method, sources, borrowed = headline
        attention["bf16"] = points
        provenance.append(
            {
                "component": "attention",
                "precision": "bf16",
                "rows": 2,
                "method": method,
                "sources": list(sources),
                "estimate": borrowed,
            }
        )
    else:
        provenance.append(
            _provenance(
                None,
                True,
                component="attention",
                precision="bf16",
                method="no attention rows: the catalog's attention fraction",
            )
        )
    collectives, collective_provenance = _collective_points(chip)
    provenance.extend(collective_provenance)
    return parse_profile(
        {
            "format": PROFILE_FORMAT,
            "device": {
                "name": chip.display_name,
                "kind": "fitted",
                "memory_gib": chip.hbm_gib,
                "date": date,
                "software": {"superscale": "calibrate.fit", "components": "shared/reference"},
            },
            "matmul": matmul,
            "memory": memory,
            "attention": attention,
            "collectives": collectives,
            "notes": "Fitted from published component measurements "
            "(python -m superscale.calibrate.fit --profiles); not measured on a device.",
            "provenance": provenance,
        },
        origin=f"fitted profile of {chip.name}",
    )


def write_profiles(
    directory: Path, chip_names: list[str] | None = None, *, date: str
) -> list[Path]:
    """Write `<chip>.yaml` fitted profiles into `directory`; the paths written."""
    import yaml

    catalog = chips()
    names = chip_names if chip_names is not None else list(catalog.names())
    fits = fit_all(sorted(set(names) | {ANALOGUES[n] for n in names if n in ANALOGUES}))
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name in names:
        profile = fitted_profile(catalog.get(name), fits, date=date)
        path = directory / f"{name}.yaml"
        data = profile.model_dump(mode="json", exclude_none=True)
        text = yaml.safe_dump(data, sort_keys=False, width=100, allow_unicode=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def _table(fits: list[ComponentFit]) -> str:
    lines = [
        f"{'chip':<14} {'component':<10} {'prec':<5} {'rows':>4} {'fitted':<44} "
        f"{'|err|':>6}  catalog"
    ]
    for f in fits:
        fitted = ", ".join(f"{k} {v:g}" for k, v in f.fitted.items())
        catalog = ", ".join(f"{k} {v:g}" for k, v in f.catalog.items())
        lines.append(
            f"{f.chip:<14} {f.component:<10} {f.precision:<5} {f.rows:>4} {fitted:<44} "
            f"{f.median_abs_error_pct:5.1f}%  {catalog}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m superscale.calibrate.fit", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--chip", action="append", help="a catalog chip (repeatable)")
    parser.add_argument("--json", action="store_true", help="print the fits as JSON")
    parser.add_argument("--out", help="also write the fits as YAML to this file")
    parser.add_argument(
        "--profiles",
        metavar="DIR",
        help="also write each chip's fitted efficiency profile as DIR/<chip>.yaml",
    )
    args = parser.parse_args(argv)
    from superscale.errors import SpecError

    try:
        fits = fit_all(args.chip)
        if args.profiles:
            today = datetime.date.today().isoformat()
            for path in write_profiles(Path(args.profiles), args.chip, date=today):
                print(f"wrote {path}", file=sys.stderr)
    except SpecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: --profiles {args.profiles}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps([asdict(f) for f in fits]))
    else:
        print(_table(fits))
    if args.out:
        import yaml

        with open(args.out, "w", encoding="utf-8") as handle:
            yaml.safe_dump([asdict(f) for f in fits], handle, sort_keys=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
