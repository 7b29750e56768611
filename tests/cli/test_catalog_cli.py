"""`superscale catalog`, `show` and `check`, run in-process through `superscale.cli.main`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from superscale.cli import main
from superscale.hardware.catalog import clusters, systems
from superscale.models.catalog import models

EXAMPLES = sorted(
    p
    for p in (Path(__file__).parents[2] / "examples").glob("*.yaml")
    if not p.name.startswith("serve-")  # serving scenarios: tests/cli/test_serving_cli.py
)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    code, out, err = run(capsys, *argv, "--json")
    assert code == 0, err
    return json.loads(out)


@pytest.mark.parametrize(
    ("kind", "name"),
    [
        ("chips", "h100-sxm"),
        ("links", "nvlink4"),
        ("systems", "dgx-h100"),
        ("clusters", "h100-16k"),
        ("models", "llama3-70b"),
    ],
)
def test_catalog_lists_each_kind(capsys: pytest.CaptureFixture[str], kind: str, name: str) -> None:
    code, out, err = run(capsys, "catalog", kind)
    assert code == 0, err
    assert name in out
    entries = run_json(capsys, "catalog", kind)
    assert isinstance(entries, list)
    by_name = {e["name"]: e for e in entries}
    assert name in by_name
    assert "source" in by_name[name]


def test_catalog_headers_carry_units(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(capsys, "catalog", "chips")
    for unit in ("TFLOP/s", "GiB", "TB/s", "GB/s", "W"):
        assert unit in out


def test_catalog_without_kind_counts_each(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "catalog")
    assert code == 0
    for kind in ("chips", "links", "systems", "clusters", "models"):
        assert kind in out
    assert "superscale show" in out
    counts = run_json(capsys, "catalog")
    assert "llama3-70b" in counts["models"]


def test_catalog_unknown_kind_lists_allowed(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "catalog", "chip")
    assert code == 2
    assert "did you mean 'chips'" in err
    assert "models" in err and "systems" in err
    assert len(err.strip().splitlines()) == 1


def test_show_chip_prints_units_and_source(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "show", "h100-sxm")
    assert code == 0, err
    assert "peak_tflops.bf16" in out and "TFLOP/s" in out
    assert "hbm_gib" in out and "GiB" in out
    assert "source" in out


def test_show_marks_estimates(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "show", "nvlink4")
    assert code == 0
    assert "estimate" in out
    assert "µs" in out


def test_show_system_gives_gpus(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "show", "dgx-h100")
    assert code == 0
    assert "8 GPUs" in out
    assert "kW" in out
    spec = run_json(capsys, "show", "dgx-h100")
    assert spec["derived"]["gpus"] == 8
    assert spec["chip"]["name"] == "h100-sxm"


def test_show_cluster_gives_gpus(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "show", "h100-16k")
    assert code == 0
    assert "16,384 GPUs" in out
    spec = run_json(capsys, "show", "h100-16k")
    assert spec["derived"]["gpus"] == 16384 == clusters().get("h100-16k").gpus


def test_show_model_derives_params(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "show", "llama3-70b")
    assert code == 0
    assert "params 70.6 B" in out
    spec = run_json(capsys, "show", "llama3-70b")
    assert spec["layers"] == 80
    assert spec["derived"]["params"] == models().get("llama3-70b").params
    assert spec["derived"]["params_b"] == pytest.approx(70.6, rel=0.01)


def _require(name: str, catalog: Any) -> None:
    # These entries are written alongside this test; skip only until they land.
    if name not in catalog:
        pytest.skip(f"{name} is not in the catalog yet")


def test_show_json_metax_cube_128_is_the_full_spec(capsys: pytest.CaptureFixture[str]) -> None:
    _require("metax-cube-128", systems())
    spec = run_json(capsys, "show", "metax-cube-128")
    system = systems().get("metax-cube-128")
    assert spec["name"] == "metax-cube-128"
    assert spec["kind"] == "super-node"
    assert spec["gpus"] == spec["derived"]["gpus"] == system.gpus == 128
    assert spec["chip"]["name"] == system.chip.name
    assert spec["chip"]["peak_tflops"]["bf16"] > 0
    assert spec["scale_up"]["link"]["name"] == system.scale_up.link.name
    assert spec["source"]
    assert spec == {**system.model_dump(mode="json"), "derived": spec["derived"]}


def test_show_json_intern_s1_pro_is_the_full_spec(capsys: pytest.CaptureFixture[str]) -> None:
    _require("intern-s1-pro", models())
    spec = run_json(capsys, "show", "intern-s1-pro")
    model = models().get("intern-s1-pro")
    assert spec == {**model.model_dump(mode="json"), "derived": spec["derived"]}
    assert spec["moe"]["experts"] == model.moe.experts if model.moe else True
    assert spec["derived"]["params"] == model.params
    assert spec["derived"]["active_params"] == model.active_params
    assert spec["derived"]["active_params"] < spec["derived"]["params"]
    assert spec["derived"]["params_b"] > 500  # a trillion-class MoE


def test_show_unknown_name_suggests_across_catalogs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = run(capsys, "show", "dgx-h10")
    assert code == 2
    assert "unknown name 'dgx-h10'" in err
    assert "did you mean 'dgx-h100'" in err
    assert len(err.strip().splitlines()) == 1
    code, _, err = run(capsys, "show", "llama3-70")
    assert code == 2 and "did you mean 'llama3-70b'" in err


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_check_each_example(capsys: pytest.CaptureFixture[str], path: Path) -> None:
    code, out, err = run(capsys, "check", str(path))
    assert code == 0, err
    assert "parallel groups" in out
    report = run_json(capsys, "check", str(path))
    p = report["parallel"]
    assert report["gpus"] == p["tp"] * p["pp"] * p["cp"] * report["dp"]
    assert report["gpus"] == report["cluster"]["gpus"]
    assert report["micro_batches"] >= 1
    assert {"tp", "cp", "ep", "dp", "pp"} <= set(report["groups"])
    assert report["model"]["params"] > 0


def test_examples_exist() -> None:
    names = {p.name for p in EXAMPLES}
    assert {
        "llama3-70b-64xh100.yaml",
        "moe-metax-cube-128.yaml",
        "intern-s1-pro-metax-1k.yaml",
    } <= names


@pytest.mark.parametrize("verb", ["catalog", "show", "check"])
def test_help_teaches_with_an_example(capsys: pytest.CaptureFixture[str], verb: str) -> None:
    code, out, _ = run(capsys, verb, "--help")
    assert code == 0
    assert f"superscale {verb}" in " ".join(out.split())
    assert "--json" in out
