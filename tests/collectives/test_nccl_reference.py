"""Predicted bus bandwidth at ≥1 GiB against published nccl-tests figures
(shared/reference/hardware.csv rows 5 and 6; H100 shares the H200's NVLink 4 + NVSwitch).

The 8×H200 NVLS all-reduce figure calibrates NVLink's in-network-reduction efficiency and
the ring figure its protocol efficiency (links.yaml); the all-gather, reduce-scatter and
B200 rows are predictions from those.
"""

from __future__ import annotations

import pytest

from superscale.collectives import BUS_FACTOR, CommModel
from superscale.hardware.catalog import systems
from superscale.hardware.spec import Cluster

GIB = 2**30
# (system, collective, algorithm, published busbw GB/s: midpoint of the published range)
PUBLISHED = [
    ("hgx-h200", "all_reduce", "nvls", 476.5),  # 473-480 with NVLS/SHARP
    ("hgx-h200", "all_reduce", "ring", 367.0),
    ("hgx-h200", "all_gather", "ring", 362.0),  # 361-363
    ("hgx-h200", "reduce_scatter", "ring", 362.0),
    ("dgx-h100", "all_reduce", "nvls", 476.5),
    ("dgx-h100", "all_reduce", "ring", 367.0),
    ("dgx-h100", "all_gather", "ring", 362.0),
    ("dgx-h100", "reduce_scatter", "ring", 362.0),
    ("dgx-b200", "all_reduce", "nvls", 838.0),
    ("dgx-b200", "all_reduce", "ring", 682.0),
]


@pytest.mark.parametrize(("system", "collective", "algorithm", "published"), PUBLISHED)
@pytest.mark.parametrize("size", [GIB, 8 * GIB])
def test_busbw_within_15_percent(
    system: str, collective: str, algorithm: str, published: float, size: int
) -> None:
    model = CommModel(Cluster(system=systems().get(system), count=1))
    name, seconds = model.best(collective, size, 8, 1, algorithm=algorithm)
    busbw = size / seconds * BUS_FACTOR[collective](8) / 1e9
    assert busbw == pytest.approx(published, rel=0.15), f"{name}: {busbw:.0f} GB/s"


def test_auto_picks_nvls_for_large_all_reduce_on_nvswitch() -> None:
    """The model's own pick; a step prices the 8 GPUs with the measured curve where the
    chip's (fitted) profile has one, and that curve agrees with NVLS there."""
    model = CommModel(Cluster(system=systems().get("dgx-h100"), count=1), measured=False)
    assert model.best("all_reduce", GIB, 8, 1)[0] == "nvls"
    measured = CommModel(Cluster(system=systems().get("dgx-h100"), count=1))
    name, seconds = measured.best("all_reduce", GIB, 8, 1)
    assert name == "measured"
    assert seconds == pytest.approx(model.best("all_reduce", GIB, 8, 1)[1], rel=0.05)
