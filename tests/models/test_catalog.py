"""Model catalog: parameter counts against published totals and the training reference CSV."""

from __future__ import annotations

import csv
import io
import re
from decimal import Decimal
from importlib import resources

import pytest

from superscale.models.catalog import models
from superscale.models.spec import ModelSpec
from superscale.validate.training import REFERENCE_MODELS

CATALOG = list(models())
# The package's shipped copy of shared/reference/training-published.csv (a test in
# tests/validate holds the two equal where shared/ is beside the checkout), so these tests
# run on a fresh clone too.
REFERENCE_CSV = resources.files("superscale.validate").joinpath("data/training-published.csv")

# DeepSeek counts activated parameters without the input embedding table (a lookup, not a
# matmul): deepseek-ai/DeepSeek-V3 README_WEIGHTS.md, "36.6B (including 0.9B for the output
# Head)". Every other published active count here includes it.
ACTIVE_EXCLUDES_INPUT_EMBEDDING = {"deepseek-v3", "gpt-oss-120b"}

REQUIRED = {
    "gpt-1.7b", "gpt-3.6b", "gpt-7.5b", "gpt-18.4b", "gpt-39.1b", "gpt-76.1b", "gpt-145.6b",
    "gpt-310.1b", "gpt-530b", "gpt-1t", "gpt-22b", "gpt3-175b",
    "mcore-gpt-1.7b", "mcore-gpt-7.1b", "mcore-gpt-16b", "mcore-gpt-32b", "mcore-gpt-70b",
    "mcore-gpt-119b", "mcore-gpt-177b", "mcore-gpt-314b", "mcore-gpt-462b",
    "nemo-gpt3-5b", "nemo-gpt3-20b", "llama2-7b", "llama2-13b", "llama2-70b", "llama3-8b",
    "llama3-70b", "llama3-405b", "nemotron-8b", "nemotron-22b", "nemotron4-340b",
    "mixtral-8x7b", "mixtral-8x22b", "deepseek-v3", "qwen3-235b-a22b", "intern-s1",
    "intern-s1-pro",
}  # fmt: skip

# (source_key, model) of each training-published.csv row -> catalog name.
CSV_MODELS = REFERENCE_MODELS


def _ids(model: ModelSpec) -> str:
    return model.name


def _published_active(model: ModelSpec) -> float:
    """The model's active count in the convention of its published figure, billions."""
    active = model.active_params
    if model.name in ACTIVE_EXCLUDES_INPUT_EMBEDDING:
        active -= model.vocab * model.hidden
    return active / 1e9


def _rounding(printed: str) -> float:
    """Half a unit in the last digit of a printed figure: "1.7" -> 0.05, "22" -> 0.5."""
    exponent = Decimal(printed).as_tuple().exponent
    assert isinstance(exponent, int)
    return 0.5 * 10.0**exponent


def _csv_rows() -> list[dict[str, str]]:
    text = REFERENCE_CSV.read_text(encoding="utf-8")
    return list(csv.DictReader(io.StringIO(text, newline="")))


def test_required_entries_present() -> None:
    missing = REQUIRED - set(models().names())
    assert not missing, f"catalog lacks {sorted(missing)}"


@pytest.mark.parametrize("model", CATALOG, ids=_ids)
def test_has_source(model: ModelSpec) -> None:
    assert model.source and model.source.strip()


@pytest.mark.parametrize("model", CATALOG, ids=_ids)
def test_estimate_has_reason(model: ModelSpec) -> None:
    if model.estimate:
        assert model.estimate_reason and len(model.estimate_reason) > 20
        # An estimate's total is not a published one; the 1% test must not apply to it.
        assert model.published_params_b is None


@pytest.mark.parametrize(
    "model", [m for m in CATALOG if m.published_params_b is not None], ids=_ids
)
def test_params_match_published(model: ModelSpec) -> None:
    assert model.published_params_b is not None
    computed = model.params / 1e9
    assert computed == pytest.approx(model.published_params_b, rel=0.01), (
        f"{model.name}: computed {computed:.3f}B vs published {model.published_params_b}B"
    )


@pytest.mark.parametrize("model", [m for m in CATALOG if m.is_moe], ids=_ids)
def test_moe_activates_fewer_parameters(model: ModelSpec) -> None:
    assert model.active_params < model.params


@pytest.mark.parametrize(
    "model", [m for m in CATALOG if m.published_active_params_b is not None], ids=_ids
)
def test_active_params_match_published(model: ModelSpec) -> None:
    assert model.published_active_params_b is not None
    computed = _published_active(model)
    assert computed == pytest.approx(model.published_active_params_b, rel=0.01), (
        f"{model.name}: computed active {computed:.3f}B vs "
        f"published {model.published_active_params_b}B"
    )


def test_intern_s1_pro_estimate() -> None:
    model = models().get("intern-s1-pro")
    assert model.estimate
    language_active = (model.active_params - model.vision_params) / 1e9
    language_total = (model.params - model.vision_params) / 1e9
    # Published: about 22B activated, about 1T in total (encoders included).
    assert language_active == pytest.approx(22.0, rel=0.03)
    assert 900 < model.params / 1e9 < 1000
    # The estimate's own arithmetic (models.md): ~0.92T language model, plus encoders.
    assert language_total == pytest.approx(920, rel=0.01)
    assert model.vision_params > 5e9


def test_intern_s1_is_qwen3_backbone_plus_internvit() -> None:
    intern, qwen = models().get("intern-s1"), models().get("qwen3-235b-a22b")
    language = intern.params - intern.vision_params
    # Only the vocabulary differs (153216 vs 151936 rows, input and output).
    assert language - qwen.params == 2 * (intern.vocab - qwen.vocab) * intern.hidden
    assert intern.vision_params / 1e9 == pytest.approx(5.54 + 0.07, rel=0.02)


@pytest.mark.parametrize("model", [m for m in CATALOG if m.name.startswith("mcore-gpt-")], ids=_ids)
def test_mcore_sizes_match_names(model: ModelSpec) -> None:
    """The README names are rounded sizes; untied embeddings reproduce them."""
    match = re.fullmatch(r"mcore-gpt-([\d.]+)b", model.name)
    assert match
    size = float(match.group(1))
    unit = 2 * _rounding(match.group(1))
    assert abs(model.params / 1e9 - size) <= max(0.01 * size, unit)


def test_csv_models_in_catalog() -> None:
    rows = _csv_rows()
    unmapped = {(r["source_key"], r["model"]) for r in rows} - set(CSV_MODELS)
    assert not unmapped, f"add these training-published.csv models to CSV_MODELS: {unmapped}"
    for key, name in CSV_MODELS.items():
        assert name in models(), f"{key} -> {name} missing from the catalog"


def test_csv_shapes_match_catalog() -> None:
    for row in _csv_rows():
        model = models().get(CSV_MODELS[(row["source_key"], row["model"])])
        for column, value in (
            ("layers", model.layers),
            ("hidden", model.hidden),
            ("heads", model.heads),
        ):
            if row[column]:
                assert int(row[column]) == value, f"row {row['row_id']} {column}"


def test_csv_params_match_catalog() -> None:
    checked = 0
    for row in _csv_rows():
        if not row["params_b"]:
            continue
        model = models().get(CSV_MODELS[(row["source_key"], row["model"])])
        published = float(row["params_b"])
        # The CSV prints sizes as the papers do (e.g. 1.7 for 1.65B): allow that rounding.
        tolerance = max(0.01 * published, _rounding(row["params_b"]))
        computed = model.params / 1e9
        assert abs(computed - published) <= tolerance, (
            f"row {row['row_id']} {row['model']}: {model.name} computes {computed:.3f}B, "
            f"CSV says {published}B"
        )
        checked += 1
    assert checked >= 19
