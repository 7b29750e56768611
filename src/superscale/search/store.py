"""A resumable results store for plan sweeps: one SQLite file, one row per evaluated plan.

Rows are keyed by `plan_key` (a hash of the candidate scenario, plan included) and hold the
record as JSON, beside indexed numeric columns for ranking (tokens_per_s, step_time_s, gpus,
fits). The journal is WAL and every `add` is one transaction, so a sweep killed at any
instant (SIGKILL included) keeps every batch it committed and loses at most the batch in
flight; run again, it evaluates only the keys `missing` reports. A meta table holds the
hash of the base scenario (everything but the cluster and plan the search replaces), and a
store opened for a different scenario is refused. JSON only: nothing is pickled.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from superscale.errors import SpecError

SCHEMA_VERSION = "1"
# SQLite's default limit on host parameters is 999 in older builds; stay under it.
_CHUNK = 500
# The sections a search replaces; the rest of the scenario identifies the store.
_SEARCHED = ("cluster", "parallel")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS results (
    key TEXT PRIMARY KEY,
    record TEXT NOT NULL,
    tokens_per_s REAL,
    step_time_s REAL,
    gpus INTEGER,
    fits INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS results_rank ON results (fits, tokens_per_s DESC);
CREATE INDEX IF NOT EXISTS results_gpus ON results (gpus);
"""


def scenario_key(base: Mapping[str, Any]) -> str:
    """Hash of a search's base scenario without the sections the search replaces."""
    kept = {k: v for k, v in base.items() if k not in _SEARCHED}
    text = json.dumps(kept, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class ResultsStore:
    """Evaluated plan records in one SQLite file (WAL journal, one transaction per batch).

    Args:
        path: the database file.
        scenario_key: the base scenario's `scenario_key`; recorded in a new store and
            checked against an existing one (None: no check, e.g. to query results).
        create: make the file if it does not exist (False: a missing file is a SpecError).

    Raises:
        SpecError: the file cannot be opened, is not a results store, or belongs to another
            scenario.
    """

    def __init__(
        self, path: str | Path, *, scenario_key: str | None = None, create: bool = True
    ) -> None:
        self.path = Path(path)
        if not create and not self.path.is_file():
            raise SpecError(f"{self.path}: no such results database")
        try:
            self._conn = sqlite3.connect(self.path, timeout=30.0)
        except sqlite3.Error as exc:
            raise SpecError(f"{self.path}: cannot open the results database: {exc}") from None
        try:
            self._setup(scenario_key)
        except sqlite3.Error as exc:
            self._conn.close()
            raise SpecError(f"{self.path}: not a superscale results database ({exc})") from None
        except SpecError:
            self._conn.close()
            raise

    def _setup(self, key: str | None) -> None:
        conn = self._conn
        conn.execute("PRAGMA journal_mode=WAL")
        # With WAL, NORMAL loses nothing on a process kill (only on power loss).
        conn.execute("PRAGMA synchronous=NORMAL")
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if tables and not {"meta", "results"} <= tables:
            raise SpecError(f"{self.path}: not a superscale results database")
        with conn:
            conn.executescript(_SCHEMA)
            conn.execute(
                "INSERT OR IGNORE INTO meta (name, value) VALUES ('schema_version', ?)",
                (SCHEMA_VERSION,),
            )
        version = self.meta("schema_version")
        if version != SCHEMA_VERSION:
            raise SpecError(
                f"{self.path}: results schema version {version}, this superscale reads "
                f"{SCHEMA_VERSION}"
            )
        if key is None:
            return
        stored = self.meta("scenario_key")
        if stored is None:
            with conn:
                conn.execute(
                    "INSERT OR IGNORE INTO meta (name, value) VALUES ('scenario_key', ?)", (key,)
                )
        elif stored != key:
            raise SpecError(
                f"{self.path} holds a sweep of a different scenario (model, training or "
                "other settings differ); use another --db file"
            )

    def meta(self, name: str) -> str | None:
        """A value of the meta table, or None."""
        row = self._conn.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, name: str, value: str) -> None:
        """Set a value of the meta table (one transaction)."""
        with self._conn:
            self._conn.execute(
                "INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)", (name, value)
            )

    def missing(self, keys: Iterable[str]) -> set[str]:
        """The keys among `keys` that have no stored record."""
        wanted = list(dict.fromkeys(keys))
        present: set[str] = set()
        for i in range(0, len(wanted), _CHUNK):
            chunk = wanted[i : i + _CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = self._conn.execute(f"SELECT key FROM results WHERE key IN ({marks})", chunk)
            present.update(r[0] for r in rows)
        return set(wanted) - present

    def add(self, records: Iterable[Mapping[str, Any]]) -> None:
        """Store records (one transaction: all of them or, if interrupted, none)."""
        rows = [
            (
                r["key"],
                json.dumps(r, sort_keys=True, separators=(",", ":")),
                r.get("tokens_per_s"),
                r.get("step_time_s"),
                r.get("gpus"),
                1 if r.get("fits") else 0,
            )
            for r in records
        ]
        with self._conn:
            self._conn.executemany(
                "INSERT OR REPLACE INTO results "
                "(key, record, tokens_per_s, step_time_s, gpus, fits) VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )

    def get(self, keys: Iterable[str]) -> list[dict[str, Any]]:
        """Stored records for `keys` (those present), sorted by key."""
        wanted = list(dict.fromkeys(keys))
        out: list[dict[str, Any]] = []
        for i in range(0, len(wanted), _CHUNK):
            chunk = wanted[i : i + _CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = self._conn.execute(f"SELECT record FROM results WHERE key IN ({marks})", chunk)
            out.extend(json.loads(r[0]) for r in rows)
        return sorted(out, key=lambda r: str(r["key"]))

    def records(self) -> list[dict[str, Any]]:
        """Every stored record, sorted by key."""
        rows = self._conn.execute("SELECT record FROM results ORDER BY key")
        return [json.loads(r[0]) for r in rows]

    def top(self, k: int, *, fits_only: bool = True) -> list[dict[str, Any]]:
        """The `k` records of highest tokens/s (ties: lower step time, then key)."""
        where = "WHERE tokens_per_s IS NOT NULL" + (" AND fits = 1" if fits_only else "")
        rows = self._conn.execute(
            f"SELECT record FROM results {where} "
            "ORDER BY tokens_per_s DESC, step_time_s ASC, key ASC LIMIT ?",
            (max(0, k),),
        )
        return [json.loads(r[0]) for r in rows]

    def count(self, *, fits_only: bool = False) -> int:
        """How many records are stored (or how many fit)."""
        sql = "SELECT COUNT(*) FROM results" + (" WHERE fits = 1" if fits_only else "")
        return int(self._conn.execute(sql).fetchone()[0])

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> ResultsStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
