"""Vectorized plan evaluation: agreement with the scalar pipeline, pruning, coverage of the
published plans (shared/reference/training-published.csv)."""

from __future__ import annotations

from functools import cache
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from superscale.hardware.catalog import systems
from superscale.hardware.spec import Cluster
from superscale.scenario import load_scenario
from superscale.search.evaluate import evaluate_batch, evaluate_one, plan_key
from superscale.search.space import COLUMNS, Enumeration, enumerate_plans
from superscale.validate.training import reference_rows, scenario_dict

BASES = {
    "dense-h100": (
        {
            "model": "llama3-70b",
            "training": {"seq_len": 4096, "global_batch": 64},
            "parallel": {"tp_comm_overlap": True},
        },
        "dgx-h100",
        8,
    ),
    "moe-cube": (
        {"model": "qwen3-235b-a22b", "training": {"seq_len": 4096, "global_batch": 128}},
        "metax-cube-128",
        1,
    ),
    "multimodal-moe": (
        {
            "model": "intern-s1",
            "training": {"seq_len": 4096, "global_batch": 64, "images_per_sample": 1},
            "parallel": {"tp_comm_overlap": True},
        },
        "dgx-h100",
        4,
    ),
    "unfused-a100": (
        {
            "model": "gpt3-175b",
            "training": {"seq_len": 2048, "global_batch": 64, "precision": "fp16", "dropout": True},
            "parallel": {"flash_attention": False, "dp_comm_overlap": False},
        },
        "dgx-a100",
        8,
    ),
}


@cache
def _space(name: str) -> Enumeration:
    base, system, count = BASES[name]
    cluster = Cluster(system=systems().get(system), count=count)
    return enumerate_plans({**base, "cluster": system}, clusters=[cluster])


@cache
def _batch(name: str) -> tuple[dict[str, Any], ...]:
    return tuple(evaluate_batch(_space(name).candidates, prune_memory=False))


@settings(max_examples=80, deadline=None)
@given(name=st.sampled_from(sorted(BASES)), pick=st.integers(0, 10**9))
def test_vectorized_matches_scalar(name: str, pick: int) -> None:
    (table,) = _space(name).tables
    i = pick % len(table)
    candidate = table.candidate(i)
    batch, scalar = _batch(name)[i], evaluate_one(candidate)
    assert batch["key"] == scalar["key"] == plan_key(candidate)
    assert scalar["error"] is None, scalar["error"]
    assert batch["peak_gib_per_gpu"] == pytest.approx(scalar["peak_gib_per_gpu"], rel=1e-9)
    assert batch["fits"] == scalar["fits"]
    for field in ("step_time_s", "tokens_per_s", "mfu"):
        assert batch[field] == pytest.approx(scalar[field], rel=1e-9), field


def test_plans_that_do_not_fit_are_pruned_before_costing() -> None:
    records = evaluate_batch(_space("moe-cube").candidates)
    pruned = [r for r in records if not r["fits"]]
    costed = [r for r in records if r["fits"]]
    assert pruned and costed
    assert all(r["step_time_s"] is None and r["error"] == "does not fit in memory" for r in pruned)
    assert all(r["step_time_s"] > 0 for r in costed)
    assert sum(_space("moe-cube").pruned.values()) > 0  # and the enumeration's own prunes


PLAN_FIELDS = COLUMNS  # every searched plan field
DEFAULTS = {
    "cp": 1,
    "ep": 1,
    "micro_batch": 1,
    "virtual_stages": 1,
    "schedule": "1f1b",
    "zero": 1,
    "recompute": "none",
    "sequence_parallel": True,
}


def _published_rows() -> list[dict[str, str]]:
    rows = []
    for row in reference_rows():
        try:
            scenario_dict(row)
        except Exception:  # rows 19 and 29 publish no single plan
            continue
        rows.append(row)
    return rows


def test_every_published_plan_is_searched_and_beaten() -> None:
    import numpy as np

    from superscale.search.evaluate import evaluate_table

    rows = _published_rows()
    assert len(rows) >= 39
    for row in rows:
        base = scenario_dict(row)
        cluster = load_scenario(base).cluster
        (table,) = enumerate_plans(base, clusters=[cluster]).tables
        published = {k: base["parallel"].get(k, DEFAULTS.get(k)) for k in PLAN_FIELDS}
        published["sequence_parallel"] = published["sequence_parallel"] and published["tp"] > 1
        chunks = published["pp"] * published["virtual_stages"]
        if published["virtual_stages"] > 1 and load_scenario(base).model.layers % chunks:
            continue  # an uneven layout (Megatron-Bridge's 405B): search splits evenly only
        match = np.ones(len(table), dtype=bool)
        for name in COLUMNS:
            match &= table.values(name) == published[name]
        assert match.any(), f"row {row['row_id']}: published plan {published} not enumerated"
        candidate = table.candidate(int(np.flatnonzero(match)[0]))
        assert all(candidate["parallel"][k] == published[k] for k in PLAN_FIELDS)
        reference = evaluate_one(candidate)
        done = evaluate_table(table)
        if not reference["fits"]:  # a published plan the memory model overfills (reported)
            continue
        best = np.nanmax(np.where(done.fits, done.tokens_per_s, np.nan))
        assert best >= reference["tokens_per_s"] * (1 - 1e-9), row["row_id"]


def test_table_evaluation_matches_batch_records() -> None:
    """`evaluate_table` (the search's hot path) and `evaluate_batch` (records of scenario
    mappings) give the same figures, and records of any rows of a table are those rows'."""
    import numpy as np

    from superscale.search.evaluate import evaluate_table

    table = _space("moe-cube").tables[0]
    done = evaluate_table(table, prune_memory=False)
    rows = np.random.default_rng(0).choice(len(table), 40, replace=False)
    picked = done.records(rows)
    assert picked == [_batch("moe-cube")[i] for i in rows.tolist()]
    assert np.isfinite(done.step_time_s).all() and np.isfinite(done.peak_bytes).all()


def test_candidates_keep_the_base_software_stack() -> None:
    base = {
        "model": "qwen3-30b-a3b",
        "cluster": {"system": "dgx-h100", "count": 2},
        "training": {"seq_len": 4096, "global_batch": 64},
        "parallel": {
            "ep": 8,
            "ep_dispatch": "deepep",
            "ep_comm_overlap": True,
            "grad_reduce_dtype": "fp32",
            "recompute_modules": ["layernorm", "moe_act"],
        },
    }
    cluster = load_scenario(base).cluster
    (table,) = enumerate_plans(base, clusters=[cluster]).tables
    parallel = table.candidate(0)["parallel"]
    assert parallel["ep_dispatch"] == "deepep" and parallel["ep_comm_overlap"] is True
    assert parallel["grad_reduce_dtype"] == "fp32"
    assert parallel["recompute_modules"] == ["layernorm", "moe_act"]
    load_scenario(table.candidate(len(table) - 1))  # any candidate loads, whatever its recompute
