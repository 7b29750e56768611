"""The result of a simulated training step, with the stable JSON keys of DESIGN.md.

MFU = model FLOPs per second per GPU / the chip's dense peak at the run's precision; HFU
adds recomputation to the numerator (Chowdhery et al. 2022, App. B; Korthikanti et al.
2022). Memory figures are per GPU on the stage that needs the most. The optional facility,
reliability and cost sections come from `superscale.facility.assess` (power, cabinets, floor,
failures, checkpoints, goodput, time and money to train).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from superscale.parallelism.plan import Plan
from superscale.scenario import Scenario
from superscale.simulate.analytical import StepTime
from superscale.training.memory import Memory
from superscale.units import GIB

BREAKDOWN_KEYS = (
    "compute",
    "host",
    "tp_comm",
    "cp_comm",
    "ep_comm",
    "pp_comm",
    "pp_bubble",
    "dp_comm",
    "exposed_comm",
    "other",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Result:
    """Everything a training-step simulation reports."""

    name: str
    model: str
    cluster: str
    chip: str
    precision: str
    gpus: int
    step_time_s: float
    tokens_per_step: int
    model_flops_per_gpu: float
    hardware_flops_per_gpu: float
    peak_flops: float
    memory: Memory
    hbm_bytes: float
    breakdown_s: dict[str, float]
    plan: dict[str, Any]
    groups: dict[str, str]
    warnings: tuple[str, ...]
    engine: str
    hidden_comm_s: dict[str, float] | None = None  # per group, run under compute
    facility: dict[str, Any] | None = None
    reliability: dict[str, Any] | None = None
    cost: dict[str, Any] | None = None

    @property
    def utilization(self) -> float:
        """Busy share of the critical GPU's step: (compute + optimizer) / step time."""
        busy = self.breakdown_s["compute"] + self.breakdown_s["other"]
        return min(1.0, busy / self.step_time_s) if self.step_time_s > 0 else 0.0

    @property
    def tokens_per_s(self) -> float:
        return self.tokens_per_step / self.step_time_s

    @property
    def mfu(self) -> float:
        return self.model_flops_per_gpu / self.step_time_s / self.peak_flops

    @property
    def hfu(self) -> float:
        return self.hardware_flops_per_gpu / self.step_time_s / self.peak_flops

    @property
    def fits(self) -> bool:
        return self.memory.peak_bytes <= self.hbm_bytes

    def to_json(self) -> dict[str, Any]:
        """The stable result keys of DESIGN.md, then context, then the facility sections."""
        mem = self.memory
        data: dict[str, Any] = {
            "step_time_s": self.step_time_s,
            "tokens_per_s": self.tokens_per_s,
            "tokens_per_s_per_gpu": self.tokens_per_s / self.gpus,
            "model_tflops_per_gpu": self.model_flops_per_gpu / self.step_time_s / 1e12,
            "hardware_tflops_per_gpu": self.hardware_flops_per_gpu / self.step_time_s / 1e12,
            "mfu": self.mfu,
            "hfu": self.hfu,
            "gpus": self.gpus,
            "fits": self.fits,
            "memory": {
                "peak_gib_per_gpu": mem.peak_bytes / GIB,
                "params_gib": mem.params_bytes / GIB,
                "grads_gib": mem.grads_bytes / GIB,
                "optimizer_gib": mem.optimizer_bytes / GIB,
                "activations_gib": mem.activations_bytes / GIB,
                "workspace_gib": mem.workspace_bytes / GIB,
                "hbm_gib": self.hbm_bytes / GIB,
                "over_by_gib": max(0.0, (mem.peak_bytes - self.hbm_bytes) / GIB),
                "peak_stage": mem.stage,
            },
            "breakdown_s": {k: self.breakdown_s[k] for k in BREAKDOWN_KEYS},
            "hidden_comm_s": {k: float(v) for k, v in (self.hidden_comm_s or {}).items()},
            "scenario": {
                "name": self.name,
                "model": self.model,
                "cluster": self.cluster,
                "chip": self.chip,
                "precision": self.precision,
            },
            "plan": self.plan,
            "groups": self.groups,
            "warnings": list(self.warnings),
            "engine": self.engine,
        }
        sections = {"facility": self.facility, "reliability": self.reliability, "cost": self.cost}
        data |= {key: value for key, value in sections.items() if value is not None}
        return data


def summarize(
    scenario: Scenario,
    plan: Plan,
    step: StepTime,
    memory: Memory,
    *,
    name: str = "",
    engine: str = "analytical",
) -> Result:
    """Assemble the result of one simulated step."""
    cluster = scenario.cluster
    precision = scenario.require_training().precision
    plan_fields = {
        "tp": plan.tp,
        "pp": plan.pp,
        "cp": plan.cp,
        "ep": plan.ep,
        "dp": plan.dp,
        "micro_batch": plan.micro_batch,
        "micro_batches": plan.micro_batches,
        "virtual_stages": plan.virtual_stages,
        "schedule": plan.schedule,
        "zero": plan.zero,
        "recompute": plan.recompute,
        "sequence_parallel": plan.sequence_parallel,
    }
    return Result(
        name=name,
        model=scenario.model.name,
        cluster=cluster.name or f"{cluster.count}x {cluster.system.name}",
        chip=cluster.chip.name,
        precision=precision,
        gpus=cluster.gpus,
        step_time_s=step.step_time_s,
        tokens_per_step=scenario.require_training().global_batch
        * scenario.require_training().seq_len,
        model_flops_per_gpu=step.model_flops_per_gpu,
        hardware_flops_per_gpu=step.hardware_flops_per_gpu,
        peak_flops=cluster.chip.peak_flops(precision),
        memory=memory,
        hbm_bytes=cluster.chip.hbm_bytes,
        breakdown_s=step.breakdown_s,
        plan=plan_fields,
        groups={k: g.describe(cluster) for k, g in plan.groups.items() if g.size > 1},
        warnings=plan.warnings,
        engine=engine,
        hidden_comm_s=dict(step.hidden_comm_s),
    )
