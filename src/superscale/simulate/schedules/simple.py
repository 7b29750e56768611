"""GPipe (Huang et al. 2019) and 1F1B (PipeDream-Flush; Narayanan et al. 2021).

GPipe runs every forward, then every backward: bubble (p−1)/(m+p−1), m micro-batches of
activations in flight. 1F1B has the same bubble but at most p − rank in flight.
"""

from __future__ import annotations

from superscale.simulate.schedules.base import Shape, Task, one_f_one_b, register


@register("gpipe")
class GPipe:
    """All forwards, then all backwards in reverse order."""

    name = "gpipe"
    split_backward = False
    bidirectional = False

    def tasks(self, shape: Shape, rank: int) -> list[Task]:
        m = shape.micro_batches
        return [Task("F", i, 0) for i in range(m)] + [Task("B", i, 0) for i in range(m)]


@register("1f1b")
class OneFOneB:
    """Warm-up forwards, then one forward one backward, then cool-down backwards."""

    name = "1f1b"
    split_backward = False
    bidirectional = False

    def tasks(self, shape: Shape, rank: int) -> list[Task]:
        order = one_f_one_b(shape.micro_batches, shape.stages, rank)
        return [Task(k, i, 0) for k, i in order]  # type: ignore[arg-type]
