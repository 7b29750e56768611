"""Registered pipeline schedules: gpipe, 1f1b, interleaved, zb-h1, dualpipe."""

from superscale.schedules import (  # noqa: F401  (registration side effect)
    dualpipe,
    interleaved,
    simple,
    zero_bubble,
)
from superscale.schedules.base import Schedule, Shape, Task, schedules

__all__ = ["Schedule", "Shape", "Task", "schedules"]
