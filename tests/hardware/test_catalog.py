"""The hardware catalog as data: every entry loads, cites its source, flags its guesses, and
agrees with the published reference table (../shared/reference/hardware.csv) on the rows that
table marks high confidence. Also checks the structure the topology code relies on: GPUs tile
into scale-up domains, links are used for their kind, and the named presets have their sizes.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from superscale.errors import InfeasiblePlan, SpecError
from superscale.hardware.catalog import chips, clusters, links, systems
from superscale.hardware.spec import PRECISIONS, Chip, Cluster, Link, System

REPO_ROOT = Path(__file__).resolve().parents[2]
HARDWARE_CSV = REPO_ROOT.parent / "shared" / "reference" / "hardware.csv"

# Catalog precision -> hardware.csv column.
PEAK_COLUMNS = {
    "fp32": "fp32_tflops",
    "tf32": "tf32_tflops",
    "bf16": "bf16_tflops",
    "fp16": "fp16_tflops",
    "fp8": "fp8_tflops",
    "int8": "int8_tops",
    "fp4": "fp4_tflops",
}
MAMF_COLUMNS = {"bf16": "measured_mamf_bf16_tflops", "fp8": "measured_mamf_fp8_tflops"}
# Chips whose scale-up figure deliberately differs from the CSV cell, and why.
SCALE_UP_EXCEPTIONS = {
    # CSV 600 GB/s counts all 24 on-chip ports; 3 of them are scale-out, so 21 x 25 = 525.
    "gaudi3": 525.0,
}

_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_CITED_ROW = re.compile(r"hardware\.csv rows? (\d+)")


def _number(cell: str | None) -> float | None:
    """The first number in a CSV cell ('1677 (as clocked ...)' -> 1677), None if there is none."""
    match = _NUMBER.search(cell or "")
    return float(match.group()) if match else None


@pytest.fixture(scope="module")
def csv_rows() -> dict[str, dict[str, str]]:
    if not HARDWARE_CSV.is_file():
        pytest.skip(f"reference table not found at {HARDWARE_CSV}")
    with HARDWARE_CSV.open(encoding="utf-8", newline="") as handle:
        return {row["row_id"]: row for row in csv.DictReader(handle)}


def _cited_row(chip: Chip) -> str:
    match = _CITED_ROW.search(chip.source)
    assert match, f"chip {chip.name}: source must cite 'hardware.csv row N'"
    return match.group(1)


def _all_entries() -> list[Any]:
    return [*chips(), *links(), *systems(), *clusters()]


def _entry_id(entry: Any) -> str:
    return f"{type(entry).__name__.lower()}:{entry.name}"


ALL_ENTRIES = _all_entries()
ALL_CHIPS = list(chips())


# --- loading, sources, estimates ------------------------------------------------------------


def test_every_catalog_loads_with_entries() -> None:
    sizes = {"chips": len(chips()), "links": len(links()), "systems": len(systems())}
    sizes["clusters"] = len(clusters())
    assert all(size > 0 for size in sizes.values()), sizes


def test_catalogs_hold_the_names_other_code_relies_on() -> None:
    wanted_chips = {
        "c500", "c550", "c600", "a100-sxm-80g", "h100-sxm", "h800-sxm", "h200-sxm", "b200",
        "gb200", "gb300", "mi300x", "mi325x", "ascend-910b", "ascend-910c", "gaudi3",
    }  # fmt: skip
    wanted_systems = {
        "dgx-a100", "dgx-h100", "hgx-h800", "hgx-h200", "dgx-b200", "gb200-nvl72",
        "metax-c500-8x", "metax-c550-8x", "metax-cube-128", "cloudmatrix-384",
    }  # fmt: skip
    wanted_clusters = {"metax-c500-1k", "metax-cube-1k", "h100-16k"}
    assert wanted_chips <= set(chips().names())
    assert wanted_systems <= set(systems().names())
    assert wanted_clusters <= set(clusters().names())


@pytest.mark.parametrize("entry", ALL_ENTRIES, ids=_entry_id)
def test_every_entry_has_a_source_and_display_name(entry: Any) -> None:
    assert entry.source and entry.source.strip(), f"{entry.name} has no source"
    assert entry.display_name and entry.display_name.strip()


def _field_exists(model: Any, path: str) -> bool:
    """Whether a dotted path such as 'scale_up.ports' or 'peak_tflops.fp32' names a field."""
    node = model
    for part in path.split("."):
        if isinstance(node, BaseModel):
            if part not in type(node).model_fields:
                return False
            node = getattr(node, part)
        elif isinstance(node, dict):
            if part not in node and part not in PRECISIONS:
                return False
            node = node.get(part)
        else:
            return False
    return True


@pytest.mark.parametrize("entry", ALL_ENTRIES, ids=_entry_id)
def test_every_estimate_gives_a_one_line_reason_and_real_fields(entry: Any) -> None:
    if not entry.estimate:
        assert not entry.estimated_fields
        return
    reason = entry.estimate_reason
    assert reason and reason.strip() and "\n" not in reason, f"{entry.name}: reason {reason!r}"
    for path in entry.estimated_fields:
        assert _field_exists(entry, path), f"{entry.name}: estimated field '{path}' not a field"


def test_an_estimate_without_a_reason_is_rejected() -> None:
    raw = {
        "name": "x",
        "display_name": "X",
        "kind": "host",
        "bandwidth_gb_per_s": 1,
        "latency_us": 1,
        "source": "s",
        "estimate": True,
    }
    with pytest.raises(ValueError, match="estimate_reason"):
        Link.model_validate(raw)


# --- chips against the reference table ------------------------------------------------------


@pytest.mark.parametrize("chip", ALL_CHIPS, ids=lambda c: c.name)
def test_chip_cites_a_csv_row_of_its_vendor(
    chip: Chip, csv_rows: dict[str, dict[str, str]]
) -> None:
    row = csv_rows[_cited_row(chip)]
    assert row["vendor"].lower().startswith(chip.vendor.lower()), (chip.name, row["vendor"])
    if row["confidence"] != "high":
        assert chip.estimate, f"{chip.name}: row {row['row_id']} is {row['confidence']}"


HIGH_CONFIDENCE_CHIPS = [
    "a100-sxm-80g", "h100-sxm", "h200-sxm", "b200", "gb200", "gb300", "mi300x", "mi325x",
    "gaudi3",
]  # fmt: skip
# Chips with no row of their own that cite a sibling's row for what they share (B300: the
# GB300 row's memory; its peaks are the MAMF table's dense peaks for the HGX part; MI355X:
# the MI325X row's xGMI mesh, its peaks from gemm.csv).
BY_ANALOGY = {"b300", "mi355x"}


@pytest.mark.parametrize("name", HIGH_CONFIDENCE_CHIPS)
def test_high_confidence_chip_matches_csv(name: str, csv_rows: dict[str, dict[str, str]]) -> None:
    chip = chips().get(name)
    row = csv_rows[_cited_row(chip)]
    assert row["confidence"] == "high", f"{name}: cites row {row['row_id']}, not high"
    for precision, column in PEAK_COLUMNS.items():
        published = _number(row[column])
        if published is None:
            assert precision not in chip.peak_tflops, f"{name}: {precision} not in the CSV"
        else:
            assert chip.peak_tflops.get(precision) == pytest.approx(published), (name, precision)
    assert chip.hbm_gib == pytest.approx(_number(row["mem_gb"]))
    assert chip.hbm_bandwidth_tb_per_s == pytest.approx(_number(row["mem_bw_tbs"]), rel=0.025)
    for precision, column in MAMF_COLUMNS.items():
        measured = _number(row[column])
        if measured is not None:
            assert chip.measured_matmul_tflops.get(precision) == pytest.approx(measured)
    published_up = SCALE_UP_EXCEPTIONS.get(name, _number(row["scaleup_bw_per_gpu_uni_GBps"]))
    assert chip.scale_up is not None
    assert chip.scale_up.bandwidth_gb_per_s == pytest.approx(published_up)


def test_high_confidence_list_covers_every_high_row_the_catalog_cites(
    csv_rows: dict[str, dict[str, str]],
) -> None:
    cited_high = {c.name for c in chips() if csv_rows[_cited_row(c)]["confidence"] == "high"}
    assert cited_high - BY_ANALOGY == set(HIGH_CONFIDENCE_CHIPS)
    assert all(chips().get(name).estimate for name in BY_ANALOGY)


def test_c500_matches_its_official_figures_and_lacks_fp8(
    csv_rows: dict[str, dict[str, str]],
) -> None:
    c500 = chips().get("c500")
    row = csv_rows["17"]
    assert "C500" in row["accelerator"]
    assert "fp8" not in c500.peak_tflops
    assert "not supported" in row["fp8_tflops"]
    for precision in ("tf32", "bf16", "fp16", "int8"):
        assert c500.peak_tflops[precision] == _number(row[PEAK_COLUMNS[precision]])
    assert c500.peak_tflops["fp32"] == 36  # the matrix figure of "18 (vector) / 36 (matrix)"
    assert c500.hbm_gib == 64
    assert c500.hbm_bandwidth_tb_per_s == pytest.approx(1.8)
    assert c500.host_link == "pcie5-x16"


def test_chips_without_fp8_refuse_it() -> None:
    for name in ("c500", "a100-sxm-80g"):
        with pytest.raises(InfeasiblePlan, match="no fp8 support"):
            chips().get(name).peak_flops("fp8")
    assert chips().get("h100-sxm").peak_flops("fp8") == pytest.approx(1979e12)


def test_metax_scale_up_is_flagged_as_estimate() -> None:
    for name in ("c500", "c550", "c600"):
        chip = chips().get(name)
        assert chip.estimate
        assert any(f.startswith("scale_up") for f in chip.estimated_fields), name
    for name in ("metaxlink", "metaxlink-switch"):
        assert "bandwidth_gb_per_s" in links().get(name).estimated_fields


@pytest.mark.parametrize("chip", ALL_CHIPS, ids=lambda c: c.name)
def test_chip_links_exist_and_have_the_right_kind(chip: Chip) -> None:
    if chip.scale_up is not None:
        assert links().get(chip.scale_up.link).kind == "scale-up"
    if chip.host_link is not None:
        assert links().get(chip.host_link).kind == "host"


# --- systems --------------------------------------------------------------------------------


@pytest.mark.parametrize("system", list(systems()), ids=lambda s: s.name)
def test_system_gpus_tile_into_domains(system: System) -> None:
    assert system.domains * system.scale_up.gpus == system.gpus
    assert system.domains >= 1
    if system.domains > 1:
        assert system.domain_link is not None
    assert system.scale_up.link.kind == "scale-up"
    assert system.nics.link.kind == "scale-out"
    if system.domain_link is not None:
        assert system.domain_link.kind in {"host", "scale-up"}
    if system.kind == "server":
        assert system.rack_units is not None
    if system.kind == "super-node":
        assert system.cabinets is not None
    assert system.scale_up_bytes_per_s > 0


def test_a_system_whose_gpus_do_not_tile_is_rejected() -> None:
    raw = systems().get("dgx-h100").model_dump()
    raw["scale_up"]["gpus"] = 3
    with pytest.raises(ValueError, match=r"multiple of scale_up\.gpus"):
        System.model_validate(raw)


def test_metax_c500_server_is_two_metaxlink_groups_over_pcie() -> None:
    server = systems().get("metax-c500-8x")
    assert (server.gpus, server.scale_up.gpus, server.domains) == (8, 4, 2)
    assert server.scale_up.link.name == "metaxlink"
    assert server.domain_link is not None and server.domain_link.name == "pcie5-x16"
    assert server.nics.count == 2 and server.nics.link.bandwidth_gbit_per_s == 200


def test_metax_cube_is_one_liquid_cooled_cabinet_of_128_on_unified_memory() -> None:
    cube = systems().get("metax-cube-128")
    assert cube.kind == "super-node"
    assert cube.cooling == "liquid"
    assert cube.gpus == 128 and cube.scale_up.gpus == 128 and cube.domains == 1
    assert cube.cabinets == 1
    assert cube.scale_up.link.unified_memory
    assert cube.scale_up.topology == "switch"
    assert cube.power_kw is not None and cube.power_kw > 128 * 0.450  # above GPU power alone


def test_rack_scale_super_nodes() -> None:
    nvl72 = systems().get("gb200-nvl72")
    assert (nvl72.gpus, nvl72.scale_up.gpus, nvl72.nics.count) == (72, 72, 72)
    assert nvl72.cooling == "liquid" and nvl72.scale_up.link.in_network_reduction
    cm384 = systems().get("cloudmatrix-384")
    assert (cm384.gpus, cm384.scale_up.gpus, cm384.cabinets) == (384, 384, 16)
    assert cm384.scale_up_bytes_per_s == pytest.approx(392e9)
    assert cm384.nics.link.bandwidth_gbit_per_s == 400


# --- clusters -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "gpus"), [("metax-c500-1k", 1024), ("metax-cube-1k", 1024), ("h100-16k", 16384)]
)
def test_cluster_gpu_counts(name: str, gpus: int) -> None:
    assert clusters().get(name).gpus == gpus


def test_llama3_cluster_uses_400g_roce_per_gpu() -> None:
    cluster = clusters().get("h100-16k")
    assert cluster.nic.name == "roce-400g"
    assert cluster.nic_bytes_per_s_per_system == pytest.approx(8 * 400e9 / 8)
    assert "Dubey" in (cluster.source or "")


@pytest.mark.parametrize("cluster", list(clusters()), ids=lambda c: c.name)
def test_cluster_network_is_scale_out(cluster: Any) -> None:
    assert cluster.nic.kind == "scale-out"
    assert cluster.scale_out.oversubscription >= 1
    assert cluster.gpus == cluster.system.gpus * cluster.count


def test_unknown_catalog_name_is_a_spec_error() -> None:
    with pytest.raises(SpecError):
        systems().get("metax-cube-129")


def test_slices_of_super_nodes() -> None:
    from pydantic import ValidationError

    from superscale.hardware.spec import Cluster

    whole = Cluster.model_validate({"system": "gb200-nvl72", "count": 4})
    assert whole.gpus == 288
    sliced = Cluster.model_validate({"system": "gb200-nvl72", "count": 4, "gpus_per_system": 64})
    assert sliced.gpus == 256
    assert (sliced.system.scale_up.gpus, sliced.system.nics.count) == (64, 64)
    assert sliced.system.power_kw == pytest.approx(whole.system.power_kw * 64 / 72)
    again = Cluster.model_validate(sliced.model_dump())  # a dumped slice loads as itself
    assert again.system == sliced.system
    with pytest.raises(ValidationError, match=r"exceeds the 72 GPUs"):
        Cluster.model_validate({"system": "gb200-nvl72", "count": 1, "gpus_per_system": 73})
    with pytest.raises(ValidationError, match=r"scale-up domain"):  # two 4-GPU groups
        Cluster.model_validate({"system": "metax-c500-8x", "count": 1, "gpus_per_system": 6})


def test_power_cap_lowers_the_clock_and_the_power() -> None:
    from superscale import load_scenario
    from superscale.hardware.spec import capped_clock_fraction
    from superscale.pipeline import simulate

    def run(cap: float | None) -> dict[str, Any]:
        cluster: dict[str, Any] = {"system": "dgx-h100", "count": 2}
        if cap is not None:
            cluster["power_limit_w"] = cap
        scenario = load_scenario(
            {
                "model": "llama3-8b",
                "cluster": cluster,
                "training": {"seq_len": 4096, "global_batch": 64},
                "parallel": {"tp": 8},
            }
        )
        return simulate(scenario).to_json()

    full, capped = run(None), run(500)
    fraction = capped_clock_fraction(700, 500)  # ((500 - 77) / (700 - 77))^(1/3)
    assert fraction == pytest.approx(((500 - 77) / (700 - 77)) ** (1 / 3), rel=1e-3)
    assert capped["step_time_s"] > full["step_time_s"]
    # compute-bound work slows by the clock; the whole step by less
    compute_ratio = capped["breakdown_s"]["compute"] / full["breakdown_s"]["compute"]
    assert 1.0 < compute_ratio <= 1 / fraction + 1e-9
    assert capped["facility"]["power"]["gpu_w"] < full["facility"]["power"]["gpu_w"]


def test_power_cap_outside_idle_to_tdp_is_refused() -> None:
    from superscale.errors import SpecError
    from superscale.scenario import load_scenario

    for cap in (900, 50):
        with pytest.raises(SpecError, match=r"power_limit_w must be in"):
            load_scenario(
                {
                    "model": "llama3-8b",
                    "cluster": {"system": "dgx-h100", "count": 1, "power_limit_w": cap},
                    "training": {"seq_len": 4096, "global_batch": 8},
                    "parallel": {"tp": 8},
                }
            )


def test_mi355x_platform_mesh_and_mamf() -> None:
    """MI355X: the gemm.csv MAMF row, and a full mesh of 7 x 76.8 GB/s links whose mesh
    all-reduce busbw (7 links x 0.80 protocol efficiency = 430 GB/s) beats the MI300X's."""
    from superscale.collectives import BUS_FACTOR, CommModel

    chip = chips().get("mi355x")
    assert chip.measured_matmul_tflops["bf16"] == pytest.approx(1565.0)
    assert chip.estimate and "scale_up" in chip.estimated_fields
    busbw = {}
    for name in ("mi300x-8x", "mi355x-8x"):
        model = CommModel(Cluster(system=systems().get(name), count=1))
        seconds = model.best("all_reduce", 8 * 2**30, 8, 1)[1]
        busbw[name] = 8 * 2**30 / seconds * BUS_FACTOR["all_reduce"](8) / 1e9
    assert busbw["mi355x-8x"] == pytest.approx(7 * 76.8 * 0.80, rel=0.01)
    assert busbw["mi355x-8x"] > busbw["mi300x-8x"]
