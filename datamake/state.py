"""What datamake remembers in `.datamake/state.db`: the only user of sqlite3.

One row per built step (what it was built from and what it wrote), the stat-and-digest
memo of source files, code texts for `--explain` diffs, the run history, and what
each step's last failure printed (until it next succeeds). WAL mode
lets a dry run read while a build writes; a `flock` on `.datamake/lock` makes a second
build wait for the first.

Every finished step is written down at once, so an interrupted build keeps its
progress: as one line appended to `.datamake/journal` (one `write`, as ninja appends to
`.ninja_log`), which the build folds into the database in one transaction when it ends,
and the next build folds first if this one was killed. Readers see the journal too.
Until the fold, the database plus the journal is the state: a write that older journal
lines could overtake folds them first, and new stamps for a record still in the journal
go into that record, so the order of writes is kept.

Pool workers (`-j`) record the partitions a yielding recipe writes in journals of their
own, `.datamake/journal.<pid>` (`WorkerJournal`): the build takes their lines in as
they come, and folds them with its own; a build killed before it could leaves them to
the next, which folds them first, as it does the build's journal.

Its length (over 500 lines) is its one job: every table of one database and the rules for
writing it safely (lock, journals, schema upgrades, cache index) share one connection
and one lock; apart, each part would reach into the others'.
"""
from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import os
import shutil
import sqlite3
import stat
import sys
import time
import weakref
from pathlib import Path
from typing import Any, Callable, Iterator, NamedTuple, TypeVar

from .errors import StateError
from .steps import split_step

# 4: content digests are BLAKE3 (they were xxh3): older records cannot be compared.
# 5: the last failure of each step is kept (`failures`), for the pipeline page.
SCHEMA_VERSION = 6
KEEP_RUNS = 1000  # the run history keeps this many builds
STATE_DIR = ".datamake"
JOURNAL = "journal"
FOLD_EVERY = 10_000  # journal lines held before a fold mid-build (bounds memory)
# The journal's first line: its format's version. A journal without it (another
# version's, or torn in its first write) is not read: its steps run again.
JOURNAL_HEADER = b'["datamake-journal",2]\n'
WORKER_JOURNAL = JOURNAL + "."  # + a pool worker's pid

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS steps(
    node TEXT PRIMARY KEY,
    sig TEXT NOT NULL,
    code_fp TEXT NOT NULL,
    params_fp TEXT NOT NULL,
    inputs_fp TEXT NOT NULL,
    out_paths TEXT NOT NULL,
    out_stamps TEXT NOT NULL,
    out_digests TEXT NOT NULL,
    detail TEXT NOT NULL,
    built_at REAL NOT NULL,
    seconds REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS files(path TEXT PRIMARY KEY, stamp TEXT NOT NULL,
                                 digest TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS texts(hash TEXT PRIMARY KEY, text TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS runs(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started REAL NOT NULL, finished REAL, argv TEXT NOT NULL, status TEXT,
    versions TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS cache_steps(sig TEXT PRIMARY KEY, outputs TEXT NOT NULL,
                                       used REAL NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS cache_objects(digest TEXT PRIMARY KEY, size INTEGER NOT NULL,
                                         used REAL NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS run_steps(run INTEGER NOT NULL, node TEXT NOT NULL,
                                     status TEXT NOT NULL, seconds REAL NOT NULL,
                                     reasons TEXT NOT NULL, peak_kb INTEGER);
CREATE TABLE IF NOT EXISTS failures(node TEXT PRIMARY KEY, run INTEGER NOT NULL,
                                    text TEXT NOT NULL) WITHOUT ROWID;
"""

SEP = "\t"
# What `.datamake/` holds, and whether each is a folder: checked before the state is
# used, so that a folder where datamake keeps a file (or a file for the whole of
# `.datamake/`) is one clear error instead of a failure deep in a build.
LAYOUT = (("state.db", False), ("journal", False), ("lock", False), ("tmp", True),
          ("data", True), ("cache", True), ("cache/objects", True), ("cache/index", False))
# The local cache's entries (signature -> outputs), also kept beside its objects, one
# line each: a new database (state.db deleted, or damaged and set aside) takes them
# back, so that steps whose outputs the cache holds are restored, not run again.
CACHE_INDEX = "cache/index"
DAMAGED = "state.db.damaged"  # where a damaged database is set aside

# A state of an older schema holds digests this version cannot compare (xxh3, before
# content digests were BLAKE3): the tables that hold them are recreated empty, so the
# next build rebuilds (or restores from a cache) what it cannot verify. The run history
# and the code texts (named by xxh3, as still) are kept.
_DIGEST_TABLES = ("steps", "files", "cache_steps", "cache_objects")
_RESET = "".join(f"DROP TABLE IF EXISTS {t};" for t in _DIGEST_TABLES)
# Schema versions that _SCHEMA's CREATE IF NOT EXISTS brings up to date.
_UPGRADABLE = ("4", "5")


def check_layout(root: Path) -> None:
    """`.datamake/` under `root` as datamake keeps it, or not there at all.

    Raises StateError naming what is in the way. Nothing is deleted: `.datamake` may be
    a file of the user's, and what sits inside it is easy to remove by hand."""
    top = Path(root) / STATE_DIR
    try:
        st = os.stat(top)
    except FileNotFoundError:
        return
    except OSError as e:
        raise StateError(f"cannot use `{top}`: {e.strerror}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise StateError(f"`{top}` is a file, but datamake keeps its state in a folder of "
                         f"that name", help="move the file away: the next build starts a "
                                            "new state there")
    for name, folder in LAYOUT:
        try:
            mode = os.stat(top / name).st_mode
        except FileNotFoundError:
            continue
        except OSError as e:
            raise StateError(f"cannot use `{top / name}`: {e.strerror}") from None
        if stat.S_ISDIR(mode) != folder:
            what = "a folder" if folder else "a file"
            raise StateError(
                f"`{top / name}` is not {what}, as datamake keeps it",
                help=f"remove it (`rm -r {top / name}`): datamake makes it again, and what "
                     f"it cannot verify is built again")


def is_damage(e: BaseException) -> bool:
    """Whether an SQLite error says the database file is damaged (not busy, not full)."""
    code = getattr(e, "sqlite_errorcode", None)  # Python 3.11+
    if code is not None:
        return code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)
    text = str(e)
    return "malformed" in text or "not a database" in text


_F = TypeVar("_F", bound=Callable[..., Any])


def _guarded(method: _F) -> _F:
    """Any SQLite failure of a State method becomes a StateError (never a traceback);
    a damaged database found while this process holds the build lock is set aside, so
    the next build starts a new one instead of failing the same way."""
    @functools.wraps(method)
    def wrapper(self: "State", *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.DatabaseError as e:
            raise self._failure(e) from None

    return wrapper  # type: ignore[return-value]


class StepRecord(NamedTuple):
    """What a step was last built from and what it wrote."""

    node: str
    sig: str
    code_fp: str
    params_fp: str
    inputs_fp: str
    out_paths: tuple[str, ...]
    out_stamps: tuple[str, ...]  # "" when unknown (the next check hashes)
    out_digests: tuple[str, ...]
    detail: dict[str, Any]  # params (repr), inputs (digest), code closure, recipe hash
    built_at: float
    seconds: float


class State:
    """The SQLite database under `.datamake/`, opened lazily."""

    def __init__(self, root: Path, create: bool = True):
        self.dir = Path(root) / STATE_DIR
        self.path = self.dir / "state.db"
        self.create = create
        self._db: sqlite3.Connection | None = None
        self._lock_fd: int | None = None
        self._rows: dict[str, tuple] | None = None
        self._texts_known: set[str] = set()
        self._children: dict[str, list[str]] | None = None
        self._history: list[tuple] = []
        self._failures: dict[str, str] = {}  # step -> what its failure printed, this run
        self._tx = False
        self.run_id: int | None = None
        self.journal_path = self.dir / JOURNAL
        self._journal_fd: int | None = None
        self._journal_new = False  # the next line written begins the journal (with its header)
        # Written to the journal, not yet to the database: node -> steps row,
        # sig -> cache entry (outputs, object sizes, time), hash -> text; and the lines.
        self._pending: dict[str, tuple] = {}
        self._pending_cache: dict[str, tuple[list, list, float]] = {}
        # Whether the database's cache_steps table is empty (a first build's case): then
        # a stale step's cache lookup needs no query. None: not asked yet.
        self._no_cached_steps: bool | None = None
        self._pending_texts: dict[str, str] = {}
        self._journal_lines = 0
        self._journal_read = False
        self.warnings: list[str] = []  # for the build to tell (a damaged state set aside)
        self._aside = 0  # damaged databases set aside by this object
        # Workers' journals: file name -> bytes taken in (None: not to be read further).
        self._workers: dict[str, int | None] = {}
        self._workers_ran = False

    # -- connection -------------------------------------------------------------------

    @property
    def db(self) -> sqlite3.Connection | None:
        if self._db is None:
            check_layout(self.dir.parent)
            if not self.path.exists():
                if not self.create:
                    return None
                self.dir.mkdir(parents=True, exist_ok=True)
            try:
                self._db = self._open()
            except sqlite3.DatabaseError as e:
                raise self._failure(e) from None
        return self._db

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=60, isolation_level=None,
                             check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA busy_timeout=60000")
            row = None
            try:
                row = db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
            except sqlite3.OperationalError:
                pass
            if row is None:
                db.executescript("BEGIN;" + _SCHEMA + "COMMIT;")
                db.execute("INSERT OR REPLACE INTO meta VALUES('schema', ?)",
                           (str(SCHEMA_VERSION),))
                self._reindex(db)
            elif row[0] in _UPGRADABLE:
                # Only lacks tables (and a column): add them, keep every record.
                db.executescript("BEGIN;" + _SCHEMA + "COMMIT;")
                _add_peak_column(db)
                db.execute("UPDATE meta SET value=? WHERE key='schema'",
                           (str(SCHEMA_VERSION),))
            elif _older(row[0]):
                db.executescript("BEGIN;" + _RESET + _SCHEMA + "COMMIT;")
                _add_peak_column(db)
                db.execute("UPDATE meta SET value=? WHERE key='schema'",
                           (str(SCHEMA_VERSION),))
                # The local cache's objects (and its index) are named by the old
                # digests: no record names them any more.
                shutil.rmtree(self.dir / "cache", ignore_errors=True)
            elif row[0] != str(SCHEMA_VERSION):
                raise StateError(
                    f"`{self.path}` was written by another version of datamake "
                    f"(state schema {row[0]}, this one reads {SCHEMA_VERSION})",
                    help=f"delete `{self.dir}` to start over: the next build rebuilds "
                         f"what it cannot verify")
        except BaseException:
            db.close()
            raise
        return db

    def _failure(self, e: sqlite3.DatabaseError) -> StateError:
        """What to tell of an SQLite error; a damaged database is set aside first when
        this process holds the lock (no other process is using it then)."""
        if not is_damage(e):
            return StateError(f"cannot use `{self.path}`: {e}",
                              help=f"delete `{self.dir}` to start over: the next build "
                                   f"rebuilds what it cannot verify")
        if self._lock_fd is not None:
            self._set_aside()
            return StateError(f"`{self.path}` is damaged ({e}): it is set aside as "
                              f"`{self.dir / DAMAGED}`",
                              help="run the build again: it starts a new state, restoring "
                                   "from the cache or rebuilding what it cannot verify")
        return StateError(f"`{self.path}` is damaged ({e})",
                          help="run a build: it sets the damaged database aside and starts "
                               "a new state, restoring from the cache or rebuilding what it "
                               "cannot verify")

    def _set_aside(self) -> None:
        """Move a damaged database (and its WAL files) out of the way; forget what was
        read from it. The journal stays: its records are this state's latest."""
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._db = None
        self._aside += 1
        self._tx = False
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.replace(f"{self.path}{suffix}", f"{self.dir / DAMAGED}{suffix}")
        self._rows = self._children = None
        self._no_cached_steps = None
        self._texts_known.clear()

    def _probe(self) -> None:
        """Read what every build reads (the step records, the source memo, the cache
        index) under the lock: a damaged database is found here, set aside, and the
        build goes on with a new one (and says so), rather than failing midway."""
        aside = self._aside
        try:
            db = self.db
            if db is None:
                return
            self._all_rows()  # the planner's read of every record, done now
            for table in ("files", "cache_steps", "cache_objects", "texts"):
                db.execute(f"SELECT count(*) FROM {table}").fetchone()
        except StateError:
            if self._aside == aside:  # not a damaged database: nothing set aside
                raise
        except sqlite3.DatabaseError as e:
            if not is_damage(e):
                raise self._failure(e) from None
            self._set_aside()
        else:
            return
        self.warnings.append(f"`{self.path}` was damaged: it is set aside as "
                             f"`{self.dir / DAMAGED}`, and this build starts a new state "
                             f"(restoring from the cache, or rebuilding, what it cannot "
                             f"verify)")

    def close(self) -> None:
        self.unlock()
        if self._db is not None:
            self.flush()
            self._db.close()
            self._db = None

    # -- writing: small units, committed in groups ------------------------------------

    @contextlib.contextmanager
    def _write(self, urgent: bool = True, fold: bool = True) -> Iterator[sqlite3.Connection]:
        """One unit of writes, committed at once when `urgent` (every record of a
        finished step or partition is: that is what an interrupted build keeps).
        Bookkeeping that can be lost without harm (touched stamps, cache use times) is
        not urgent: it is committed with the next urgent unit, or at `flush`. A write
        that could be overtaken by older journal lines folds them first (`fold`)."""
        db = self.db
        assert db is not None
        if fold and self._journal_lines:
            self.fold()  # what the journal holds was written first
        if not self._tx:
            # A fresh transaction holds only this unit: no savepoint needed.
            db.execute("BEGIN")
            self._tx = True
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                self._tx = False
                raise
        else:
            db.execute("SAVEPOINT unit")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK TO unit")
                db.execute("RELEASE unit")
                raise
            db.execute("RELEASE unit")
        if urgent:
            self.flush()

    @_guarded
    def flush(self) -> None:
        """Commit what is written."""
        if self._tx and self._db is not None:
            self._db.execute("COMMIT")
            self._tx = False

    # -- the build lock ---------------------------------------------------------------

    def lock(self, on_wait: Callable[[int | None], None] | None = None) -> None:
        """Take the exclusive build lock, waiting (and saying so) if another run holds it.
        Raises StateError when `.datamake/` cannot be used."""
        check_layout(self.dir.parent)
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            # Not inherited by programs this process runs (O_CLOEXEC); forked children
            # close it (_close_locks_in_child): a flock lasts while any descriptor of it
            # is open, so a child that outlived the build would hold it, and every later
            # build wait.
            fd = os.open(self.dir / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as e:
            raise StateError(f"cannot use `{self.dir / 'lock'}`: {e.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                try:
                    other = int(os.pread(fd, 32, 0).decode().strip() or 0) or None
                except ValueError:
                    other = None
                on_wait(other)
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._lock_fd = fd
        _LOCKED.add(self)
        # Start from the state as it is now (another process may have built since this
        # object last read it), with what a killed build left in the journal folded in.
        self._rows = self._children = None
        self._no_cached_steps = None
        self._pending.clear()
        self._pending_texts.clear()
        self._pending_cache.clear()
        self._journal_lines = 0
        self._journal_read = False
        self._workers.clear()
        self._workers_ran = False
        try:
            self._probe()
            self._read_journal()
            if not self._journal_lines:
                # Nothing in it to trust (or nothing at all): start it afresh, so that
                # what this build appends is not read after a torn or foreign first line.
                self._empty_journal()
            else:
                self.fold()
        except BaseException as e:
            # No build on a state it cannot read: let go of the lock.
            failure = self._failure(e) if isinstance(e, sqlite3.DatabaseError) else e
            os.close(fd)
            self._lock_fd = None
            _LOCKED.discard(self)
            if failure is e:
                raise
            raise failure from None
        self._remove_worker_journals()  # folded (or not to be trusted)

    def unlock(self) -> None:
        if self._lock_fd is not None:
            with contextlib.suppress(OSError, sqlite3.Error, StateError):
                if self._workers_ran:  # what they wrote since the build last looked
                    self._read_workers()
                self.fold()  # else the next build folds it
                if self._workers_ran:
                    self._remove_worker_journals()
        self.flush()
        if self._journal_fd is not None:
            os.close(self._journal_fd)
            self._journal_fd = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing releases the flock
            self._lock_fd = None
            _LOCKED.discard(self)

    # -- the journal ------------------------------------------------------------------

    def _append(self, entry: list) -> None:
        """Write one finished unit to the journal: one `write` of one line."""
        if self._journal_fd is None:
            self._read_journal()
            self.dir.mkdir(parents=True, exist_ok=True)
            self._journal_fd = os.open(self.journal_path,
                                       os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            self._journal_new = os.fstat(self._journal_fd).st_size == 0
        line = (json.dumps(entry, separators=(",", ":")) + "\n").encode()
        if self._journal_new:  # the header goes with the first line: still one write
            line = JOURNAL_HEADER + line
            self._journal_new = False
        os.write(self._journal_fd, line)
        self._journal_lines += 1

    def _empty_journal(self) -> None:
        if self._journal_fd is not None:
            os.ftruncate(self._journal_fd, 0)
            self._journal_new = True
        else:
            with contextlib.suppress(FileNotFoundError):
                if os.path.getsize(self.journal_path):
                    os.truncate(self.journal_path, 0)

    def _checked(self, entry: list) -> list:
        """A journal line read back, as `record_step` (or a `WorkerJournal`, which adds
        what the build needs to know of it) wrote it. Raises ValueError (or TypeError)
        for a line that is not one."""
        kind, row, texts, cached, *extra = entry
        if len(extra) > 1 or (extra and not (
                isinstance(extra[0], list) and len(extra[0]) == 2
                and all(isinstance(x, str) for x in extra[0]))):
            raise ValueError("not a journal line")
        row = tuple(row)
        if kind != "step" or len(row) != 11 or not all(isinstance(x, str) for x in row[:9]):
            raise ValueError("not a journal line")
        texts = [(str(h), str(t)) for h, t in texts]
        if cached is not None:
            sig, outputs, sizes, now = cached
            cached = (str(sig), [(str(o), str(d)) for o, d in outputs],
                      [(str(d), int(n)) for d, n in sizes], float(now))
        return [kind, row, texts, cached, *extra]

    def _apply(self, entry: list) -> None:
        """Take a journal line into the overlay the readers see."""
        _, row, texts, cached = entry[:4]
        self._pending[row[0]] = row
        if texts:
            self._pending_texts.update(texts)
        if cached is not None:
            sig, outputs, sizes, now = cached
            self._pending_cache[sig] = (outputs, sizes, now)
        if self._rows is not None:
            node = row[0]
            name, key = split_step(node)
            if node not in self._rows and self._children is not None and key is not None:
                self._children.setdefault(name, []).append(node)
            self._rows[node] = (row[1], row[6], row[7])

    def _read_journal(self) -> None:
        """Load what the journal holds (a killed build's records) into the overlay,
        once, before this process appends to it. A torn last line is ignored: that
        step was not finished as far as the state knows, so it runs again."""
        if self._journal_read:
            return
        self._journal_read = True
        try:
            with open(self.journal_path, "rb") as f:
                data = f.read()
        except OSError:
            data = b""
        # Not read when empty, another version's, or torn before its first line ended.
        lines = data[len(JOURNAL_HEADER):].split(b"\n") if data.startswith(JOURNAL_HEADER) else []
        for line in lines:
            if not line:
                continue
            try:
                self._apply(self._checked(json.loads(line)))
            except (ValueError, TypeError, IndexError):
                break  # torn by a crash (or not ours): what follows is not trusted
            self._journal_lines += 1
        # The workers' lines come after the build's: the build records nothing of a
        # partition a worker wrote after the worker has.
        self._read_workers()

    def _read_workers(self) -> list[list]:
        """Take in what the pool workers' journals hold beyond what was taken already:
        whole lines only (a worker may be writing the next). Returns the entries."""
        try:
            names = [n for n in os.listdir(self.dir) if n.startswith(WORKER_JOURNAL)]
        except OSError:
            return []
        taken: list[list] = []
        for name in sorted(names):
            start = self._workers.get(name, 0)
            if start is None:
                continue
            try:
                with open(self.dir / name, "rb") as f:
                    f.seek(start)
                    data = f.read()
            except OSError:
                continue
            pos = 0
            if start == 0:
                if not data.startswith(JOURNAL_HEADER):
                    if not JOURNAL_HEADER.startswith(data):  # not a journal of ours
                        self._workers[name] = None
                    continue  # else its first line is being written
                pos = len(JOURNAL_HEADER)
            while True:
                end = data.find(b"\n", pos)
                if end < 0:
                    break
                try:
                    entry = self._checked(json.loads(data[pos:end]))
                except (ValueError, TypeError, IndexError):
                    self._workers[name] = None  # torn by a crash: what follows is not trusted
                    break
                self._apply(entry)
                self._journal_lines += 1
                taken.append(entry)
                pos = end + 1
            if self._workers.get(name, 0) is not None:
                self._workers[name] = start + pos
        return taken

    def take_worker_records(self) -> list[tuple[str, str, str, str, str]]:
        """The partitions pool workers recorded in their journals since the last call,
        now part of the state as if recorded here (the fold takes them to the
        database): (step, key, path, stamp as observed, digest) each."""
        self._workers_ran = True
        if self._rows is None:
            self._all_rows()
        out = []
        for entry in self._read_workers():
            row = entry[1]
            if len(entry) < 5:
                continue
            step, stamp = entry[4]
            node = row[0]
            out.append((step, split_step(node)[1], row[5], stamp, row[7]))
        if self._journal_lines >= FOLD_EVERY and self._lock_fd is not None:
            self.fold()
        return out

    def _remove_worker_journals(self) -> None:
        """After a fold under the lock: the workers' journals are in the database."""
        try:
            names = [n for n in os.listdir(self.dir) if n.startswith(WORKER_JOURNAL)]
        except OSError:
            return
        for name in names:
            with contextlib.suppress(OSError):
                os.unlink(self.dir / name)
        self._workers.clear()

    @_guarded
    def fold(self) -> None:
        """Move the journal into the database in one transaction, then empty it."""
        if not self._journal_lines or self._lock_fd is None:
            return
        db = self.db
        assert db is not None
        self.flush()
        db.execute("BEGIN")
        try:
            db.executemany("INSERT OR REPLACE INTO steps VALUES(?,?,?,?,?,?,?,?,?,?,?)",
                           self._pending.values())
            db.executemany("INSERT OR IGNORE INTO texts VALUES(?,?)",
                           self._pending_texts.items())
            db.executemany("INSERT OR REPLACE INTO cache_steps VALUES(?,?,?)",
                           [(sig, json.dumps(o), now)
                            for sig, (o, _, now) in self._pending_cache.items()])
            db.executemany("INSERT OR REPLACE INTO cache_objects VALUES(?,?,?)",
                           [(d, n, now) for _, sizes, now in self._pending_cache.values()
                            for d, n in sizes])
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        if self._pending_cache:
            self._no_cached_steps = False
            self._index([(sig, o, sizes) for sig, (o, sizes, _) in self._pending_cache.items()])
        # Committed: a crash from here on at worst folds the same lines again.
        self._empty_journal()
        self._texts_known.update(self._pending_texts)
        self._pending.clear()
        self._pending_texts.clear()
        self._pending_cache.clear()
        self._journal_lines = 0

    # -- steps ------------------------------------------------------------------------

    @_guarded
    def _all_rows(self) -> dict[str, tuple]:
        if self._rows is None:
            db = self.db
            if db is None:
                self._rows = {}
            else:
                self._rows = {r[0]: r[1:] for r in db.execute(
                    "SELECT node, sig, out_stamps, out_digests FROM steps")}
            self._read_journal()
            for node, row in self._pending.items():
                self._rows[node] = (row[1], row[6], row[7])
        return self._rows

    def quick(self, node: str) -> tuple[str, str, str] | None:
        """(sig, out_stamps, out_digests) of a step, without parsing details."""
        rows = self._rows
        return (rows if rows is not None else self._all_rows()).get(node)

    @_guarded
    def step(self, node: str) -> StepRecord | None:
        """The whole record of a step, or None when it was never built here."""
        self._read_journal()
        r = self._pending.get(node)
        if r is None:
            db = self.db
            if db is None:
                return None
            r = db.execute("SELECT * FROM steps WHERE node=?", (node,)).fetchone()
            if r is None:
                return None
        return StepRecord(r[0], r[1], r[2], r[3], r[4], _split(r[5]), _split(r[6]),
                          _split(r[7]), json.loads(r[8]), r[9], r[10])

    def nodes(self) -> list[str]:
        return list(self._all_rows())

    def children(self, rule: str) -> list[str]:
        """The recorded partition nodes `rule[key]` of a rule or partitioned output."""
        if self._children is None:
            self._children = {}
            for node in self._all_rows():
                name, key = split_step(node)
                if key is not None:
                    self._children.setdefault(name, []).append(node)
        return list(self._children.get(rule, ()))

    @_guarded
    def forget_many(self, nodes: list[str]) -> None:
        """Drop the records of partitions that no longer exist."""
        if not nodes:
            return
        db = self.db
        assert db is not None
        with self._write():
            db.executemany("DELETE FROM steps WHERE node=?", [(n,) for n in nodes])
        for n in nodes:
            if self._rows is not None:
                self._rows.pop(n, None)
            name, key = split_step(n)
            if self._children is not None and key is not None and \
                    n in self._children.get(name, ()):
                self._children[name].remove(n)

    @_guarded
    def record_step(self, rec: StepRecord, texts: dict[str, str] | None = None,
                    status: str | None = "built", reasons: list[str] | None = None,
                    cached: tuple[list, list] | None = None,
                    peak_kb: int | None = None) -> None:
        """Record a finished step, its line in the run history (with its peak memory,
        when measured) and (`cached`: outputs, object sizes) its entry in the local
        cache: one line in the journal."""
        row = _row(rec)
        new_texts = [(h, t) for h, t in (texts or {}).items()
                     if h not in self._texts_known and h not in self._pending_texts]
        entry: list = ["step", row, new_texts, None]
        if cached is not None:
            outputs, sizes = cached
            entry[3] = (rec.sig, outputs, sizes, time.time())
        if self._rows is None:
            self._all_rows()
        self._append(entry)
        self._apply(entry)
        # Folded once it is in the overlay too: a fold empties the journal, and a line
        # not yet applied would then be nowhere (and its step would run again).
        if self._journal_lines >= FOLD_EVERY and self._lock_fd is not None:
            self.fold()
        if self.run_id is not None and status is not None:
            # History, not state: kept with the run's end, one transaction for all.
            self._history.append((self.run_id, rec.node, status, rec.seconds, reasons or [],
                                  peak_kb))

    def _stamps_of_pending(self, stamps: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """New stamps (joined, node) for records still in the journal go into their rows
        in memory (the fold writes them); the others are returned, for the database."""
        rest = []
        for joined, node in stamps:
            row = self._pending.get(node)
            if row is not None:
                self._pending[node] = row[:6] + (joined,) + row[7:]
            else:
                rest.append((joined, node))
            if self._rows is not None:
                r = self._rows.get(node)
                if r is not None:
                    self._rows[node] = (r[0], joined, r[2])
        return rest

    @_guarded
    def restamp(self, steps: list[tuple[str, tuple[str, ...]]],
                files: list[tuple[str, str, str]]) -> None:
        """Trusted stamps for outputs and sources first recorded as too young."""
        rest = self._stamps_of_pending([(SEP.join(st), node) for node, st in steps])
        if not rest and not files:
            return
        db = self.db
        assert db is not None
        with self._write(fold=False):
            db.executemany("UPDATE steps SET out_stamps=? WHERE node=?", rest)
            db.executemany("INSERT OR REPLACE INTO files VALUES(?,?,?)", files)

    @_guarded
    def refresh_stamps(self, node: str, stamps: tuple[str, ...]) -> None:
        """A step's outputs were touched but not changed: remember their new stamps."""
        rest = self._stamps_of_pending([(SEP.join(stamps), node)])
        if not rest:
            return
        db = self.db
        assert db is not None
        with self._write(urgent=False, fold=False):
            db.executemany("UPDATE steps SET out_stamps=? WHERE node=?", rest)

    @_guarded
    def text(self, h: str) -> str | None:
        self._read_journal()
        if h in self._pending_texts:
            return self._pending_texts[h]
        db = self.db
        if db is None:
            return None
        r = db.execute("SELECT text FROM texts WHERE hash=?", (h,)).fetchone()
        return None if r is None else r[0]

    # -- source files -------------------------------------------------------------------

    @_guarded
    def files(self) -> dict[str, tuple[str, str]]:
        """path -> (stamp, digest) for every source file seen."""
        db = self.db
        if db is None:
            return {}
        return {p: (s, d) for p, s, d in db.execute("SELECT path, stamp, digest FROM files")}

    @_guarded
    def record_files(self, rows: list[tuple[str, str, str]]) -> None:
        if not rows:
            return
        db = self.db
        assert db is not None
        with self._write(fold=False):  # the journal holds no files
            db.executemany("INSERT OR REPLACE INTO files VALUES(?,?,?)", rows)

    # -- the local step cache ------------------------------------------------------

    @_guarded
    def cache_entry(self, sig: str) -> list[tuple[str, str]] | None:
        """The (output, digest) pairs cached under a step signature, or None."""
        self._read_journal()
        pending = self._pending_cache.get(sig)
        if pending is not None:
            return list(pending[0])
        db = self.db
        if db is None:
            return None
        if self._no_cached_steps is None:
            self._no_cached_steps = db.execute(
                "SELECT 1 FROM cache_steps LIMIT 1").fetchone() is None
        if self._no_cached_steps:
            return None
        r = db.execute("SELECT outputs FROM cache_steps WHERE sig=?", (sig,)).fetchone()
        return None if r is None else [tuple(x) for x in json.loads(r[0])]

    @_guarded
    def cache_add(self, sig: str | None, outputs: list[tuple[str, str]],
                  sizes: list[tuple[str, int]]) -> None:
        db = self.db
        assert db is not None
        now = time.time()
        with self._write():
            if sig is not None:
                db.execute("INSERT OR REPLACE INTO cache_steps VALUES(?,?,?)",
                           (sig, json.dumps(outputs), now))
                self._no_cached_steps = False
            db.executemany("INSERT OR REPLACE INTO cache_objects VALUES(?,?,?)",
                           [(d, n, now) for d, n in sizes])
        if sig is not None:
            self._index([(sig, outputs, sizes)])

    @_guarded
    def cache_touch(self, digest: str) -> None:
        db = self.db
        assert db is not None
        with self._write(urgent=False):
            db.execute("UPDATE cache_objects SET used=? WHERE digest=?", (time.time(), digest))

    @_guarded
    def cache_drop(self, sig: str) -> None:
        db = self.db
        if db is not None:
            with self._write():
                db.execute("DELETE FROM cache_steps WHERE sig=?", (sig,))

    @_guarded
    def cache_total(self) -> int:
        if self._journal_lines:
            self.fold()
        db = self.db
        if db is None:
            return 0
        return db.execute("SELECT COALESCE(SUM(size), 0) FROM cache_objects").fetchone()[0]

    @_guarded
    def cache_lru_over(self, size: int) -> list[tuple[str, int]]:
        """Forget least recently used objects until the total is at most `size`;
        returns them (digest, bytes) for deletion."""
        db = self.db
        if db is None:
            return []
        total = self.cache_total()
        out: list[tuple[str, int]] = []
        if total <= size:
            return out
        for digest, n in db.execute("SELECT digest, size FROM cache_objects ORDER BY used"):
            if total <= size:
                break
            out.append((digest, n))
            total -= n
        with self._write():
            db.executemany("DELETE FROM cache_objects WHERE digest=?", [(d,) for d, _ in out])
        return out

    @_guarded
    def cache_missing(self, has: Callable[[str], bool]) -> list[tuple[str, str]]:
        """Cached steps naming an object that is gone: (sig, digest)."""
        if self._journal_lines:
            self.fold()
        db = self.db
        if db is None:
            return []
        out = []
        for sig, outputs in db.execute("SELECT sig, outputs FROM cache_steps").fetchall():
            for _, digest in json.loads(outputs):
                if not has(digest):
                    out.append((sig, digest))
                    break
        return out

    @_guarded
    def cache_forget(self, sigs: list[str]) -> None:
        """Drop cache entries (their objects are gone), and write the cache's index
        afresh from what remains (its lines only ever accumulate otherwise)."""
        db = self.db
        if db is None:
            return
        with self._write():
            db.executemany("DELETE FROM cache_steps WHERE sig=?", [(s,) for s in sigs])
        sizes = dict(db.execute("SELECT digest, size FROM cache_objects").fetchall())
        rows = []
        for sig, outputs in db.execute("SELECT sig, outputs FROM cache_steps ORDER BY used"):
            outs = json.loads(outputs)
            rows.append((sig, outs, [(d, sizes[d]) for _, d in outs if d in sizes]))
        self._index(rows, fresh=True)

    def _index(self, rows: list[tuple[str, list, list]], fresh: bool = False) -> None:
        """Append cache entries (signature, outputs, object sizes) to the cache's index
        (one write), or with `fresh` replace it by them. Losing it loses only the means
        to recover the cache's entries after the database is lost: never fatal."""
        path = self.dir / CACHE_INDEX
        data = "".join(json.dumps([sig, outputs, sizes], separators=(",", ":")) + "\n"
                       for sig, outputs, sizes in rows).encode()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if fresh:
                tmp = path.with_name(f".index.{os.getpid()}.tmp")
                tmp.write_bytes(data)
                os.replace(tmp, path)
                return
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
        except OSError:
            pass

    def _reindex(self, db: sqlite3.Connection) -> None:
        """Take the cache's index into a new database's cache tables. Lines that are not
        entries are skipped; what an entry names is checked when it is used (an object
        that is gone or altered is a miss), as for any cache entry."""
        try:
            data = (self.dir / CACHE_INDEX).read_bytes()
        except OSError:
            return
        steps, objects = {}, {}
        now = time.time()
        for line in data.split(b"\n"):
            try:
                sig, outputs, sizes = json.loads(line)
                outputs = [(str(o), str(d)) for o, d in outputs]
                sizes = [(str(d), int(n)) for d, n in sizes]
            except (ValueError, TypeError):
                continue
            steps[str(sig)] = outputs
            objects.update(sizes)
        db.execute("BEGIN")
        db.executemany("INSERT OR REPLACE INTO cache_steps VALUES(?,?,?)",
                       [(sig, json.dumps(o), now) for sig, o in steps.items()])
        db.executemany("INSERT OR REPLACE INTO cache_objects VALUES(?,?,?)",
                       [(d, n, now) for d, n in objects.items()])
        db.execute("COMMIT")

    # -- runs -----------------------------------------------------------------------

    @_guarded
    def begin_run(self, argv: list[str]) -> None:
        db = self.db
        assert db is not None
        with self._write():
            cur = db.execute("INSERT INTO runs(started, argv, versions) VALUES(?,?,?)",
                             (time.time(), json.dumps(argv), "{}"))
            self.run_id = cur.lastrowid
            if self.run_id % 100 == 0:  # now and then: keep the last KEEP_RUNS runs
                oldest = self.run_id - KEEP_RUNS
                db.execute("DELETE FROM run_steps WHERE run <= ?", (oldest,))
                db.execute("DELETE FROM runs WHERE id <= ?", (oldest,))

    def record_run_step(self, node: str, status: str, seconds: float,
                        reasons: list[str], text: str | None = None) -> None:
        """A step's line in the run history; `text`: what its failure printed (kept as
        the step's last failure until it next succeeds)."""
        if self.run_id is not None:
            self._history.append((self.run_id, node, status, seconds, reasons, None))
            if text is not None:
                self._failures[node] = text

    @_guarded
    def end_run(self, status: str) -> None:
        if self.run_id is None or self._db is None:
            return
        with self._write():
            self._db.executemany("INSERT INTO run_steps VALUES(?,?,?,?,?,?)",
                                 [h[:4] + (json.dumps(h[4]), h[5]) for h in self._history])
            self._db.executemany("DELETE FROM failures WHERE node=?",
                                 [(h[1],) for h in self._history if h[2] != "failed"])
            self._db.executemany("INSERT OR REPLACE INTO failures VALUES(?,?,?)",
                                 [(n, self.run_id, t) for n, t in self._failures.items()])
            self._db.execute("UPDATE runs SET finished=?, status=?, versions=? WHERE id=?",
                             (time.time(), status, json.dumps(_versions()), self.run_id))
        self._history.clear()
        self._failures.clear()

    @_guarded
    def last_runs(self) -> dict[str, tuple[str, float]]:
        """step -> (status, seconds) of the latest run that ran it (built, cached or
        failed), for every step in the run history."""
        db = self.db
        if db is None:
            return {}
        # SQLite takes the bare columns from the row that has the MAX.
        return {node: (status, seconds) for node, status, seconds, _ in db.execute(
            "SELECT node, status, seconds, MAX(run) FROM run_steps GROUP BY node")}

    @_guarded
    def failure(self, node: str) -> str | None:
        """What a step's last run printed when it failed, unless it succeeded since."""
        db = self.db
        if db is None:
            return None
        row = db.execute("SELECT text FROM failures WHERE node=?", (node,)).fetchone()
        return None if row is None else row[0]

    @_guarded
    def runs(self, limit: int = 50) -> list[tuple[int, float, float | None, str, str | None,
                                                 dict[str, int]]]:
        """The latest `limit` runs, oldest first: (id, started, finished, argv as JSON,
        status, steps per status)."""
        db = self.db
        if db is None:
            return []
        rows = db.execute("SELECT id, started, finished, argv, status FROM runs "
                          "ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        counts: dict[int, dict[str, int]] = {}
        if rows:
            for run, status, n in db.execute(
                    "SELECT run, status, COUNT(*) FROM run_steps WHERE run >= ? "
                    "GROUP BY run, status", (rows[-1][0],)):
                counts.setdefault(run, {})[status] = n
        return [(*r, counts.get(r[0], {})) for r in reversed(rows)]

    @_guarded
    def history(self, node: str, limit: int = 20) -> list[tuple[float, str, float, int | None]]:
        """(started, status, seconds, peak memory in kB or None) of a step's latest runs."""
        db = self.db
        if db is None:
            return []
        return db.execute(
            "SELECT runs.started, run_steps.status, run_steps.seconds, run_steps.peak_kb "
            "FROM run_steps "
            "JOIN runs ON runs.id = run_steps.run WHERE node=? ORDER BY runs.id DESC LIMIT ?",
            (node, limit)).fetchall()


def _add_peak_column(db: sqlite3.Connection) -> None:
    """Schema 6: each step's line in the run history has its peak memory."""
    cols = [r[1] for r in db.execute("PRAGMA table_info(run_steps)")]
    if "peak_kb" not in cols:
        db.execute("ALTER TABLE run_steps ADD COLUMN peak_kb INTEGER")


def _older(schema: str) -> bool:
    """Whether a state's schema version is an older one than this datamake's."""
    try:
        return int(schema) < SCHEMA_VERSION
    except ValueError:
        return False


def _row(rec: StepRecord) -> tuple:
    """A record as a row of the steps table (and a journal line's)."""
    return (rec.node, rec.sig, rec.code_fp, rec.params_fp, rec.inputs_fp,
            SEP.join(rec.out_paths), SEP.join(rec.out_stamps), SEP.join(rec.out_digests),
            json.dumps(rec.detail, separators=(",", ":")), rec.built_at, rec.seconds)


def _split(s: str) -> tuple[str, ...]:
    return tuple(s.split(SEP)) if s else ()


class WorkerJournal:
    """Where a pool worker records the partitions a yielding recipe writes: its own
    `.datamake/journal.<pid>`, one line (one `write`) per partition, in the build's
    journal's format. The build takes the lines in as they come (`take_worker_records`);
    a build killed before it could is followed by one that folds them first, as it does
    the build's own journal. So a kill loses at most the partition in flight, and
    recording one costs a `write`."""

    def __init__(self, root: str):
        self.path = os.path.join(root, STATE_DIR, f"{WORKER_JOURNAL}{os.getpid()}")
        self._fd: int | None = None

    def append(self, rec: StepRecord, step: str, stamp: str) -> None:
        """Record partition `rec` of `step`, whose stamp was observed as `stamp` (the
        build restamps a young one at its end, as it does its own)."""
        line = (json.dumps(["step", _row(rec), [], None, [step, stamp]],
                           separators=(",", ":")) + "\n").encode()
        if self._fd is None:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC,
                               0o644)
            if os.fstat(self._fd).st_size == 0:  # the header with the first line: one write
                line = JOURNAL_HEADER + line
        os.write(self._fd, line)


# The States holding the build lock in this process. Every forked child (a pool worker,
# the half-parser, a recipe's own fork or multiprocessing pool) closes their lock
# descriptors at once: a flock lasts while any descriptor of it is open, so a child that
# outlived a killed build would make every later build wait for ever.
_LOCKED: "weakref.WeakSet[State]" = weakref.WeakSet()


def _close_locks_in_child() -> None:
    for st in list(_LOCKED):
        fd, st._lock_fd = st._lock_fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)
    _LOCKED.clear()


os.register_at_fork(after_in_child=_close_locks_in_child)


def _versions() -> dict[str, str]:
    """Versions of Python, datamake and the data libraries already imported."""
    out = {"python": sys.version.split()[0]}
    from . import __version__

    out["datamake"] = __version__
    for mod in ("pandas", "numpy", "pyarrow", "sklearn", "matplotlib"):
        m = sys.modules.get(mod)
        if m is not None:
            out[mod] = getattr(m, "__version__", "?")
    return out
