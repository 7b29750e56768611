"""DualPipe (DeepSeek-AI 2024, DeepSeek-V3 report Sec. 3.2.1), simplified.

Micro-batches enter from both ends: half flow from rank 0 to rank p−1 through chunk 0,
half from rank p−1 to rank 0 through chunk 1, so each rank holds two chunks of half the
layers and the two directions fill each other's bubbles. In the steady state a rank runs
the forward of one direction beside the backward of the other, so the expert all-to-all of
each is hidden behind the other's computation; the engine models this overlap for
bidirectional schedules.
"""

from __future__ import annotations

from superscale import vec
from superscale.simulate.schedules.base import Shape, Task, one_f_one_b, register


@register("dualpipe")
class DualPipe:
    """Two opposite 1F1B pipelines over two chunks per rank, interleaved."""

    name = "dualpipe"
    split_backward = False
    bidirectional = True
    bubble_factor = 0.5  # the two directions fill each other's bubbles (DeepSeek-V3 Table 2)
    async_sends = True
    weight_copies = 2  # each rank holds chunks of both directions (DeepSeek-V3 Sec. 3.2.1)

    def in_flight(self, shape: Shape, stage: vec.Num) -> vec.Num:
        # DeepSeek-V3 Table 2: PP + 1 micro-batches of activations on every rank
        return vec.as_float(vec.minimum(shape.micro_batches, shape.stages + 1)) + 0.0 * stage

    def problem(self, shape: Shape) -> str | None:
        if shape.chunks > 1:
            return (
                "parallel.schedule 'dualpipe' implies its two chunks per rank; "
                f"virtual_stages must be 1 (got {shape.chunks})"
            )
        if shape.stages < 2:
            return "parallel.schedule 'dualpipe' needs pp >= 2"
        if shape.micro_batches < 2:
            return (
                "parallel.schedule 'dualpipe' needs 2 or more micro-batches per step "
                f"(got {shape.micro_batches})"
            )
        return None

    def tasks(self, shape: Shape, rank: int) -> list[Task]:
        p, m = shape.stages, shape.micro_batches
        half = m // 2
        down = [Task(k, i, 0) for k, i in one_f_one_b(half, p, rank)]  # type: ignore[arg-type]
        up = [
            Task(k, half + i, 1)  # type: ignore[arg-type]
            for k, i in one_f_one_b(m - half, p, p - 1 - rank)
        ]
        merged: list[Task] = []
        while down or up:  # alternate the two directions
            for lane in (down, up):
                if lane:
                    merged.append(lane.pop(0))
        return merged
