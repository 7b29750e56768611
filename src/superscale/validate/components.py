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
- Dense GEMMs (`gemm.csv`: cuBLASLt sweeps, MAMF best shapes, FlagPerf) priced through the
  shared kernel rates with a chip's component-fitted profile, as `cluster.profile: fitted`
  prices a training GEMM (operands at the GEMM's width, a 16-bit output).
- FlashAttention forward + backward (`attention.csv`) priced as a training attention op is:
  the fitted profile at the key length and head size (the op's shape carries both).
- nccl-tests bus bandwidth (`collectives.csv`) of all-reduce, all-gather and reduce-scatter
  on A100, H100 and H200 nodes and H100 clusters, against the collective the tuner picks on
  the catalog system of that node (AWS p5 rows on dgx-h100 joined by EFA, efa-400g: the
  same 3.2 Tb/s per node, no switch-side reduction).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

from superscale.calibrate.components import component_rows
from superscale.calibrate.latency import NETWORK_SYSTEMS
from superscale.collectives import BUS_FACTOR
from superscale.collectives.tuner import CommModel
from superscale.costs.compute import compute_time_s
from superscale.costs.dispatch import (
    DISPATCH_PREPARATION_S,
    payload_factor,
    remote_copies_per_token,
)
from superscale.costs.roofline import attention_flops_per_s, gemm_time_s
from superscale.hardware.catalog import chips
from superscale.hardware.profile import FITTED, ProfiledChip, named_profile, with_profile
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
        costs = CommModel(cluster, measured=False).costs("all_to_all", ep, 1)
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


def kernel_only_gbps(notes: str) -> float | None:
    """Hybrid-EP's kernel-only bandwidth, which its rows carry in the notes."""
    found = re.match(r"kernel-only ([0-9.]+) GB/s", notes)
    return float(found.group(1)) if found else None


def nvl72_dispatch_checks(*, kernel_only: bool = False) -> list[ComponentCheck]:
    """Dispatch and combine inside one GB200 NVL72 NVLink domain (EP 8-36), 16-bit, at each
    row's largest SM budget, against the scale-up all-to-all the cost layer prices.

    The rows' torch-API time includes each call's layout and metadata preparation, which
    Hybrid-EP's kernel-only figures leave out (`kernel_only`): against the torch-API rows
    the prediction adds the preparation the cost layer charges every such call
    (`costs.dispatch.DISPATCH_PREPARATION_S`), against the kernel-only ones the transfer
    alone."""
    best: dict[tuple[str, str, int], dict[str, str]] = {}
    for row in component_rows("moe_dispatch"):
        if row["library"] not in _NVL72_LIBRARIES or row["chip"] != "GB200":
            continue
        dtype = row["dispatch_dtype"] if row["op"] == "dispatch" else row["combine_dtype"]
        if dtype != "bf16" or (kernel_only and kernel_only_gbps(row["notes"]) is None):
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
        costs = CommModel(cluster, measured=False).costs("all_to_all", ep, 1)
        time_s = min(c.time_s(payload) for c in costs.values())
        if not kernel_only:
            time_s += DISPATCH_PREPARATION_S
        link_bytes = payload * (ep - 1) / ep  # the copies bound for other GPUs
        measured = kernel_only_gbps(row["notes"]) if kernel_only else None
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


# Component-table chip labels -> catalog chips, for the dense checks (PCIe and other
# variants left out, as the fit leaves them out)
_DENSE_CHIPS = {"A100": "a100-sxm-80g", "A100 SXM": "a100-sxm-80g", "H100 SXM": "h100-sxm"}
_DENSE_CHIPS |= {"H100": "h100-sxm", "H200": "h200-sxm", "H800": "h800-sxm"}
_OPERAND_BYTES = {"fp8": 1.0, "bf16": 2.0, "fp16": 2.0, "tf32": 4.0, "fp32": 4.0}


def fitted_chip(name: str) -> ProfiledChip:
    """Catalog chip `name` priced by its shipped component-fitted profile, at the clocks the
    profile's rows were measured at (as `cluster.profile: fitted` runs it)."""
    chip = chips().get(name)
    efficiency = chip.efficiency.model_copy(update={"sustained_clock_fraction": 1.0})
    measured = chip.model_copy(update={"efficiency": efficiency})
    return with_profile(measured, named_profile(FITTED, name, None))


def _precision(dtype: str) -> str | None:
    text = dtype.lower()
    return next((p for p in _OPERAND_BYTES if text.startswith(p)), None)


def dense_gemm_checks() -> list[ComponentCheck]:
    """Every dense GEMM row with a shape on A100, H100, H200 and H800, against the GEMM
    time the fitted profile prices for that shape and precision (a 16-bit output)."""
    checks = []
    for row in component_rows("gemm"):
        name = _DENSE_CHIPS.get(row["chip"])
        precision = _precision(row["dtype"])
        if name is None or precision is None or row["groups"] not in ("", "1"):
            continue
        if not row["m"].strip() or "claim" in row["value_kind"]:
            continue
        chip = fitted_chip(name)
        if precision not in chip.profile.matmul:
            continue
        m, n, k = (int(row[c]) for c in ("m", "n", "k"))
        moved = (m * k + k * n) * _OPERAND_BYTES[precision] + m * n * 2.0
        seconds = gemm_time_s(chip, precision, (m, n, k), hbm_bytes=moved)
        kind = "best shape, short run" if "MAMF" in row["value_kind"] else row["library"]
        checks.append(
            ComponentCheck(
                component="gemm_dense",
                label=f"GEMM {row['chip']} {precision} ({m},{n},{k}) {kind}",
                measured=float(row["achieved_tflops"]),
                predicted=2.0 * m * n * k / float(seconds) / 1e12,
                unit="TFLOP/s",
                source=row["source"],
            )
        )
    return checks


def attention_checks() -> list[ComponentCheck]:
    """FlashAttention forward + backward rows on A100 and H100 against the fitted rate a
    training attention op of that key length and head size gets."""
    checks = []
    for row in component_rows("attention"):
        name = _DENSE_CHIPS.get(row["chip"])
        if name is None or row["pass"] != "fwd+bwd" or not row["seq_len"].strip():
            continue
        chip = fitted_chip(name)
        seq, head_dim = int(row["seq_len"]), int(row["head_dim"])
        rate = attention_flops_per_s(
            chip, "bf16", float(seq), head_dim=head_dim, profile=chip.profile
        )
        causal = "causal" if row["causal"].lower() == "true" else "full"
        checks.append(
            ComponentCheck(
                component="attention",
                label=f"{row['kernel']} {row['chip']} fwd+bwd s{seq} d{head_dim} {causal}",
                measured=float(row["achieved_tflops"]),
                predicted=rate / 1e12,
                unit="TFLOP/s",
                source=row["source"],
            )
        )
    return checks


_COLLECTIVE_SYSTEMS = (  # (chip, system label starts with) -> catalog system
    ("A100", "Azure ND A100", "dgx-a100"),
    ("A100", "DGX A100", "dgx-a100"),
    ("H100", "Azure ND H100", "dgx-h100"),
    ("H100", "AWS p5", "dgx-h100"),
    ("H100", "NVIDIA H100 cluster", "dgx-h100"),
    ("H200", "Azure ND H200", "hgx-h200"),
    ("H200", "8x H200 HGX", "hgx-h200"),
)
_REDUCTIONS = ("all_reduce", "all_gather", "reduce_scatter")


def collective_checks() -> list[ComponentCheck]:
    """nccl-tests bus bandwidth by size and GPU count against the tuner's pick on the
    node's catalog system (whole systems), or against the ring where a row turned NVLS off."""
    models: dict[tuple[str, int, str | None], CommModel] = {}
    checks = []
    for row in component_rows("collectives"):
        system = next(
            (
                s
                for chip, label, s in _COLLECTIVE_SYSTEMS
                if row["chip"] == chip and row["system"].startswith(label)
            ),
            None,
        )
        op = row["op"]
        if system is None or op not in _REDUCTIONS or not row["message_bytes"].strip():
            continue
        gpus, nodes = int(row["num_gpus"]), int(row["num_nodes"])
        if nodes == 1 and 8 % gpus:
            continue  # 5-7 GPUs of an 8-GPU node do not tile it
        size = int(row["message_bytes"])
        network = next(  # the network a multi-node row crosses (AWS p5: EFA)
            (net for label, (_, net) in NETWORK_SYSTEMS.items() if row["system"].startswith(label)),
            None,
        )
        model = models.setdefault((system, nodes, network), _comm_model(system, nodes, network))
        forced = "ring" if row["algorithm"].startswith("Ring") else "auto"  # NVLS turned off
        algorithm, seconds = model.best(op, size, gpus, 1, algorithm=forced)
        checks.append(
            ComponentCheck(
                component="collective",
                label=f"{op} {row['chip']} {gpus} GPUs/{nodes} nodes {row['message_label']} "
                f"[{row['system'][:24]}; priced {algorithm}]",
                measured=float(row["busbw_GBps"]),
                predicted=size / seconds * BUS_FACTOR[op](gpus) / 1e9,
                unit="GB/s busbw",
                source=row["source"],
            )
        )
    return checks


def _comm_model(system: str, nodes: int, network: str | None = None) -> CommModel:
    spec: dict[str, Any] = {"system": system, "count": nodes}
    if network is not None:
        spec["scale_out"] = {"network": network}
    return CommModel(Cluster.model_validate(spec), measured=False)  # the model, not the rows
