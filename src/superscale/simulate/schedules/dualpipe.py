"""DualPipe (DeepSeek-AI 2024, DeepSeek-V3 report Sec. 3.2.1), simplified.

Micro-batches enter from both ends: half flow from rank 0 to rank p−1 through chunk 0,
half from rank p−1 to rank 0 through chunk 1, so each rank holds two chunks of half the
layers and the two directions fill each other's bubbles. In the steady state a rank runs
the forward of one direction beside the backward of the other, so the expert all-to-all of
each is hidden behind the other's computation; the engine models this overlap for
bidirectional schedules.
"""

from __future__ import annotations

from superscale.simulate.schedules.base import Shape, Task, one_f_one_b, register


@register("dualpipe")
class DualPipe:
    """Two opposite 1F1B pipelines over two chunks per rank, interleaved."""

    name = "dualpipe"
    split_backward = False
    bidirectional = True

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
