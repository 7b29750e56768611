"""Scalar/array helpers: one answer whether a plan comes alone or in a batch."""

from __future__ import annotations

import numpy as np
import pytest

from superscale import vec

TABLE = {"1f1b": 1.0, "zb-h1": 1 / 3, "dualpipe": 0.5}


def test_lookup_of_an_array_matches_each_scalar_lookup() -> None:
    keys = np.array(["dualpipe", "1f1b", "zb-h1", "1f1b"])
    assert vec.lookup(TABLE, keys).tolist() == [vec.lookup(TABLE, str(k)) for k in keys]


def test_lookup_names_an_unknown_key() -> None:
    with pytest.raises(KeyError, match="gpipe"):
        vec.lookup(TABLE, np.array(["1f1b", "gpipe"]))
    with pytest.raises(KeyError, match="gpipe"):
        vec.lookup(TABLE, "gpipe")
