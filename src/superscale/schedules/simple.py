"""GPipe (Huang et al. 2019) and 1F1B (PipeDream-Flush; Narayanan et al. 2021).

GPipe runs every forward, then every backward: bubble (p−1)/(m+p−1), m micro-batches of
activations in flight. 1F1B has the same bubble but at most p − rank in flight.
"""

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


@register("gpipe")
class GPipe:
    """All forwards, then all backwards in reverse order."""

    name = "gpipe"
    split_backward = False
    bidirectional = False
    async_sends = False
    weight_copies = 1
    chunk_grad_gap = 0.0

    def tasks(self, shape: Shape, rank: int) -> list[Task]:
        m = shape.micro_batches
        return [Task("F", i, 0) for i in range(m)] + [Task("B", i, 0) for i in range(m)]

    def bubble_factor(self, stages: int) -> float:
        return 1.0  # the whole (p − 1)-stage ramp: (p−1)/(m + p − 1) of the step

    def in_flight(self, shape: Shape, stage: vec.Num) -> vec.Num:
        return vec.as_float(shape.micro_batches) + 0.0 * stage  # every forward before any B

    def problem(self, shape: Shape) -> str | None:
        return one_chunk_only(self.name, shape)


@register("1f1b")
class OneFOneB:
    """Warm-up forwards, then one forward one backward, then cool-down backwards."""

    name = "1f1b"
    split_backward = False
    bidirectional = False
    async_sends = False
    weight_copies = 1
    chunk_grad_gap = 0.0

    def tasks(self, shape: Shape, rank: int) -> list[Task]:
        order = one_f_one_b(shape.micro_batches, shape.stages, rank)
        return [Task(k, i, 0) for k, i in order]  # type: ignore[arg-type]

    def bubble_factor(self, stages: int) -> float:
        return 1.0  # the whole (p − 1)-stage ramp: (p−1)/(m + p − 1) of the step

    def in_flight(self, shape: Shape, stage: vec.Num) -> vec.Num:
        return one_f_one_b_in_flight(shape, stage)

    def problem(self, shape: Shape) -> str | None:
        return one_chunk_only(self.name, shape)
