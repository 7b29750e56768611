"""The one fitted residual: its declared split, and the shipped figure at the fit's optimum."""

from __future__ import annotations

import pytest

from superscale.costs.host import HOST_LAUNCH_S
from superscale.validate.residual import log_error, loss
from superscale.validate.training import (
    HELD_OUT_SOURCES,
    compare_all,
    in_train_split,
    reference_rows,
    summarize_errors,
)


def test_the_split_is_declared_by_row_number() -> None:
    rows = reference_rows()
    held_out = [r for r in rows if r["source_key"] in HELD_OUT_SOURCES]
    test = [r for r in rows if not in_train_split(r)]
    assert test and all(r["source_key"] in HELD_OUT_SOURCES for r in test)
    assert {int(r["row_id"]) % 2 for r in test} == {1}
    assert len(test) == len([r for r in held_out if int(r["row_id"]) % 2])


def test_the_shipped_launch_time_is_the_fits_optimum() -> None:
    train = [r for r in reference_rows() if in_train_split(r)]
    shipped_us = HOST_LAUNCH_S * 1e6
    at = loss(shipped_us, train)
    assert at <= loss(shipped_us - 1.0, train)
    assert at <= loss(shipped_us + 1.0, train)
    assert at < loss(0.0, train)  # the residual earns its place on the train split


def test_validate_reports_both_splits_apart() -> None:
    summary = summarize_errors(compare_all())
    train, test = summary["train_split"], summary["test_split"]
    assert train["rows"] > 0 and test["rows"] > 0
    assert train["rows"] + test["rows"] == summary["overall"]["rows"]


def test_log_error_by_hand() -> None:
    from superscale.validate.training import Comparison

    def row(predicted: float) -> Comparison:
        return Comparison(
            row_id=1,
            source_key="s",
            model="m",
            gpus="8",
            metric="mfu_pct",
            published=50.0,
            predicted=predicted,
            has_architecture=True,
        )

    assert log_error([row(100.0), row(25.0)]) == pytest.approx(0.6931471805599453)
