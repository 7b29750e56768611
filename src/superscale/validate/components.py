"""Component checks: the cost layer's prediction of each measured component, row by row.

These rows set no parameter (the catalogs carry figures from their own sources); they show
how far each priced component is from its measurement, so an end-to-end error can be traced
to the component that causes it. Covered so far:

- DeepGEMM's grouped (MoE) GEMMs on H800 (`gemm.csv`), priced as the lowering prices an
  expert GEMM (m tokens per expert, n, k, fp8 operands), without the training recipe's
  quantize kernels, which the benchmark leaves out.
- DeepEP's normal-mode dispatch and combine on H800 (`moe_dispatch.csv`), inside one server
  over NVLink and across 2-8 servers over 400G InfiniBand, with its published setting
  (4,096 tokens per rank, hidden 7,168, top-8 of 256 experts in 4 node groups, fp8
  dispatch, bf16 combine). DeepEP reports the bytes on the bottleneck link (NVLink or
  RDMA) over the kernel time; the prediction divides the same bytes by the priced
  all-to-all time.
- Hybrid-EP's and DeepEP's 16-bit dispatch and combine inside one GB200 NVL72 NVLink domain
  (EP 8-36), against the scale-up all-to-all: within 9% on average of Hybrid-EP's kernel-only
  times; the torch-API times add 0.16-0.25 ms of layout and metadata preparation per call.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from superscale.calibrate.components import component_rows
from superscale.collectives.tuner import CommModel
from superscale.costs.compute import compute_time_s
from superscale.costs.dispatch import payload_factor, remote_copies_per_token
from superscale.hardware.catalog import chips
from superscale.hardware.spec import Cluster
from superscale.models.spec import MoE
from superscale.training.layer import grouped_gemm

_DEEPEP_MOE = MoE(experts=256, top_k=8, expert_ffn_hidden=2048, max_nodes_per_token=4)
_SYSTEMS = {"H800": "hgx-h800"}
_BYTES = {"fp8": 1, "bf16": 2}


@dataclass(frozen=True, slots=True, kw_only=True)
class ComponentCheck:
    """One measured component row beside its prediction."""

    component: str
    label: str
    measured: float
    predicted: float
    unit: str
    source: str

    @property
    def error_pct(self) -> float:
        return 100.0 * (self.predicted - self.measured) / self.measured


def dispatch_checks() -> list[ComponentCheck]:
    """DeepEP normal-mode dispatch/combine bandwidth on H800, predicted against measured."""
    checks = []
    for row in component_rows("moe_dispatch"):
        if not (row["library"] == "DeepEP V1" and row["kernel_mode"].startswith("normal")):
            continue
        system = _SYSTEMS.get(row["chip"])
        if system is None:
            continue
        ep, nodes = int(row["ep_size"]), int(row["num_nodes"])
        tokens, hidden = int(row["tokens_per_rank"]), int(row["hidden"])
        dtype = row["dispatch_dtype"] if row["op"] == "dispatch" else row["combine_dtype"]
        nbytes = _BYTES[dtype]
        cluster = Cluster.model_validate({"system": system, "count": nodes})
        copies = _DEEPEP_MOE.top_k * payload_factor(_DEEPEP_MOE, nodes, dedup=True)
        payload = tokens * copies * hidden * nbytes
        costs = CommModel(cluster).costs("all_to_all", ep, 1)
        time_s = min(c.time_s(payload) for c in costs.values())
        if nodes > 1:  # RDMA bytes: one copy per remote node reached
            link_bytes = tokens * remote_copies_per_token(_DEEPEP_MOE, nodes, dedup=True)
        else:  # NVLink bytes: every copy bound for another GPU of the server
            link_bytes = tokens * _DEEPEP_MOE.top_k * (ep - 1) / ep
        checks.append(
            ComponentCheck(
                component="moe_dispatch",
                label=f"DeepEP {row['op']} {row['chip']} EP{ep} ({row['bottleneck_link']})",
                measured=float(row["bandwidth_GBps"]),
                predicted=link_bytes * hidden * nbytes / time_s / 1e9,
                unit="GB/s",
                source=row["source"],
            )
        )
    return checks


_NVL72_LIBRARIES = ("Hybrid-EP (NVIDIA)", "DeepEP V1 (as measured by NVIDIA)")


def _kernel_only_gbps(notes: str) -> float | None:
    """Hybrid-EP's kernel-only bandwidth, which its rows carry in the notes."""
    found = re.match(r"kernel-only ([0-9.]+) GB/s", notes)
    return float(found.group(1)) if found else None


def nvl72_dispatch_checks(*, kernel_only: bool = False) -> list[ComponentCheck]:
    """Dispatch and combine inside one GB200 NVL72 NVLink domain (EP 8-36), 16-bit, at each
    row's largest SM budget, against the scale-up all-to-all the cost layer prices.

    The rows' torch-API time includes each call's layout and metadata preparation, which
    Hybrid-EP's kernel-only figures leave out (`kernel_only`)."""
    best: dict[tuple[str, str, int], dict[str, str]] = {}
    for row in component_rows("moe_dispatch"):
        if row["library"] not in _NVL72_LIBRARIES or row["chip"] != "GB200":
            continue
        dtype = row["dispatch_dtype"] if row["op"] == "dispatch" else row["combine_dtype"]
        if dtype != "bf16" or (kernel_only and _kernel_only_gbps(row["notes"]) is None):
            continue
        key = (row["library"], row["op"], int(row["ep_size"]))
        if key not in best or int(row["num_sms"]) > int(best[key]["num_sms"]):
            best[key] = row
    checks = []
    for (library, op, ep), row in sorted(best.items()):
        tokens, hidden, top_k = (int(row[c]) for c in ("tokens_per_rank", "hidden", "topk"))
        slice_gpus = 72 // ep * ep  # the rack's GPUs in whole EP groups
        cluster = Cluster.model_validate(
            {"system": "gb200-nvl72", "count": 1, "gpus_per_system": slice_gpus}
        )
        payload = tokens * top_k * hidden * _BYTES["bf16"]
        costs = CommModel(cluster).costs("all_to_all", ep, 1)
        time_s = min(c.time_s(payload) for c in costs.values())
        link_bytes = payload * (ep - 1) / ep  # the copies bound for other GPUs
        measured = _kernel_only_gbps(row["notes"]) if kernel_only else None
        checks.append(
            ComponentCheck(
                component="moe_dispatch_nvl72",
                label=f"{library.split(' (')[0]} {op} GB200 NVL72 EP{ep} ({row['num_sms']} SMs)",
                measured=measured if measured is not None else float(row["bandwidth_GBps"]),
                predicted=link_bytes / time_s / 1e9,
                unit="GB/s",
                source=row["source"],
            )
        )
    return checks


_GEMM_CHIPS = {"H800": "h800-sxm"}


def grouped_gemm_checks() -> list[ComponentCheck]:
    """Grouped GEMMs (one per local expert) on H800, predicted against DeepGEMM's rows."""
    checks = []
    for row in component_rows("gemm"):
        name = _GEMM_CHIPS.get(row["chip"])
        if name is None or row["groups"] in ("", "1") or not row["m"].strip():
            continue
        m, n, k, groups = (int(row[c]) for c in ("m", "n", "k", "groups"))
        # DeepGEMM's grouped contiguous kernel, priced as the lowering prices one; its
        # inputs arrive in fp8, so the training recipe's quantize kernels are not in it
        op = grouped_gemm("expert_up", groups * m, n, k, groups=groups, fused=True)
        op = replace(op, cast_bytes_per_input=0.0)
        seconds = compute_time_s(op, chips().get(name), "fp8")
        checks.append(
            ComponentCheck(
                component="gemm_grouped",
                label=f"grouped GEMM {row['chip']} {groups}x({m},{n},{k}) fp8",
                measured=float(row["achieved_tflops"]),
                predicted=op.flops / seconds / 1e12,
                unit="TFLOP/s",
                source=row["source"],
            )
        )
    return checks
