"""ZB-H1 (Qi et al. 2024, "Zero Bubble Pipeline Parallelism", Sec. 3): 1F1B with the
backward split into B (input gradients, on the critical path) and W (weight gradients, off
it). W tasks are deferred and run wherever the rank would otherwise wait, which fills the
1F1B bubble to about (p−1)(T_F + T_B − T_W) with 1F1B's activation memory."""

from __future__ import annotations

from superscale import vec
from superscale.schedules.base import (
    Shape,
    Task,
    one_chunk_only,
    one_f_one_b,
    one_f_one_b_in_flight,
    register,
)


@register("zb-h1")
class ZeroBubbleH1:
    """1F1B order of F and B; W tasks fill idle time (the engine runs them as fillers)."""

    name = "zb-h1"
    split_backward = True
    bidirectional = False
    async_sends = False
    weight_copies = 1
    chunk_grad_gap = 0.0

    def bubble_factor(self, stages: int) -> float:
        return 1 / 3  # (p−1)(T_F + T_B − T_W) with T_F = T_B = T_W (Qi et al. Sec. 3)

    def in_flight(self, shape: Shape, stage: vec.Num) -> vec.Num:
        return one_f_one_b_in_flight(shape, stage)  # ZB-H1 keeps 1F1B's activation memory

    def problem(self, shape: Shape) -> str | None:
        return one_chunk_only(self.name, shape)

    def tasks(self, shape: Shape, rank: int) -> list[Task]:
        order = one_f_one_b(shape.micro_batches, shape.stages, rank)
        tasks = [Task(k, i, 0) for k, i in order]  # type: ignore[arg-type]
        # W tasks trail at the end of the list; the engine pulls them forward into gaps
        return tasks + [Task("W", i, 0) for i in range(shape.micro_batches)]
