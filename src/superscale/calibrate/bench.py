"""Microbenchmarks of one torch device, written as an `EfficiencyProfile`.

What is timed, and how (the MAMF method of stas00/ml-engineering; nccl-tests for
collectives): every kernel is run `warmup` times, then timed `repeats` times, each repeat on
fresh random inputs (torch.randn from a seeded generator; never zeros, which some hardware
multiplies faster and which caches compress), and the median is kept. On a CUDA-API device
(NVIDIA CUDA, AMD HIP, MetaX MACA builds of PyTorch) each repeat is bracketed by CUDA events
and synchronized; on the CPU by `time.perf_counter`. Rates:

- GEMM (m, n, k): 2mnk / t, t the mean over the three operand layouts of a training step.
- copy of N bytes into a new tensor: 2N / t (read + write), keyed by 2N, the bytes moved.
- causal fused attention (scaled_dot_product_attention, forward + backward): the work
  superscale charges it, 4·b·h·s²·d·min(1, (s + 128)/2s) · (1 + 2.5), over t.
- collectives (several devices only): nccl-tests' bus bandwidth.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import re
import socket
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from superscale.errors import SpecError
from superscale.hardware.profile import PROFILE_FORMAT, EfficiencyProfile, parse_profile
from superscale.training.layer import FLASH_BLOCK

ATTENTION_BACKWARD_FACTOR = 2.5  # lower.py: flash backward does 2.5× the forward's work
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
_DEVICE_RE = re.compile(r"^(cpu|cuda)(?::(\d+))?$")

Progress = Callable[[int, int, str], None]  # (done, total, label)


@dataclass(frozen=True, slots=True, kw_only=True)
class Grid:
    """Which points are measured, and how often."""

    precisions: tuple[str, ...]
    matmul_dims: tuple[int, ...]
    memory_bytes: tuple[int, ...]
    attention_seq_lens: tuple[int, ...]
    head_dims: tuple[int, ...]
    attention_tokens: int  # batch · seq per attention point
    attention_heads: int
    collective_bytes: tuple[int, ...]
    warmup: int
    repeats: int


def default_grid(device: torch.device, *, quick: bool) -> Grid:
    """The measurement grid for a device type; `quick` keeps a CPU run to seconds."""
    kib, mib = 1024, 1024 * 1024
    if device.type == "cuda":
        return Grid(
            precisions=("bf16", "fp16"),
            matmul_dims=(512, 2048, 8192) if quick else (256, 512, 1024, 2048, 4096, 8192),
            memory_bytes=tuple(2**p for p in range(16, 32, 3 if quick else 1)),
            attention_seq_lens=(512, 2048, 8192) if quick else (512, 1024, 2048, 4096, 8192),
            head_dims=(64, 128),
            attention_tokens=16384,
            attention_heads=16,
            collective_bytes=tuple(2**p for p in range(16, 31, 4 if quick else 2)),
            warmup=3 if quick else 5,
            repeats=5 if quick else 15,
        )
    return Grid(
        precisions=("bf16",),
        matmul_dims=(64, 256, 1024) if quick else (64, 256, 1024, 4096),
        memory_bytes=tuple(2**p for p in range(12, 28, 3 if quick else 1)),
        attention_seq_lens=(128, 512) if quick else (128, 256, 512, 1024, 2048),
        head_dims=(64, 128) if not quick else (64,),
        attention_tokens=2048,
        attention_heads=4,
        collective_bytes=(*(kib * 4**p for p in range(0, 8, 2 if quick else 1)), 64 * mib),
        warmup=1 if quick else 2,
        repeats=3 if quick else 7,
    )


def resolve_device(spec: str) -> torch.device:
    """'cpu', 'cuda' or 'cuda:N' as a torch device that exists here.

    Raises:
        SpecError: unknown device string, or a CUDA device that is not present.
    """
    match = _DEVICE_RE.match(spec.strip().lower())
    if match is None:
        raise SpecError(f"--device: unknown device '{spec}' (allowed: cpu, cuda, cuda:N)")
    kind, index = match.group(1), match.group(2)
    if kind == "cpu":
        if index not in (None, "0"):
            raise SpecError(f"--device: '{spec}': the CPU is one device (use cpu)")
        return torch.device("cpu")
    if not torch.cuda.is_available():
        build = torch.version.cuda or torch.version.hip
        why = "no CUDA device is visible" if build else "this PyTorch build has no CUDA support"
        raise SpecError(f"--device {spec}: {why} (torch {torch.__version__}); use --device cpu")
    count = torch.cuda.device_count()
    idx = int(index) if index is not None else torch.cuda.current_device()
    if idx >= count:
        raise SpecError(f"--device {spec}: only {count} CUDA device(s) (cuda:0..cuda:{count - 1})")
    return torch.device("cuda", idx)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return str(torch.cuda.get_device_name(device))
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{name} ({torch.get_num_threads()} threads)"


def device_info(device: torch.device, *, now: _dt.datetime | None = None) -> dict[str, Any]:
    """Name, memory, software versions, host and date of the measured device."""
    software = {"torch": torch.__version__, "python": platform.python_version()}
    for key in ("cuda", "hip"):
        version = getattr(torch.version, key, None)
        if version:
            software[key] = str(version)
    try:
        from importlib.metadata import version as _version

        software["superscale"] = _version("superscale")
    except Exception:  # pragma: no cover - not installed as a distribution
        pass
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        memory = props.total_memory
        count = torch.cuda.device_count()
    else:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        count = 1
    stamp = (now or _dt.datetime.now(_dt.UTC)).replace(microsecond=0).isoformat()
    return {
        "name": device_name(device),
        "kind": device.type,
        "index": device.index if device.type == "cuda" else None,
        "count": count,
        "memory_gib": round(memory / 2**30, 3),
        "host": socket.gethostname(),
        "date": stamp,
        "software": software,
    }


class Timer:
    """Median time of a kernel over repeats, each on fresh inputs, after warm-up."""

    def __init__(self, device: torch.device, *, warmup: int, repeats: int) -> None:
        self.device = device
        self.warmup = warmup
        self.repeats = repeats

    def median_s(self, make_inputs: Callable[[], Any], run: Callable[[Any], Any]) -> float:
        """Median seconds of `run(make_inputs())`; input creation is never timed."""
        for _ in range(self.warmup):
            run(make_inputs())
        self.synchronize()
        times = [self._once(make_inputs(), run) for _ in range(self.repeats)]
        return statistics.median(times)

    def synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def _once(self, inputs: Any, run: Callable[[Any], Any]) -> float:
        if self.device.type == "cuda":
            start = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
            end = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
            self.synchronize()  # inputs are ready before the clock starts
            start.record()
            run(inputs)
            end.record()
            end.synchronize()
            return float(start.elapsed_time(end)) / 1e3
        begin = time.perf_counter()
        run(inputs)
        return time.perf_counter() - begin


def _generator(device: torch.device, seed: int) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def _randn(
    shape: Sequence[int], dtype: torch.dtype, device: torch.device, gen: Any
) -> torch.Tensor:
    return torch.randn(*shape, dtype=dtype, device=device, generator=gen)


def attention_work_flops(batch: int, heads: int, seq_len: int, head_dim: int) -> float:
    """Forward + backward work superscale charges a causal fused attention (layer.py)."""
    counted = 4.0 * batch * heads * seq_len * seq_len * head_dim
    done = counted * min(1.0, (seq_len + FLASH_BLOCK) / (2.0 * seq_len))
    return done * (1.0 + ATTENTION_BACKWARD_FACTOR)


def _time_matmul(timer: Timer, gen: Any, shape: tuple[int, int, int], dtype: torch.dtype) -> float:
    """Mean time of one (m, n, k) GEMM over the three layouts a training step runs it in.

    Forward x·Wᵀ (B transposed), data gradient (plain), weight gradient (A transposed): on
    some backends (the CPU's oneDNN) a transposed operand is markedly slower.
    """
    m, n, k = shape
    device = timer.device

    def make() -> list[tuple[torch.Tensor, torch.Tensor]]:
        def rnd(rows: int, cols: int) -> torch.Tensor:
            return _randn((rows, cols), dtype, device, gen)

        return [(rnd(m, k), rnd(n, k).t()), (rnd(m, k), rnd(k, n)), (rnd(k, m).t(), rnd(k, n))]

    def run(pairs: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        for a, b in pairs:
            torch.matmul(a, b)

    return timer.median_s(make, run) / 3.0


def _time_copy(timer: Timer, gen: Any, elements: int) -> float:
    """Copy into a freshly allocated tensor, as a training kernel writes a new output.

    On GPUs the caching allocator makes the allocation free; on the CPU large outputs come
    from the operating system and their first touch (page faults) costs as much as the copy.
    """
    device = timer.device

    def make() -> torch.Tensor:
        return _randn((elements,), torch.float32, device, gen)

    def run(src: torch.Tensor) -> None:
        src.clone()

    return timer.median_s(make, run)


def _time_attention(
    timer: Timer, gen: Any, shape: tuple[int, int, int, int], dtype: torch.dtype
) -> float:
    device = timer.device

    def make() -> tuple[torch.Tensor, ...]:
        q, k, v = (_randn(shape, dtype, device, gen).requires_grad_() for _ in range(3))
        return q, k, v, _randn(shape, dtype, device, gen)

    def run(x: tuple[torch.Tensor, ...]) -> None:
        out = F.scaled_dot_product_attention(x[0], x[1], x[2], is_causal=True)
        out.backward(x[3])  # type: ignore[no-untyped-call]

    return timer.median_s(make, run)


def measure(
    device: torch.device,
    *,
    quick: bool = False,
    seed: int = 0,
    ranks: int = 1,
    grid: Grid | None = None,
    progress: Progress | None = None,
) -> EfficiencyProfile:
    """Run the microbenchmarks on `device` and return its profile.

    Args:
        device: a torch device (resolve_device).
        quick: the small grid (seconds on a CPU).
        seed: seeds the input generator.
        ranks: processes for the collective benchmarks (1: none).
        grid: overrides the default grid.
        progress: called as (done, total, label) after each point.
    """
    g = grid or default_grid(device, quick=quick)
    gen = _generator(device, seed)
    timer = Timer(device, warmup=g.warmup, repeats=g.repeats)
    dims = g.matmul_dims
    shapes = [(m, n, k) for m in dims for n in dims for k in dims]
    attn = [(s, d) for s in g.attention_seq_lens for d in g.head_dims]
    total = len(g.precisions) * (len(shapes) + len(attn)) + len(g.memory_bytes)
    total += len(g.collective_bytes) if ranks > 1 else 0
    done = 0

    def step(label: str) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total, label)

    matmul: dict[str, list[dict[str, Any]]] = {}
    attention: dict[str, list[dict[str, Any]]] = {}
    with torch.no_grad():
        for prec in g.precisions:
            matmul[prec] = []
            for m, n, k in shapes:
                t = _time_matmul(timer, gen, (m, n, k), _DTYPES[prec])
                matmul[prec].append({"m": m, "n": n, "k": k, "tflops": 2.0 * m * n * k / t / 1e12})
                step(f"matmul {prec} {m}x{n}x{k}")
        memory = []
        copy_timer = Timer(device, warmup=g.warmup + 2, repeats=max(g.repeats, 11))  # cheap
        for size in g.memory_bytes:
            elements = max(1, size // 4)
            t = _time_copy(copy_timer, gen, elements)
            moved = 2 * elements * 4
            memory.append({"bytes": moved, "gb_per_s": moved / t / 1e9})
            step(f"copy {moved / 2**20:.3g} MiB")
    for prec in g.precisions:
        attention[prec] = []
        for seq, dim in attn:
            batch = max(1, g.attention_tokens // seq)
            shape = (batch, g.attention_heads, seq, dim)
            t = _time_attention(timer, gen, shape, _DTYPES[prec])
            work = attention_work_flops(batch, g.attention_heads, seq, dim)
            attention[prec].append({"seq_len": seq, "head_dim": dim, "tflops": work / t / 1e12})
            step(f"attention {prec} s={seq} d={dim}")
    collectives: list[dict[str, Any]] = []
    if ranks > 1:
        from superscale.calibrate.collective import measure_collectives

        collectives = measure_collectives(
            device, ranks=ranks, sizes=g.collective_bytes, warmup=g.warmup, repeats=g.repeats
        )
        for _ in g.collective_bytes:
            step("collectives")
    data = {
        "format": PROFILE_FORMAT,
        "device": device_info(device),
        "matmul": matmul,
        "memory": memory,
        "attention": attention,
        "collectives": collectives,
        "notes": f"superscale calibrate{' --quick' if quick else ''}: median of {g.repeats} "
        f"repeats after {g.warmup} warm-up, fresh torch.randn inputs (seed {seed}); "
        + ("CUDA events" if device.type == "cuda" else "perf_counter"),
    }
    return parse_profile(data, origin="measured profile")
