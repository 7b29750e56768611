"""Component checks: shipped measurements and the priced components against them."""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest

from superscale.calibrate.components import COMPONENTS, component_rows
from superscale.errors import SpecError
from superscale.validate.components import dispatch_checks

SHARED = Path(__file__).resolve().parents[3] / "shared" / "reference" / "components"


@pytest.mark.parametrize("name", COMPONENTS)
def test_shipped_components_match_the_shared_pack(name: str) -> None:
    rows = component_rows(name)
    assert rows and all(r["source"].strip() for r in rows)  # every figure says where from
    if not SHARED.is_dir():
        pytest.skip("the shared reference pack is not beside this checkout")
    from importlib import resources

    shipped = (
        resources.files("superscale.calibrate").joinpath(f"data/components/{name}.csv").read_text()
    )
    assert shipped == (SHARED / f"{name}.csv").read_text()


def test_unknown_component_table() -> None:
    with pytest.raises(SpecError, match="unknown component table 'gem'"):
        component_rows("gem")


def test_deepep_dispatch_and_combine_within_25_percent() -> None:
    checks = dispatch_checks()
    assert len(checks) == 8  # H800: intranode EP 8, internode EP 16, 32, 64; dispatch, combine
    errors = [abs(c.error_pct) for c in checks]
    assert max(errors) <= 25.0, [(c.label, round(c.error_pct, 1)) for c in checks]
    assert sum(errors) / len(errors) <= 12.0


def test_grouped_gemms_within_20_percent() -> None:
    from superscale.validate.components import grouped_gemm_checks

    checks = grouped_gemm_checks()
    assert len(checks) == 8
    errors = [abs(c.error_pct) for c in checks]
    # with fp8 operands read at one byte, the 256-token groups (memory-bound: DeepGEMM
    # reports ~2 TB/s for them) are within 15%; they were 45% too slow at 16-bit bytes
    assert max(errors) <= 20.0, [(c.label, round(c.error_pct, 1)) for c in checks]
    assert sum(errors) / len(errors) <= 12.0


def test_nvl72_scale_up_all_to_all_matches_hybrid_ep_kernels() -> None:
    from superscale.validate.components import nvl72_dispatch_checks

    checks = nvl72_dispatch_checks(kernel_only=True)
    assert len(checks) == 10  # Hybrid-EP dispatch and combine at EP 8, 16, 24, 32, 36
    errors = [abs(c.error_pct) for c in checks]
    assert max(errors) <= 20.0, [(c.label, round(c.error_pct, 1)) for c in checks]
    assert sum(errors) / len(errors) <= 12.0


def test_nvl72_torch_api_rows_carry_each_calls_preparation() -> None:
    from superscale.validate.components import nvl72_dispatch_checks

    # The same Hybrid-EP calls timed through the torch API (layout and metadata included)
    # are slower than their kernels, by the preparation the cost layer adds to every call:
    # with it, the torch-API rows are priced as the kernel-only ones are (within 20%).
    kernels = {c.label: c for c in nvl72_dispatch_checks(kernel_only=True)}
    checks = nvl72_dispatch_checks()
    api = [c for c in checks if c.label in kernels]
    assert len(api) == len(kernels)
    assert all(c.measured < kernels[c.label].measured for c in api)
    assert all(c.predicted < kernels[c.label].predicted for c in api)  # preparation charged
    assert max(abs(c.error_pct) for c in api) <= 20.0, [(c.label, c.error_pct) for c in api]
    # DeepEP V1 (NVIDIA's measurement; the preparation figure comes from Hybrid-EP rows):
    # half its rows are within 5% with the same charge, the median within 12% (its EP24
    # combine, 207 GB/s against 442 at EP16, is the outlier)
    deepep = sorted(abs(c.error_pct) for c in checks if c.label.startswith("DeepEP"))
    assert len(deepep) == 6 and deepep[2] <= 5.0 and statistics.median(deepep) <= 12.0, deepep


# --- the components a dense H100 training step is priced from (issue 13) -------------------


def test_dense_gemms_at_training_sizes_within_9_percent() -> None:
    """cuBLASLt sweeps and FlagPerf rows with every dimension >= 4096 (the sizes a dense
    layer's GEMMs have) on A100, H100 and H200: the fitted profiles price them within 9%
    (A100 fp16 4096^3 is the widest, +9%; H100 fp8 4096^3 +5%), 3% on average."""
    from superscale.validate.components import dense_gemm_checks

    checks = [
        c
        for c in dense_gemm_checks()
        if "short run" not in c.label
        and "H800" not in c.label
        and min(int(d) for d in c.label.split("(")[1].split(")")[0].split(",")) >= 4096
    ]
    assert len(checks) >= 20
    errors = [abs(c.error_pct) for c in checks]
    assert max(errors) <= 9.0, [(c.label, round(c.error_pct, 1)) for c in checks]
    assert sum(errors) / len(errors) <= 3.0


def test_h100_bf16_best_shape_is_priced_at_its_sustained_rate() -> None:
    """H100 bf16 has one row, MAMF's best shape (794.5 TFLOP/s over a short run); priced at
    that shape the profile gives its sustained rate (x 1382.2/1402.6, H100's own fp8 pair)
    within 4% (the profile's shape grid interpolates between 1024 and 4096 there)."""
    from superscale.validate.components import dense_gemm_checks

    (best,) = [c for c in dense_gemm_checks() if "H100 SXM bf16" in c.label]
    sustained = best.measured * 1382.2 / 1402.6
    assert best.predicted == pytest.approx(sustained, rel=0.04)


def test_causal_flash_attention_within_10_percent() -> None:
    """FlashAttention-2 causal forward + backward on A100 and H100 at 2k-16k keys: priced
    within 10% at the op's key length; averaging head sizes 64 and 128 puts H100's d128
    rows 6-7% slow and its d64 rows 6-8% fast."""
    from superscale.validate.components import attention_checks

    checks = [
        c
        for c in attention_checks()
        if "causal" in c.label and int(c.label.split(" s")[1].split(" ")[0]) >= 2048
    ]
    assert len(checks) == 16  # A100 and H100, head size 64 and 128, 2k to 16k keys
    assert all(abs(c.error_pct) <= 10.0 for c in checks), [
        (c.label, round(c.error_pct, 1)) for c in checks
    ]


def test_large_collectives_within_their_measured_bus_bandwidth() -> None:
    """nccl-tests at >= 1 GiB inside one A100, H100 or H200 node within 6% of the priced
    collective; across 2-32 H100 nodes at >= 4 GiB within 20%.

    The worst of those, two AWS p5 nodes at 4-8 GiB (466-478 GB/s, priced about 19%
    slow), measure above the bandwidth ceiling of every algorithm modelled there (the
    tree's, each GPU's NVLink carrying its chain up and down; the ring's, eight NIC
    rails) and at the single-node NVLS figure: NCCL runs NVLS inside each node and a tree
    across the two (NVLSTree), which superscale does not model. The tree's latency and
    pipeline fill take under 10% off its ceiling there, so that gap is the missing
    algorithm, not the fixed terms."""
    from superscale.collectives import BUS_FACTOR, CommModel
    from superscale.hardware.spec import Cluster
    from superscale.validate.components import collective_checks

    checks = collective_checks()
    inside = [c for c in checks if "/1 nodes" in c.label and _size_gib(c.label) >= 1]
    across = [c for c in checks if "/1 nodes" not in c.label and _size_gib(c.label) >= 4]
    assert len(inside) == 24 and len(across) == 14
    assert all(abs(c.error_pct) <= 6.0 for c in inside), [
        (c.label, round(c.error_pct, 1)) for c in inside if abs(c.error_pct) > 6.0
    ]
    assert all(abs(c.error_pct) <= 20.0 for c in across), [
        (c.label, round(c.error_pct, 1)) for c in across if abs(c.error_pct) > 20.0
    ]
    two_nodes = CommModel(Cluster.model_validate({"system": "dgx-h100", "count": 2}))
    costs = two_nodes.costs("all_reduce", 16, 1)
    ceiling = BUS_FACTOR["all_reduce"](16) / min(c.per_byte_s for c in costs.values()) / 1e9
    above = [c for c in across if c.measured > ceiling]
    assert [c.label.split(" [")[0] for c in above] == [
        "all_reduce H100 16 GPUs/2 nodes 4GiB",
        "all_reduce H100 16 GPUs/2 nodes 8GiB",
    ]
    assert all(0.9 * ceiling < c.predicted < ceiling for c in above)


def _size_gib(label: str) -> float:
    """The message size a collective check's label names, GiB (0 below 1 GiB)."""
    size = label.split(" nodes ")[1].split(" ")[0]
    return float(size[:-3]) if size.endswith("GiB") else 0.0
