"""A resumable, shareable results store for plan sweeps: one SQLite file, one row per plan.

Rows are keyed by `plan_key` and hold only what ranking and resuming need: the key (32
bytes for a hex hash), the cluster and the plan's values (the plan's field names are
stored once per layout), the GPU count, step time, tokens/s, MFU, peak memory, whether it
fits and an error id. Strings that repeat (cluster labels, field layouts, errors) are
interned in a `names` table. About 190 bytes a plan, against ~714 for whole JSON records.
There is no index on throughput: `top` scans (a tenth of a second per 100k plans), which
keeps each insert cheap and the file small.

A row's primary key is its slot: the plan table it was enumerated in (`tables`, by a
digest of the whole table) and its row there; the plan key is a unique column beside it.
A resumed sweep reads a table's stored slots in one range scan and never keys, claims or
looks up those plans one by one, so stored plans cost a few microseconds each (skipped at
enumeration, not at batching), and a sweep's inserts land in slot order.

Durability: the journal is WAL and every `add` is one transaction, so a sweep killed at any
instant (SIGKILL included) keeps every batch it committed. Integrity: opening runs
`PRAGMA quick_check`; a damaged file is refused with a clear error, and `rebuild` copies
every row SQLite can still read into a fresh file (what `superscale results DB --rebuild`
runs). Sharing: a sweep `claim`s the plans of a batch before costing them (one IMMEDIATE
transaction, so two sweeps never claim one plan); plans claimed by a live sweep are left
to it, and the claims of a sweep that died (no heartbeat for `STALE_S`, or its process gone
on this host) are taken over. A meta table holds the hash of the base scenario (all but the
cluster and plan a search replaces); a store of another scenario is refused. JSON only:
nothing is pickled.

The heartbeat reads the wall clock and the claim owner names this process: the store is
I/O at the edge of the library, as the file itself is.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import socket
import sqlite3
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from superscale.errors import SpecError
from superscale.readers import check_regular

SCHEMA_VERSION = "3"
# SQLite's default limit on host parameters is 999 in older builds; stay under it.
_CHUNK = 500
# The sections a search replaces; the rest of the scenario identifies the store.
_SEARCHED = ("cluster", "parallel")
# A claim whose owner has not written for this long is taken over (a batch takes ~1 s).
STALE_S = 120.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS names (id INTEGER PRIMARY KEY, value TEXT UNIQUE NOT NULL);
-- the primary key's columns come first: SQLite 3.40's quick_check misreads NOT NULL
-- columns of a WITHOUT ROWID table whose key columns follow others
CREATE TABLE IF NOT EXISTS results (
    tab INTEGER NOT NULL,
    slot INTEGER NOT NULL,
    key BLOB UNIQUE NOT NULL,
    cluster INTEGER NOT NULL,
    layout INTEGER NOT NULL,
    plan TEXT NOT NULL,
    gpus INTEGER,
    step_time_s REAL,
    tokens_per_s REAL,
    mfu REAL,
    peak_gib REAL,
    fits INTEGER NOT NULL,
    error INTEGER,
    PRIMARY KEY (tab, slot)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tables (id INTEGER PRIMARY KEY, digest TEXT UNIQUE NOT NULL);
CREATE TABLE IF NOT EXISTS owners (
    owner TEXT PRIMARY KEY, host TEXT NOT NULL, pid INTEGER NOT NULL, heartbeat REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS claims (
    key BLOB PRIMARY KEY, owner TEXT NOT NULL
) WITHOUT ROWID;
"""
_COLUMNS = (
    "key, cluster, layout, plan, gpus, step_time_s, tokens_per_s, mfu, peak_gib, fits, error, "
    "tab, slot"
)
_MARKS = ",".join("?" * 13)
# What a resumed sweep reads back of a stored plan (`figures`, `stored_slots`).
_FIGURES = "step_time_s, tokens_per_s, mfu, peak_gib, fits, gpus, error"
_TABLES = {"meta", "names", "results", "owners", "claims", "tables"}


def scenario_key(base: Mapping[str, Any]) -> str:
    """Hash of a search's base scenario without the sections the search replaces."""
    kept = {k: v for k, v in base.items() if k not in _SEARCHED}
    text = json.dumps(kept, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _db_key(key: str) -> bytes | str:
    """A hex hash as its bytes (half the size); any other key as text."""
    if len(key) % 2 == 0 and key:
        try:
            return bytes.fromhex(key)
        except ValueError:
            pass
    return key


def _py_key(value: bytes | str) -> str:
    return value.hex() if isinstance(value, bytes) else str(value)


def _damaged(path: Path, detail: str) -> SpecError:
    return SpecError(
        f"{path}: the results database is damaged ({detail}); rebuild it with "
        f"'superscale results {path} --rebuild' (keeps every readable row) or delete it"
    )


class ResultsStore:
    """Evaluated plans in one SQLite file (WAL journal, one transaction per batch).

    Args:
        path: the database file.
        scenario_key: the base scenario's `scenario_key`; recorded in a new store and
            checked against an existing one (None: no check, e.g. to query results).
        create: make the file if it does not exist (False: a missing file is a SpecError).

    Raises:
        SpecError: the path is not a regular file, the file is damaged (`quick_check`), is
            not a results store, or belongs to another scenario.
    """

    def __init__(
        self, path: str | Path, *, scenario_key: str | None = None, create: bool = True
    ) -> None:
        self.path = Path(path)
        if self.path.exists() or not create:
            check_regular(self.path, what="results database")
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self._names: dict[str, int] = {}
        self._values: dict[int, str] = {}
        try:
            self._conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        except sqlite3.Error as exc:
            raise SpecError(f"{self.path}: cannot open the results database: {exc}") from None
        try:
            self._setup(scenario_key)
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            raise _damaged(self.path, str(exc)) from None
        except SpecError:
            self._conn.close()
            raise

    def _setup(self, key: str | None) -> None:
        conn = self._conn
        with self.path.open("rb") as f:
            header = f.read(16)
        if header and header != b"SQLite format 3\x00":
            raise SpecError(f"{self.path}: not a superscale results database")
        check = conn.execute("PRAGMA quick_check").fetchall()
        if [tuple(r) for r in check] != [("ok",)]:
            raise _damaged(self.path, "; ".join(str(r[0]) for r in check[:3]))
        conn.execute("PRAGMA journal_mode=WAL")
        # With WAL, NORMAL loses nothing on a process kill (only on power loss).
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA cache_size=-65536")  # 64 MiB: a sweep's pages stay cached
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if tables and "meta" not in tables:
            raise SpecError(f"{self.path}: not a superscale results database")
        if tables:
            version = self._meta_value("schema_version")
            if version != SCHEMA_VERSION:
                raise SpecError(
                    f"{self.path}: results schema version {version}, this superscale reads "
                    f"{SCHEMA_VERSION}; rerun the sweep into a new --db file"
                )
        conn.executescript(_SCHEMA)  # IF NOT EXISTS throughout; its own transaction
        with self._transaction(immediate=True):
            conn.execute(
                "INSERT OR IGNORE INTO meta (name, value) VALUES ('schema_version', ?)",
                (SCHEMA_VERSION,),
            )
        if key is None:
            return
        stored = self.meta("scenario_key")
        if stored is None:
            self.set_meta("scenario_key", key)
        elif stored != key:
            raise SpecError(
                f"{self.path} holds a sweep of a different scenario (model, training or "
                "other settings differ); use another --db file"
            )

    # ------------------------------------------------------------------ plumbing

    def _transaction(self, immediate: bool = False) -> Any:
        conn = self._conn

        class _Tx:
            def __enter__(self) -> None:
                conn.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")

            def __exit__(self, kind: object, *rest: object) -> None:
                conn.execute("ROLLBACK" if kind is not None else "COMMIT")

        return _Tx()

    def _meta_value(self, name: str) -> str | None:
        row = self._conn.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return None if row is None else str(row[0])

    def _name_id(self, value: str) -> int:
        """The id of an interned string (inside the caller's transaction)."""
        if value not in self._names:
            self._conn.execute("INSERT OR IGNORE INTO names (value) VALUES (?)", (value,))
            row = self._conn.execute("SELECT id FROM names WHERE value = ?", (value,)).fetchone()
            self._names[value] = int(row[0])
            self._values[int(row[0])] = value
        return self._names[value]

    def _name(self, ident: int | None) -> str | None:
        if ident is None:
            return None
        if ident not in self._values:
            row = self._conn.execute("SELECT value FROM names WHERE id = ?", (ident,)).fetchone()
            self._values[ident] = str(row[0])
        return self._values[ident]

    def _record(self, row: tuple[Any, ...]) -> dict[str, Any]:
        key, cluster, layout, plan, gpus, step, rate, mfu, peak, fits, error = row[:11]
        fields = json.loads(self._name(layout) or "[]")
        return {
            "key": _py_key(key),
            "cluster": self._name(cluster),
            "parallel": dict(zip(fields, json.loads(plan), strict=True)),
            "gpus": gpus,
            "step_time_s": step,
            "tokens_per_s": rate,
            "tokens_per_s_per_gpu": rate / gpus if rate is not None and gpus else None,
            "mfu": mfu,
            "peak_gib_per_gpu": peak,
            "fits": bool(fits),
            "error": self._name(error),
        }

    def _select(self, sql: str, args: Iterable[Any] = ()) -> list[dict[str, Any]]:
        try:
            rows = self._conn.execute(sql, tuple(args)).fetchall()
        except sqlite3.DatabaseError as exc:
            raise _damaged(self.path, str(exc)) from None
        return [self._record(r) for r in rows]

    # ------------------------------------------------------------------ meta

    def meta(self, name: str) -> str | None:
        """A value of the meta table, or None."""
        return self._meta_value(name)

    def set_meta(self, name: str, value: str) -> None:
        """Set a value of the meta table (one transaction)."""
        with self._transaction(immediate=True):
            self._conn.execute(
                "INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)", (name, value)
            )

    # ------------------------------------------------------------------ rows

    def missing(self, keys: Iterable[str]) -> set[str]:
        """The keys among `keys` that have no stored record."""
        wanted = list(dict.fromkeys(keys))
        present = set(self._present(wanted))
        return set(wanted) - present

    def _present(self, wanted: list[str]) -> list[str]:
        present: list[str] = []
        for i in range(0, len(wanted), _CHUNK):
            chunk = [_db_key(k) for k in wanted[i : i + _CHUNK]]
            marks = ",".join("?" * len(chunk))
            rows = self._conn.execute(f"SELECT key FROM results WHERE key IN ({marks})", chunk)
            present.extend(_py_key(r[0]) for r in rows)
        return present

    def table_id(self, digest: str) -> int:
        """The id of the plan table whose digest is `digest` (added if new)."""
        with self._transaction(immediate=True):
            self._conn.execute("INSERT OR IGNORE INTO tables (digest) VALUES (?)", (digest,))
            row = self._conn.execute("SELECT id FROM tables WHERE digest = ?", (digest,))
            return int(row.fetchone()[0])

    def stored_slots(self, tab: int) -> tuple[list[int], list[tuple[Any, ...]]]:
        """The stored rows of plan table `tab` and their figures (as `figures` gives
        them), in one indexed scan: what lets a resume skip stored plans unkeyed."""
        try:
            rows = self._conn.execute(
                f"SELECT slot, {_FIGURES} FROM results WHERE tab = ?", (tab,)
            ).fetchall()
        except sqlite3.DatabaseError as exc:
            raise _damaged(self.path, str(exc)) from None
        errors = {r[-1] for r in rows if r[-1] is not None}
        named = {e: self._name(e) for e in errors}
        return [int(r[0]) for r in rows], [(*r[1:-1], named.get(r[-1])) for r in rows]

    def add(
        self,
        records: Iterable[Mapping[str, Any]],
        *,
        tab: int | None = None,
        slots: Iterable[int] | None = None,
    ) -> None:
        """Store records (one transaction: all of them or, if interrupted, none) and
        release this store's claims on them.

        Args:
            records: keyed records (`Evaluated.records`).
            tab, slots: the plan table (`table_id`, ids from 1) and the row of each record
                in it, for `stored_slots` (None: the records are found by key only, and
                take the next slots of table 0).
        """
        with self._transaction(immediate=True):
            if tab is None or slots is None:  # rows found by key only: slots of table 0
                tab = 0
                row = self._conn.execute("SELECT MAX(slot) FROM results WHERE tab = 0")
                last = row.fetchone()[0]
                slots = itertools.count(0 if last is None else int(last) + 1)
            slot_of = iter(slots)
            rows = []
            layouts: dict[tuple[str, ...], int] = {}
            for r in records:
                par = r["parallel"]
                names = tuple(par)
                layout = layouts.get(names)
                if layout is None:
                    layout = self._name_id(json.dumps(list(names), separators=(",", ":")))
                    layouts[names] = layout
                error = r.get("error")
                rows.append(
                    (
                        _db_key(str(r["key"])),
                        self._name_id(str(r["cluster"])),
                        layout,
                        json.dumps(list(par.values()), separators=(",", ":")),
                        r.get("gpus"),
                        r.get("step_time_s"),
                        r.get("tokens_per_s"),
                        r.get("mfu"),
                        r.get("peak_gib_per_gpu"),
                        1 if r.get("fits") else 0,
                        None if error is None else self._name_id(str(error)),
                        tab,
                        int(next(slot_of)),
                    )
                )
            self._conn.executemany(
                f"INSERT OR REPLACE INTO results ({_COLUMNS}) VALUES ({_MARKS})", rows
            )
            self._conn.executemany(
                "DELETE FROM claims WHERE key = ? AND owner = ?",
                [(row[0], self.owner) for row in rows],
            )
            self._beat()

    def get(self, keys: Iterable[str]) -> list[dict[str, Any]]:
        """Stored records for `keys` (those present), sorted by key."""
        wanted = list(dict.fromkeys(keys))
        out: list[dict[str, Any]] = []
        for i in range(0, len(wanted), _CHUNK):
            chunk = [_db_key(k) for k in wanted[i : i + _CHUNK]]
            marks = ",".join("?" * len(chunk))
            out += self._select(f"SELECT {_COLUMNS} FROM results WHERE key IN ({marks})", chunk)
        return sorted(out, key=lambda r: str(r["key"]))

    def figures(self, keys: Iterable[str]) -> dict[str, tuple[Any, ...]]:
        """What a resumed sweep needs of stored plans, without building records: key ->
        (step_time_s, tokens_per_s, mfu, peak_gib_per_gpu, fits, gpus, error)."""
        wanted = list(dict.fromkeys(keys))
        out: dict[str, tuple[Any, ...]] = {}
        for i in range(0, len(wanted), _CHUNK):
            chunk = [_db_key(k) for k in wanted[i : i + _CHUNK]]
            marks = ",".join("?" * len(chunk))
            rows = self._conn.execute(
                f"SELECT key, {_FIGURES} FROM results WHERE key IN ({marks})", chunk
            )
            for key, *rest in rows:
                rest[-1] = self._name(rest[-1])
                out[_py_key(key)] = tuple(rest)
        return out

    def records(self) -> list[dict[str, Any]]:
        """Every stored record, sorted by key."""
        return sorted(self._select(f"SELECT {_COLUMNS} FROM results"), key=lambda r: r["key"])

    def top(self, k: int, *, fits_only: bool = True) -> list[dict[str, Any]]:
        """The `k` records of highest tokens/s (ties: lower step time, then key)."""
        where = "WHERE tokens_per_s IS NOT NULL" + (" AND fits = 1" if fits_only else "")
        # a hex key is stored as its bytes, which sort as the hex text does
        return self._select(
            f"SELECT {_COLUMNS} FROM results {where} "
            "ORDER BY tokens_per_s DESC, step_time_s ASC, key ASC LIMIT ?",
            (max(0, k),),
        )

    def count(self, *, fits_only: bool = False) -> int:
        """How many records are stored (or how many fit)."""
        sql = "SELECT COUNT(*) FROM results" + (" WHERE fits = 1" if fits_only else "")
        try:
            return int(self._conn.execute(sql).fetchone()[0])
        except sqlite3.DatabaseError as exc:
            raise _damaged(self.path, str(exc)) from None

    # ------------------------------------------------------------------ sharing

    def _beat(self) -> None:
        self._conn.execute(
            "INSERT OR REPLACE INTO owners (owner, host, pid, heartbeat) VALUES (?, ?, ?, ?)",
            (self.owner, socket.gethostname(), os.getpid(), time.time()),
        )

    def _drop_dead_owners(self) -> None:
        now, host = time.time(), socket.gethostname()
        dead = []
        for owner, owner_host, pid, beat in self._conn.execute(
            "SELECT owner, host, pid, heartbeat FROM owners WHERE owner != ?", (self.owner,)
        ):
            if now - beat > STALE_S or (owner_host == host and not _alive(int(pid))):
                dead.append((owner,))
        self._conn.executemany("DELETE FROM claims WHERE owner = ?", dead)
        self._conn.executemany("DELETE FROM owners WHERE owner = ?", dead)

    def claim(self, keys: Iterable[str]) -> set[str]:
        """Claim the keys among `keys` that are neither stored nor claimed by a live sweep;
        return them. One IMMEDIATE transaction: two sweeps never claim the same key."""
        wanted = list(dict.fromkeys(keys))
        with self._transaction(immediate=True):
            self._beat()
            self._drop_dead_owners()
            taken = set(self._present(wanted))
            for i in range(0, len(wanted), _CHUNK):
                chunk = [_db_key(k) for k in wanted[i : i + _CHUNK]]
                marks = ",".join("?" * len(chunk))
                rows = self._conn.execute(
                    f"SELECT key FROM claims WHERE key IN ({marks}) AND owner != ?",
                    [*chunk, self.owner],
                )
                taken.update(_py_key(r[0]) for r in rows)
            mine = [k for k in wanted if k not in taken]
            self._conn.executemany(
                "INSERT OR REPLACE INTO claims (key, owner) VALUES (?, ?)",
                [(_db_key(k), self.owner) for k in mine],
            )
        return set(mine)

    def release(self) -> None:
        """Drop this store's claims (a sweep that stops leaves its unfinished plans to
        others at once, rather than after `STALE_S`)."""
        with self._transaction(immediate=True):
            self._conn.execute("DELETE FROM claims WHERE owner = ?", (self.owner,))
            self._conn.execute("DELETE FROM owners WHERE owner = ?", (self.owner,))

    def close(self) -> None:
        # a store that failed to set up, or a read-only file, holds no claims
        with contextlib.suppress(sqlite3.Error):
            self.release()
        self._conn.close()

    def __enter__(self) -> ResultsStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def rebuild(path: str | Path) -> tuple[int, int]:
    """Copy every readable row of a (possibly damaged) store into a fresh file that
    replaces it; the damaged file is kept beside it as `<name>.damaged`.

    Returns:
        (rows kept, rows that could not be read).

    Raises:
        SpecError: the path is not a regular file, or nothing of a results store is
            readable in it.
    """
    source = Path(path)
    check_regular(source, what="results database")
    fresh = source.with_name(source.name + ".rebuilt")
    fresh.unlink(missing_ok=True)
    kept = lost = 0
    old = sqlite3.connect(source, isolation_level=None)
    try:
        meta = _readable(old, "SELECT name, value FROM meta")
        names = dict(_readable(old, "SELECT id, value FROM names"))
        plan_tables = _readable(old, "SELECT id, digest FROM tables")
        if not meta:
            raise SpecError(f"{source}: no readable results-store metadata; delete the file")
        rows, lost = _readable_rows(old)
    finally:
        old.close()
    new = sqlite3.connect(fresh, isolation_level=None)
    try:
        new.executescript(_SCHEMA)
        new.execute("BEGIN")
        new.executemany("INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)", meta)
        new.executemany("INSERT OR IGNORE INTO names (id, value) VALUES (?, ?)", names.items())
        new.executemany("INSERT OR IGNORE INTO tables (id, digest) VALUES (?, ?)", plan_tables)
        usable = [r for r in rows if r[1] in names and r[2] in names]
        lost += len(rows) - len(usable)
        new.executemany(f"INSERT OR REPLACE INTO results ({_COLUMNS}) VALUES ({_MARKS})", usable)
        new.execute("COMMIT")
        kept = len(usable)
    finally:
        new.close()
    for suffix in ("-wal", "-shm"):
        Path(str(source) + suffix).unlink(missing_ok=True)
    source.replace(source.with_name(source.name + ".damaged"))
    fresh.replace(source)
    return kept, lost


def _readable(conn: sqlite3.Connection, sql: str) -> list[tuple[Any, ...]]:
    try:
        return [tuple(r) for r in conn.execute(sql)]
    except sqlite3.DatabaseError:
        return []


def _readable_rows(conn: sqlite3.Connection) -> tuple[list[tuple[Any, ...]], int]:
    """Rows of `results` readable from a damaged file, and how many key ranges lost rows.

    A whole scan first; if a page fails, the key space is walked in 257 ranges (text keys,
    then hex keys by their first byte), each streamed row by row, so a damaged page loses
    only the rest of its range."""
    sql = f"SELECT {_COLUMNS} FROM results"
    try:
        return [tuple(r) for r in conn.execute(sql)], 0
    except sqlite3.DatabaseError:
        pass
    ranges: list[tuple[str, tuple[Any, ...]]] = [(" WHERE typeof(key) = 'text'", ())]
    ranges += [(" WHERE key >= ? AND key < ?", (bytes([b]), bytes([b + 1]))) for b in range(255)]
    ranges.append((" WHERE key >= ? AND typeof(key) = 'blob'", (b"\xff",)))
    rows: dict[Any, tuple[Any, ...]] = {}
    lost = 0
    for where, args in ranges:
        try:
            for row in conn.execute(sql + where, args):
                rows[row[0]] = tuple(row)
        except sqlite3.DatabaseError:
            lost += 1
    return list(rows.values()), lost
