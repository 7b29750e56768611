"""An nccl-tests-style sweep of predicted collective performance (`superscale collective`
and the service's /collective)."""

from __future__ import annotations

from typing import Any

from superscale.collectives.base import BUS_FACTOR
from superscale.collectives.tuner import CommModel
from superscale.errors import SpecError

DTYPES = {"float": 4, "half": 2, "bfloat16": 2, "int8": 1, "double": 8}


def sweep(
    model: CommModel,
    op: str,
    *,
    gpus: int,
    min_bytes: int,
    max_bytes: int,
    factor: int,
    algorithm: str,
    elem_bytes: int,
) -> dict[str, Any]:
    """Predicted time, algbw and busbw per size and algorithm (nccl-tests' definitions)."""
    table = model.costs(op, gpus, 1)
    names = sorted(table) if algorithm == "auto" else [algorithm]
    if algorithm != "auto" and algorithm not in table:
        raise SpecError(
            f"--algo: '{algorithm}' does not run {op} on {gpus} GPUs of this "
            f"cluster (allowed: auto, {', '.join(sorted(table))})"
        )
    rows = []
    size = max(elem_bytes, min_bytes - min_bytes % elem_bytes)
    while size <= max_bytes:
        entry: dict[str, Any] = {"size_bytes": size, "count": size // elem_bytes, "algos": {}}
        for name in names:
            t = table[name].time_s(size)
            algbw = size / t / 1e9
            entry["algos"][name] = {
                "time_us": t * 1e6,
                "algbw_gb_per_s": algbw,
                "busbw_gb_per_s": algbw * BUS_FACTOR[op](gpus),
            }
        entry["best"] = model.chosen({n: table[n] for n in names}, size)[0]
        rows.append(entry)
        size *= factor
    return {"op": op, "gpus": gpus, "algorithms": names, "rows": rows}
