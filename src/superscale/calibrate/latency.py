"""Fit the collective library's fixed latencies from nccl-tests' small messages.

    python -m superscale.calibrate.latency

`collectives.base.LAUNCH_S` (launch and protocol setup of one collective) and `STEP_S`
(synchronisation per latency step, on top of the link's own latency) price what a
collective costs before any byte moves. Below 1 MiB that is nearly all of an
all-reduce's time, so the nccl-tests rows there measure them. The rows
(`collectives.csv`): every all-reduce of at most 1 MiB on a whole 8-GPU node that the
component check prices (`validate.components.collective_checks`) — the Azure AI
Benchmarking Guide's sweeps on ND A100 v4, ND H100 v5 and ND H200 v5, 1 KiB to 1 MiB,
33 rows — on the same catalog systems (dgx-a100, dgx-h100, hgx-h200).

Each row is priced by the collectives themselves (`Topology(launch_s=…, step_s=…)`),
with the algorithm the tuner picks (NVLS on the H100 and H200, whose rows say NVLS; the
double binary tree on the A100) and its link latencies from the links catalog, the
bandwidth and pipeline-fill terms included. Every algorithm pays one launch, so for
each step latency on a grid the best launch is a one-dimensional search; the pair kept
minimises the mean |log(predicted / measured)|. Nothing here reads an end-to-end row.

The scale-out network's per-step latency (`latency_us` of `ib-ndr-400g` and `efa-400g`
in the links catalog: wire, switches and NCCL's proxy hand-off of each step, one figure
for both since NCCL's network proxy is the same software path) comes from the multi-node
rows the same way (`fit_network_latency`): every all-reduce, all-gather and
reduce-scatter of NVIDIA DGX H100 clusters (InfiniBand) and AWS p5 (EFA) (2-1,024 nodes,
16 MiB-16 GiB, 100 rows), priced by the tuner's pick (the ring where a row forced it)
with the shipped launch and step, for each latency on a 1 µs grid.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import numpy as np

from superscale.calibrate.components import component_rows
from superscale.collectives.base import BUS_FACTOR
from superscale.collectives.tuner import CommModel, costs_for
from superscale.hardware.catalog import links
from superscale.hardware.spec import Cluster
from superscale.topology.graph import Topology, groups_of

MAX_BYTES = 2**20
SYSTEMS = {  # source's system label starts with -> catalog system
    "Azure ND A100 v4": "dgx-a100",
    "Azure ND H100 v5": "dgx-h100",
    "Azure ND H200 v5": "hgx-h200",
}
STEP_GRID_S = np.arange(0.0, 6.0001e-6, 0.05e-6)
LAUNCH_GRID_S = np.arange(0.0, 60.0001e-6, 0.05e-6)
NETWORKS = ("ib-ndr-400g", "efa-400g")  # the scale-out links the multi-node rows cross
# source's system label starts with -> (catalog system, its scale-out network)
NETWORK_SYSTEMS = {
    "AWS p5": ("dgx-h100", "efa-400g"),
    "NVIDIA H100 cluster": ("dgx-h100", "ib-ndr-400g"),
}
NETWORK_GRID_US = tuple(float(x) for x in range(1, 13))


@dataclass(frozen=True, slots=True, kw_only=True)
class LatencyRow:
    """One small all-reduce: where, how big, and its measured time."""

    system: str
    gpus: int
    size_bytes: int
    measured_s: float
    label: str


@dataclass(frozen=True, slots=True, kw_only=True)
class LatencyFit:
    launch_s: float
    step_s: float
    rows: int
    mean_abs_log_error: float
    median_abs_error_pct: float


def latency_rows() -> list[LatencyRow]:
    """The nccl-tests rows the fit uses (see the module docstring)."""
    out = []
    for row in component_rows("collectives"):
        system = next((s for label, s in SYSTEMS.items() if row["system"].startswith(label)), None)
        size = row["message_bytes"].strip()
        if system is None or row["op"] != "all_reduce" or not size or int(size) > MAX_BYTES:
            continue
        gpus = int(row["num_gpus"])
        if int(row["num_nodes"]) != 1 or gpus != 8:
            continue
        busbw = float(row["busbw_GBps"]) * 1e9
        algbw = busbw / (2 * (gpus - 1) / gpus)
        out.append(
            LatencyRow(
                system=system,
                gpus=gpus,
                size_bytes=int(size),
                measured_s=int(size) / algbw,
                label=f"{row['chip']} {gpus} GPUs {row['message_label']}",
            )
        )
    return out


def _unlaunched_s(rows: list[LatencyRow], step_s: float) -> np.ndarray:
    """Each row's fastest time less its one launch, at per-step latency `step_s`."""
    out = np.empty(len(rows))
    topologies: dict[str, Topology] = {}
    for i, row in enumerate(rows):
        topo = topologies.setdefault(
            row.system,
            Topology(
                cluster=Cluster.model_validate({"system": row.system, "count": 1}),
                launch_s=0.0,
                step_s=step_s,
            ),
        )
        costs = costs_for("all_reduce", groups_of(row.gpus, 1, topo.gpus), topo)
        out[i] = min(c.time_s(row.size_bytes) for c in costs.values())
    return out


def fit_latency(rows: list[LatencyRow] | None = None) -> LatencyFit:
    """The (launch, step) pair on the grids that prices `rows` best."""
    rows = latency_rows() if rows is None else rows
    measured = np.array([r.measured_s for r in rows])
    best: tuple[float, float, float] | None = None
    for step in STEP_GRID_S:
        rest = _unlaunched_s(rows, float(step))
        predicted = LAUNCH_GRID_S[:, None] + rest[None, :]
        errors = np.mean(np.abs(np.log(predicted / measured)), axis=1)
        i = int(np.argmin(errors))
        if best is None or errors[i] < best[0] - 1e-12:
            best = (float(errors[i]), float(LAUNCH_GRID_S[i]), float(step))
    assert best is not None
    error, launch, step = best
    predicted = launch + _unlaunched_s(rows, step)
    return LatencyFit(
        launch_s=launch,
        step_s=step,
        rows=len(rows),
        mean_abs_log_error=error,
        median_abs_error_pct=float(np.median(np.abs(predicted / measured - 1))) * 100,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class NetworkRow:
    """One multi-node reduction: where, how big, which algorithm, its measured time."""

    system: str
    network: str
    nodes: int
    gpus: int
    op: str
    size_bytes: int
    algorithm: str  # "ring" where the row forced it, else "auto" (the tuner's pick)
    measured_s: float


@dataclass(frozen=True, slots=True, kw_only=True)
class NetworkFit:
    latency_us: float
    rows: int
    mean_abs_log_error: float
    errors_by_latency: dict[float, float]  # grid point -> mean |log error|


def network_rows() -> list[NetworkRow]:
    """The multi-node nccl-tests rows `fit_network_latency` uses (module docstring)."""
    out = []
    for row in component_rows("collectives"):
        where = next(
            (s for label, s in NETWORK_SYSTEMS.items() if row["system"].startswith(label)), None
        )
        op, size = row["op"], row["message_bytes"].strip()
        if where is None or op not in ("all_reduce", "all_gather", "reduce_scatter"):
            continue
        if not size or int(row["num_nodes"]) < 2:
            continue
        gpus = int(row["num_gpus"])
        busbw = float(row["busbw_GBps"]) * 1e9
        out.append(
            NetworkRow(
                system=where[0],
                network=where[1],
                nodes=int(row["num_nodes"]),
                gpus=gpus,
                op=op,
                size_bytes=int(size),
                algorithm="ring" if row["algorithm"].startswith("Ring") else "auto",
                measured_s=int(size) * BUS_FACTOR[op](gpus) / busbw,
            )
        )
    return out


def _network_error(rows: list[NetworkRow], latency_us: float) -> float:
    """Mean |log(predicted / measured)| over `rows` with the networks' latency set."""
    networks = {
        name: links().get(name).model_copy(update={"latency_us": latency_us}) for name in NETWORKS
    }
    models: dict[tuple[str, str, int], CommModel] = {}
    errors = []
    for row in rows:
        spec = {
            "system": row.system,
            "count": row.nodes,
            "scale_out": {"network": networks[row.network]},
        }
        model = models.setdefault(
            (row.system, row.network, row.nodes), CommModel(Cluster.model_validate(spec))
        )
        _, seconds = model.best(row.op, row.size_bytes, row.gpus, 1, algorithm=row.algorithm)
        errors.append(abs(np.log(seconds / row.measured_s)))
    return float(np.mean(errors))


def fit_network_latency(rows: list[NetworkRow] | None = None) -> NetworkFit:
    """The networks' latency on `NETWORK_GRID_US` that prices the multi-node rows best."""
    rows = network_rows() if rows is None else rows
    errors = {us: _network_error(rows, us) for us in NETWORK_GRID_US}
    best = min(errors, key=lambda us: errors[us])
    return NetworkFit(
        latency_us=best, rows=len(rows), mean_abs_log_error=errors[best], errors_by_latency=errors
    )


def main(argv: list[str] | None = None) -> None:
    """Print the fit and each row's predicted and measured time."""
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args(argv)
    rows = latency_rows()
    fit = fit_latency(rows)
    predicted = fit.launch_s + _unlaunched_s(rows, fit.step_s)
    for row, t in zip(rows, predicted, strict=True):
        err = (t / row.measured_s - 1) * 100
        print(
            f"{row.label:<24} measured {row.measured_s * 1e6:6.1f} us  "
            f"predicted {t * 1e6:6.1f} us  {err:+6.1f}%"
        )
    print(
        f"launch {fit.launch_s * 1e6:.2f} us, step {fit.step_s * 1e6:.2f} us over "
        f"{fit.rows} rows: median |err| {fit.median_abs_error_pct:.1f}%, "
        f"mean |log(predicted/measured)| {fit.mean_abs_log_error:.3f}"
    )
    network = fit_network_latency()
    grid = ", ".join(f"{us:g} us {e:.3f}" for us, e in network.errors_by_latency.items())
    names = " and ".join(NETWORKS)
    print(f"{names} per-step latency: mean |log(predicted/measured)| by latency: {grid}")
    print(
        f"{names} latency {network.latency_us:g} us over {network.rows} multi-node rows: "
        f"mean |log(predicted/measured)| {network.mean_abs_log_error:.3f}"
    )


if __name__ == "__main__":
    main()
