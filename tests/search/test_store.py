"""The results store: round trip, resume by missing keys, refusal of another scenario,
compact rows, damage refused and rebuilt, claims shared between sweeps."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from superscale.errors import SpecError
from superscale.search.store import ResultsStore, rebuild, scenario_key


def _record(i: int, *, fits: bool = True) -> dict[str, Any]:
    return {
        "key": f"k{i:03d}",
        "cluster": "1x dgx-h100",
        "gpus": 8,
        "parallel": {"tp": 1, "pp": 1},
        "step_time_s": 1.0 / (i + 1),
        "tokens_per_s": 1000.0 * (i + 1),
        "tokens_per_s_per_gpu": 125.0 * (i + 1),
        "mfu": 0.01 * i,
        "peak_gib_per_gpu": 10.0,
        "fits": fits,
        "error": None if fits else "does not fit in memory",
    }


def test_round_trip_top_and_missing(tmp_path: Path) -> None:
    records = [_record(i, fits=i % 3 != 0) for i in range(10)]
    with ResultsStore(tmp_path / "s.sqlite", scenario_key="a") as store:
        store.add(records[:6])
        store.add(records[6:])
        store.add(records[:2])  # re-adding a key replaces it, never duplicates
        assert store.count() == 10
        assert store.count(fits_only=True) == 6
        assert store.missing(["k001", "k009", "new", "new"]) == {"new"}
        assert store.records() == sorted(records, key=lambda r: r["key"])
        assert store.get(["k004", "k002", "zzz"]) == [records[2], records[4]]
        top = store.top(3)
        assert [r["key"] for r in top] == ["k008", "k007", "k005"]  # k009 and k006 do not fit
        assert [r["key"] for r in store.top(2, fits_only=False)] == ["k009", "k008"]
    # Reopened: everything is still there (each add was committed).
    with ResultsStore(tmp_path / "s.sqlite", scenario_key="a") as store:
        assert store.count() == 10


def test_other_scenario_is_refused(tmp_path: Path) -> None:
    base = {"model": "llama3-8b", "training": {"seq_len": 4096, "global_batch": 8}}
    other = {**base, "training": {"seq_len": 8192, "global_batch": 8}}
    # The cluster and plan are what a search varies: they do not change the key.
    assert scenario_key(base) == scenario_key({**base, "cluster": "x", "parallel": {"tp": 2}})
    path = tmp_path / "s.sqlite"
    ResultsStore(path, scenario_key=scenario_key(base)).close()
    with pytest.raises(SpecError, match="different scenario"):
        ResultsStore(path, scenario_key=scenario_key(other))
    ResultsStore(path).close()  # no key given (e.g. `superscale results`): no check


def test_unreadable_files(tmp_path: Path) -> None:
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not a database, just some bytes " * 50)
    with pytest.raises(SpecError, match="not a superscale results database"):
        ResultsStore(junk)
    with pytest.raises(SpecError, match="No such file"):
        ResultsStore(tmp_path / "missing.sqlite", create=False)
    with pytest.raises(SpecError):
        ResultsStore(tmp_path)  # a directory


def _hex_record(i: int) -> dict[str, Any]:
    record = _record(i)
    record["key"] = hashlib.sha256(str(i).encode()).hexdigest()  # as plan_key makes them
    record["parallel"] = {"tp": 8, "pp": 4, "cp": 1, "ep": 1, "micro_batch": 1,
                          "virtual_stages": 1, "schedule": "1f1b", "zero": 1,
                          "recompute": "selective", "sequence_parallel": True,
                          "flash_attention": True}  # fmt: skip
    return record


def test_rows_are_compact(tmp_path: Path) -> None:
    # The plan key and the figures, not the whole record: ~714 bytes a plan before.
    path = tmp_path / "s.sqlite"
    records = [_hex_record(i) for i in range(5000)]
    with ResultsStore(path, scenario_key="a") as store:
        store.add(records, tab=store.table_id("t"), slots=range(len(records)))  # as a sweep
        assert store.get([records[7]["key"]]) == [records[7]]
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert path.stat().st_size / len(records) < 220


def test_stored_slots_give_each_table_its_rows(tmp_path: Path) -> None:
    records = [_record(i, fits=i != 2) for i in range(6)]
    with ResultsStore(tmp_path / "s.sqlite", scenario_key="a") as store:
        first, second = store.table_id("one"), store.table_id("two")
        assert store.table_id("one") == first != second
        store.add(records[:4], tab=first, slots=[10, 11, 12, 13])
        store.add(records[4:], tab=second, slots=[0, 1])
        slots, figures = store.stored_slots(first)
        by_slot = dict(zip(slots, figures, strict=True))
        assert sorted(by_slot) == [10, 11, 12, 13]
        # (step_time_s, tokens_per_s, mfu, peak_gib_per_gpu, fits, gpus, error)
        assert by_slot[11] == (0.5, 2000.0, 0.01, 10.0, 1, 8, None)
        assert by_slot[12][4:] == (0, 8, "does not fit in memory")
        assert store.stored_slots(second)[0] == [0, 1]
        assert store.stored_slots(99) == ([], [])
        assert store.figures(["k001"]) == {"k001": by_slot[11]}


def test_damaged_store_is_refused_then_rebuilt(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    records = [_hex_record(i) for i in range(3000)]
    with ResultsStore(path, scenario_key="a") as store:
        store.add(records)
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(path.read_bytes())
    page = 4096
    for offset in range(page * (len(data) // page // 2), page * (len(data) // page // 2 + 3)):
        data[offset] = 0xA5  # three pages of the table's b-tree overwritten
    path.write_bytes(bytes(data))
    with pytest.raises(SpecError, match=r"damaged.*--rebuild"):
        ResultsStore(path, scenario_key="a")
    kept, _ = rebuild(path)
    assert 0 < kept < len(records)
    assert (tmp_path / "s.sqlite.damaged").is_file()
    with ResultsStore(path, scenario_key="a") as store:  # opens clean; scenario kept
        assert store.count() == kept
        assert all(r in records for r in store.top(10))


def test_claims_split_work_and_die_with_their_owner(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    keys = [f"k{i:03d}" for i in range(10)]
    first, second = ResultsStore(path), ResultsStore(path)
    try:
        assert first.claim(keys[:6]) == set(keys[:6])
        assert second.claim(keys) == set(keys[6:])  # the first's claims are left to it
        first.add([_record(i) for i in range(3)])  # done: stored and no longer claimed
        assert second.claim(keys[:6]) == set()
        first.close()  # a sweep that stops releases what it did not finish
        assert second.claim(keys[:6]) == set(keys[3:6])
    finally:
        second.close()
