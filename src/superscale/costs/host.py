"""Host time: the launches a pass issues, and the stall when the host cannot keep up.

An eager framework (PyTorch with Transformer Engine, as Megatron-Core runs it) issues every
kernel and collective from Python. The device runs them as they arrive, so a pass takes at
least the host's issue time: stall = max(0, launches · host_launch_s − device compute).
Small-expert MoE layers at small micro-batches sit there: dozens of per-expert GEMMs of a
few hundred tokens, each a launch, plus the dropless dispatcher's device-to-host sync of
the token counts, which keeps the host from running ahead of the layer (the Megatron-Core
MoE report, arXiv 2603.07685, calls it host-boundedness and captures CUDA graphs against
it). Ops inside a captured CUDA-graph scope (Megatron-Core's `--cuda-graph-scope`) issue
no launches of their own; `full_iteration` captures the whole step.

`HOST_LAUNCH_S` is a residual, not a measurement: no component row measures per-launch host
time. It is one global figure per modelled launch (it absorbs the launches the lowering
folds into one op: quantize, amax, bias and norm kernels), fitted by
`validate.residual.fit_host_launch_s` on the declared train split of the published training
rows (`validate.training.in_train_split`), which `superscale validate` reports apart from the
test split. A scenario measured on its own stack names its own figure
(`parallel.host_launch_us`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from superscale import vec
from superscale.program.ops import CommOp, ComputeOp

# Seconds of host time per modelled kernel launch, fitted on the train split (55 rows, 14
# of them Megatron-Bridge): mean |log error| 0.082 -> 0.064 there, and on the 14 test
# rows 0.239 -> 0.200. Refit with `python -m superscale.validate.residual`.
HOST_LAUNCH_S = 85e-6

# The ops (by base name: a backward or recomputation is `name.bwd` / `name.recompute`) each
# Megatron-Core CUDA-graph scope captures
GRAPH_SCOPES: dict[str, frozenset[str]] = {
    "attn": frozenset(
        {
            "attn_norm",
            "qkv",
            "q_proj",
            "q_down",
            "q_up",
            "kv_down",
            "kv_up",
            "rope",
            "flash_attention",
            "attn_scores",
            "softmax",
            "attn_dropout",
            "attn_values",
            "attn_out",
            "attn_residual",
            "attn_all_gather",
            "attn_reduce_scatter",
            "attn_all_reduce",
            "cp_kv_exchange",
        }
    ),
    "mlp": frozenset(
        {
            "mlp_norm",
            "mlp_up",
            "mlp_act",
            "mlp_down",
            "mlp_residual",
            "mlp_all_gather",
            "mlp_reduce_scatter",
            "mlp_all_reduce",
        }
    ),
    "moe_router": frozenset({"router", "router_topk"}),
    "moe_preprocess": frozenset({"permute"}),
}


def eager(name: str, unit: str, graphs: tuple[str, ...]) -> bool:
    """Whether op `name` of run `unit` is launched from the host: not captured in one of the
    CUDA-graph scopes `graphs`, and part of a layer, the head or the tail (a pipeline send
    or a weight gather is issued beside their launches)."""
    if not unit or unit == "send" or "full_iteration" in graphs:
        return False
    base = name.split(".", 1)[0]
    return not any(base in GRAPH_SCOPES.get(scope, frozenset()) for scope in graphs)


def pass_host_s(host_s: dict[str, Any], compute_s: dict[str, Any]) -> Any:
    """Seconds a pass waits on the host, run by run (`ComputeOp.unit`: a layer, the head,
    the tail): each run's launch time beyond its device compute. The dropless dispatcher's
    sync of token counts in each MoE layer keeps the host from issuing one layer's
    launches under the next one's compute."""
    total: Any = 0.0
    for unit, seconds in host_s.items():
        total = total + vec.maximum(0.0, seconds - compute_s.get(unit, 0.0))
    return total


@dataclass
class HostTally:
    """A pass's launches and device compute per run of work, as its ops are priced (both
    engines fill one, so they count alike)."""

    graphs: tuple[str, ...]
    launches: dict[str, Any] = field(default_factory=dict)
    compute_s: dict[str, Any] = field(default_factory=dict)

    def compute(self, op: ComputeOp, seconds: Any) -> None:
        """A compute op of `seconds` (all its instances): its kernels, if launched eagerly."""
        self.compute_s[op.unit] = self.compute_s.get(op.unit, 0.0) + seconds
        if eager(op.name, op.unit, self.graphs):
            self._add(op.unit, op.kernels * op.repeat)

    def comm(self, op: CommOp, seconds: Any) -> None:
        """A collective of `seconds`: one launch per call that moves anything."""
        if eager(op.name, op.unit, self.graphs):
            self._add(op.unit, vec.where(seconds > 0, op.repeat, 0.0))

    def host_s(self, launch_s: float) -> dict[str, Any]:
        """The host's time to issue each run's launches."""
        return {unit: n * launch_s for unit, n in self.launches.items()}

    def _add(self, unit: str, launches: Any) -> None:
        self.launches[unit] = self.launches.get(unit, 0.0) + launches
