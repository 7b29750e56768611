"""The component measurements shipped with the package: the ground of every efficiency
parameter and of the component checks.

`data/components/` is a copy of the project's shared reference pack (GEMM, attention, HBM,
collective, point-to-point and MoE-dispatch measurements, each row with its source,
detail and confidence; see its README.md). End-to-end training and serving runs are not
among them: those only test the composition (superscale.validate).
"""

from __future__ import annotations

import csv
import io
from functools import cache
from importlib import resources

from superscale.errors import SpecError

COMPONENTS = ("gemm", "attention", "memory", "collectives", "p2p", "moe_dispatch", "metax")


@cache
def component_rows(name: str) -> tuple[dict[str, str], ...]:
    """The rows of one component table (`COMPONENTS`), as read from the shipped CSV.

    Raises:
        SpecError: an unknown table name.
    """
    if name not in COMPONENTS:
        raise SpecError(f"unknown component table '{name}' (known: {', '.join(COMPONENTS)})")
    text = (
        resources.files("superscale.calibrate")
        .joinpath(f"data/components/{name}.csv")
        .read_text(encoding="utf-8")
    )
    return tuple(csv.DictReader(io.StringIO(text)))
