"""Collective bus bandwidth with torch.distributed, one process per rank (nccl-tests' method).

gloo between CPU processes, nccl between GPUs (one GPU per rank). Each size is all-reduced
and all-gathered `warmup` times, then timed `repeats` times on fresh random tensors between
barriers; the slowest rank's time counts, and the median over repeats is kept. Bus bandwidth
follows nccl-tests (doc/PERFORMANCE.md): all-reduce algbw · 2(n−1)/n, all-gather
algbw · (n−1)/n, with algbw = size / time and size the full output.
"""

from __future__ import annotations

import socket
import statistics
import time
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _worker(
    rank: int,
    ranks: int,
    port: int,
    kind: str,
    sizes: tuple[int, ...],
    warmup: int,
    repeats: int,
    queue: Any,
) -> None:
    backend = "nccl" if kind == "cuda" else "gloo"
    device = torch.device("cuda", rank) if kind == "cuda" else torch.device("cpu")
    if kind == "cuda":
        torch.cuda.set_device(device)
    else:
        torch.set_num_threads(1)
    dist.init_process_group(
        backend, init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=ranks
    )
    gen = torch.Generator(device=device).manual_seed(1000 + rank)
    results = []
    try:
        for size in sizes:
            elements = max(ranks, size // 4 // ranks * ranks)
            for name in ("all_reduce", "all_gather"):
                times = []
                for i in range(warmup + repeats):
                    x = torch.randn(elements, device=device, generator=gen)
                    if name == "all_gather":
                        chunk = x[: elements // ranks]
                        out = torch.empty(elements, device=device)
                    if kind == "cuda":
                        torch.cuda.synchronize(device)
                    dist.barrier()
                    begin = time.perf_counter()
                    if name == "all_reduce":
                        dist.all_reduce(x)
                    else:
                        dist.all_gather_into_tensor(out, chunk)
                    if kind == "cuda":
                        torch.cuda.synchronize(device)
                    elapsed = torch.tensor([time.perf_counter() - begin], dtype=torch.float64)
                    if kind == "cuda":
                        elapsed = elapsed.to(device)
                    dist.all_reduce(elapsed, op=dist.ReduceOp.MAX)
                    if i >= warmup:
                        times.append(float(elapsed.item()))
                t = statistics.median(times)
                nbytes = elements * 4
                factor = 2 * (ranks - 1) / ranks if name == "all_reduce" else (ranks - 1) / ranks
                results.append(
                    {
                        "collective": name,
                        "bytes": nbytes,
                        "ranks": ranks,
                        "bus_gb_per_s": nbytes / t * factor / 1e9,
                    }
                )
        if rank == 0:
            queue.put(results)
    finally:
        dist.destroy_process_group()


def measure_collectives(
    device: torch.device, *, ranks: int, sizes: tuple[int, ...], warmup: int, repeats: int
) -> list[dict[str, Any]]:
    """Bus bandwidth of all-reduce and all-gather on `ranks` processes, per size."""
    ctx = mp.get_context("spawn")
    queue = ctx.SimpleQueue()
    args = (ranks, _free_port(), device.type, tuple(sizes), warmup, repeats, queue)
    mp.start_processes(  # type: ignore[attr-defined,no-untyped-call]
        _worker, args=args, nprocs=ranks, join=True, start_method="spawn"
    )
    result: list[dict[str, Any]] = queue.get()
    return result
