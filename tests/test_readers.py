"""The bounded readers: non-regular files refused by name, caps, YAML and JSON bounds, and a
hypothesis fuzz that finds no exception but SpecError from any text or document."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from superscale.errors import SpecError
from superscale.readers import (
    Bounds,
    load_json_text,
    load_yaml_text,
    read_bytes_bounded,
    read_json,
    read_yaml,
)
from superscale.scenario import load_scenario

FUZZ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)


def test_non_regular_files_are_refused_by_name(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    for path, word in (("/dev/zero", "device"), (fifo, "FIFO"), (tmp_path, "directory")):
        with pytest.raises(SpecError, match=word):
            read_bytes_bounded(path, limit_bytes=100, what="scenario")


def test_cap_counts_bytes_read_not_the_stat_size(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_bytes(b"a" * 101)
    assert len(read_bytes_bounded(path, limit_bytes=101, what="x")) == 101
    with pytest.raises(SpecError, match="limited to 100 bytes"):
        read_bytes_bounded(path, limit_bytes=100, what="x")


@pytest.mark.parametrize(
    ("text", "word"),
    [
        ("a: 1\na: 2\n", "duplicate key 'a'"),
        ("a: {b: 1, b: 2}\n", "duplicate key 'a.b'"),
        ("a: " + "[" * 50 + "]" * 50, "nest"),
        ("a: " + "9" * 30, "digits"),
        ("a: &x [*x]", "recursive"),
        ("a: !!python/object/apply:os.system [ls]", "tag"),
        ("a: [1, 2\n", "malformed"),
    ],
)
def test_yaml_bounds(text: str, word: str) -> None:
    with pytest.raises(SpecError, match=word):
        load_yaml_text(text, origin="t")


def test_yaml_merge_keys_and_plain_documents_still_load() -> None:
    text = "base: &b {x: 1, y: 2}\nc:\n  <<: *b\n  x: 3\n"
    assert load_yaml_text(text, origin="t") == yaml.safe_load(text)
    assert load_yaml_text("", origin="t") is None


def test_node_bound_counts_alias_expansions() -> None:
    lines = ["a: &a [1, 2, 3, 4, 5, 6, 7, 8]"]
    lines += [f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}]" for p, c in zip("abcd", "bcde", strict=True)]
    with pytest.raises(SpecError, match="values"):
        load_yaml_text("\n".join(lines), origin="t", bounds=Bounds(max_nodes=500))


@pytest.mark.parametrize(
    ("text", "word"),
    [
        ('{"a": 1, "a": 2}', "duplicate"),
        ('{"a": NaN}', "finite"),
        ('{"a": Infinity}', "finite"),
        ("[" * 100 + "]" * 100, "nested"),
        ('{"a": ' + "1" * 40 + "}", "digits"),
        ('{"a": ', "not valid JSON"),
    ],
)
def test_json_bounds(text: str, word: str) -> None:
    with pytest.raises(SpecError, match=word):
        load_json_text(text, origin="t")


def test_json_brackets_inside_strings_do_not_count() -> None:
    assert load_json_text(json.dumps({"a": "[" * 100}), origin="t") == {"a": "[" * 100}


def test_file_readers(tmp_path: Path) -> None:
    (tmp_path / "c.json").write_text('{"a": 1}')
    (tmp_path / "c.yaml").write_text("a: 1\n")
    assert read_json(tmp_path / "c.json", what="hf_config") == {"a": 1}
    assert read_yaml(tmp_path / "c.yaml", limit_bytes=100, what="scenario") == {"a": 1}


@FUZZ
@given(st.text(max_size=300))
def test_fuzz_yaml_text_gives_a_value_or_a_spec_error(text: str) -> None:
    with contextlib.suppress(SpecError):
        load_yaml_text(text, origin="fuzz")


@FUZZ
@given(st.text(alphabet='[]{}",:0123456789.eEaN -tfnrul\\', max_size=200))
def test_fuzz_json_text_gives_a_value_or_a_spec_error(text: str) -> None:
    with contextlib.suppress(SpecError):
        load_json_text(text, origin="fuzz")


_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
_SECTIONS = st.fixed_dictionaries(
    {},
    optional={
        "model": st.sampled_from(["llama3-8b", "llama3-70"]) | _VALUES,
        "cluster": st.fixed_dictionaries(
            {"system": st.sampled_from(["dgx-h100", "dgx-a100"]) | _VALUES, "count": _SCALARS}
        )
        | _VALUES,
        "training": st.fixed_dictionaries(
            {"seq_len": _SCALARS, "global_batch": _SCALARS}, optional={"tokens": _SCALARS}
        ),
        "parallel": st.dictionaries(
            st.sampled_from(["tp", "pp", "cp", "ep", "micro_batch", "zero", "schedule"]),
            _SCALARS,
            max_size=4,
        ),
        "serving": _VALUES,
    },
)


@FUZZ
@given(_SECTIONS)
def test_fuzz_scenarios_give_a_scenario_or_a_spec_error(data: dict[str, object]) -> None:
    # Through YAML, as a file would arrive: every document is a scenario or one SpecError.
    text = yaml.safe_dump(data)
    with contextlib.suppress(SpecError):
        load_scenario(load_yaml_text(text, origin="fuzz") or {})


_HF_KEYS = st.sampled_from(
    [
        "model_type", "num_hidden_layers", "hidden_size", "num_attention_heads",
        "num_key_value_heads", "intermediate_size", "vocab_size", "head_dim",
        "tie_word_embeddings", "n_routed_experts", "num_experts_per_tok",
        "moe_intermediate_size", "kv_lora_rank",
    ]
)  # fmt: skip


@FUZZ
@given(st.dictionaries(_HF_KEYS, _SCALARS, max_size=10))
def test_fuzz_hf_config_gives_a_model_or_a_spec_error(config: dict[str, object]) -> None:
    from pydantic import ValidationError

    from superscale.models.hf import from_hf_config

    try:
        from_hf_config(config, name="fuzz")
    except SpecError:
        pass
    except ValidationError as exc:  # the CLI reports these as one line too
        assert exc.errors()


@FUZZ
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["0", "1.5", "1e300", "-1", "nan", "inf", "x", ""]),
            st.sampled_from(["1", "100", "0", "99999999999", "1.5", ""]),
            st.sampled_from(["1", "10", "-3", "abc"]),
        ),
        max_size=6,
    )
)
def test_fuzz_trace_text_gives_requests_or_a_spec_error(rows: list[tuple[str, str, str]]) -> None:
    from superscale.inference.workload import parse_trace

    text = "arrival_s,prompt_tokens,output_tokens\n" + "".join(",".join(r) + "\n" for r in rows)
    with contextlib.suppress(SpecError):
        parse_trace(text, origin="fuzz", max_requests=4)


@FUZZ
@given(_VALUES)
def test_fuzz_profile_gives_a_profile_or_a_spec_error(data: object) -> None:
    from superscale.hardware.profile import parse_profile

    document = {"format": "superscale-profile/1", "device": data, "matmul": data}
    with contextlib.suppress(SpecError):
        parse_profile(document, origin="fuzz")
