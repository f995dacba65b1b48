"""The step cache: every output a step wrote, stored by content under the step's
signature (recipe, parameters, input contents), so that a step whose signature was
built before is restored instead of run.

Two tiers, one layout of ideas:
- the local cache in `.datamake/cache/objects/` (files, hard-linked when possible, so
  keeping them costs no copy; a step's worker links its outputs there before
  committing them), indexed in the state database, trimmed to a size limit
  by `--gc` and after builds that exceed it ("going back is free");
- an optional shared cache at any fsspec URL (`cache "s3://team/cache"`): objects under
  `objects/aa/DIGEST`, step entries under `steps/aa/SIG.json`, written objects first so
  an entry never names a missing object. Content addressing makes concurrent writers of
  one signature harmless: they write the same bytes.

What a cache holds is input, never a path or code (docs/security.md says it for users):
- every digest read from a cache (an entry's outputs, a folder's list, the local index)
  must be exactly a content digest (BLAKE3, `hashing.is_digest`) before it names an
  object file; an entry's output names must be the step's outputs, its partition keys
  keys the catalog accepts, a folder list's paths plain relative paths. Anything else
  makes the entry a miss, with a warning naming the cache and the entry;
- every object is hashed before use: a corrupt one is reported (a warning naming the
  cache, the step and the digest) and the step runs;
- with a team key (DATAMAKE_CACHE_KEY) every shared entry carries an HMAC-SHA256 of
  (signature, outputs), and an entry without a valid one is refused. Without a key the
  shared cache is not authenticated, and an output whose loading can run code (pickle,
  `path`, plugin formats not declared safe) is never restored from it. The local cache
  is this machine's own, and trusted;
- read-only mode (`--cache-read-only`, DATAMAKE_CACHE_READONLY=1) fetches, never uploads.

The shared cache never fails a build: its failures are warnings, and after one the
build stops asking it (a storage that times out would otherwise cost every step the
timeouts).

Its length (over 500 lines) is the trust model: local and shared caches, digests, HMAC
entries and what may be restored from where are one set of rules.
"""
from __future__ import annotations

import contextlib
import json
import os
import posixpath
import shutil
import time
from pathlib import Path
from typing import Any, Iterable, NamedTuple

from . import formats
from .catalog import (TMP_DIR, Pending, endpoint_of, folder_digest, no_bucket,
                      open_filesystem, storage_error)
from .errors import CatalogError
from .hashing import hash_file, is_digest
from .steps import key_of, step_id

DEFAULT_LIMIT = 10 * 1024 ** 3
_UNITS = {"": 1, "B": 1, "K": 1024, "M": 1024 ** 2, "G": 1024 ** 3, "T": 1024 ** 4}
KEY_ENV = "DATAMAKE_CACHE_KEY"
READ_ONLY_ENV = "DATAMAKE_CACHE_READONLY"
LOCAL_NAME = "local cache `.datamake/cache`"
_SHOWN = 3  # warnings of one kind shown before the rest are counted


def parse_size(text: str) -> int:
    """`10G`, `500M`, `1.5T`, `1024` -> bytes. Raises ValueError."""
    t = text.strip().upper().removesuffix("IB").removesuffix("B")
    unit = t[-1] if t and t[-1] in _UNITS else ""
    number = t[: len(t) - len(unit)] if unit else t
    return int(float(number) * _UNITS[unit])


def limit() -> int:
    """The configured size limit of the local cache (DATAMAKE_CACHE_LIMIT, default 10G)."""
    raw = os.environ.get("DATAMAKE_CACHE_LIMIT")
    try:
        return parse_size(raw) if raw else DEFAULT_LIMIT
    except ValueError:
        return DEFAULT_LIMIT


def flag(value: str | None) -> bool:
    """An environment switch: `1`, `true`, `yes` or `on` (any case)."""
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


class Entry(NamedTuple):
    """A cached step: its outputs' names and digests, in output order, and whether it
    can be trusted (the local cache's, or a shared one authenticated by the team key)."""

    outputs: tuple[tuple[str, str], ...]
    trusted: bool = True


class Invalid(Exception):
    """An entry or a folder list that is not one datamake writes (why, in the message)."""


class Corrupt(Exception):
    """An object whose bytes do not match its digest."""

    def __init__(self, digest: str):
        super().__init__(digest)
        self.digest = digest


def shown(value: Any) -> str:
    """Text read from a cache, safe to print: escaped (no control characters reach the
    terminal) and at most 80 characters."""
    text = ascii(value)
    return text if len(text) <= 80 else text[:77] + "..."


def parse_outputs(raw: Any) -> tuple[tuple[str, str], ...]:
    """An entry's outputs, `[[name, digest], ...]`, checked: names are strings and every
    digest is a content digest. Raises Invalid."""
    if not isinstance(raw, (list, tuple)):
        raise Invalid("its outputs are not a list")
    out = []
    for item in raw:
        if not (isinstance(item, (list, tuple)) and len(item) == 2
                and isinstance(item[0], str)):
            raise Invalid(f"{shown(item)} is not an output and its digest")
        name, digest = item
        if not is_digest(digest):
            raise Invalid(f"output {shown(name)} names {shown(digest)}, which is not a "
                          f"content digest")
        out.append((name, digest))
    return tuple(out)


def entry_mac(key: bytes, sig: str, outputs: Iterable[tuple[str, str]]) -> str:
    """The team key's HMAC-SHA256 of an entry: its signature and outputs, in a canonical
    encoding (compact JSON, ASCII), under a label that no other message of datamake's
    could share."""
    import hashlib  # here: OpenSSL's import is milliseconds, and a no-op build needs none
    import hmac

    msg = json.dumps(["datamake-cache-entry", 1, sig, [[n, d] for n, d in outputs]],
                     separators=(",", ":"), ensure_ascii=True)
    return hmac.new(key, msg.encode("ascii"), hashlib.sha256).hexdigest()


# A folder output is kept as its files, each an object, and the list of them (path in the
# folder, digest) as the object named by the folder's digest.

def folder_object(files: list[tuple[str, str]]) -> bytes:
    return json.dumps({"files": files}).encode()


def read_folder_object(data: bytes, digest: str) -> list[tuple[str, str]]:
    """The files a folder object lists. Raises Corrupt when the bytes are not the list
    `digest` names, Invalid when they are but a path in it is not a plain relative path
    (no `..`, no empty or `.` parts, no duplicates, no file inside another) or a digest
    not a file's."""
    try:
        files = json.loads(data)["files"]
        files = [(rel, d) for rel, d in files]
        if not all(isinstance(rel, str) and isinstance(d, str) for rel, d in files):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        raise Corrupt(digest) from None
    if folder_digest(files) != digest:
        raise Corrupt(digest)
    seen: set[str] = set()
    parents: set[str] = set()
    for rel, d in files:
        parts = rel.split("/")
        if (not rel or rel.startswith("/") or posixpath.normpath(rel) != rel or "\0" in rel
                or any(p in ("", ".", "..") for p in parts) or rel in seen):
            raise Invalid(f"its folder list names {shown(rel)}, which is not a plain "
                          f"relative path")
        if not is_digest(d) or d.startswith("d:"):
            raise Invalid(f"its folder list gives {shown(rel)} the digest {shown(d)}, "
                          f"which is not a file's content digest")
        seen.add(rel)
        parents.update("/".join(parts[:i]) for i in range(1, len(parts)))
    if seen & parents:
        raise Invalid(f"its folder list names {shown(min(seen & parents))} both as a file "
                      f"and as a folder")
    return files


class LocalCache:
    """`.datamake/cache`: objects as files, the index in the state database."""

    name = LOCAL_NAME

    def __init__(self, root: Path, state: Any):
        self.dir = Path(root) / ".datamake" / "cache" / "objects"
        self.state = state

    def path(self, digest: str) -> Path:
        """Where object `digest` is kept. Raises ValueError for anything but a content
        digest: nothing else may name a file here."""
        if not is_digest(digest):
            raise ValueError(f"not a content digest: {shown(digest)}")
        return self.dir / digest

    def get(self, sig: str) -> Entry | None:
        """The entry indexed under `sig`, or None. Raises Invalid."""
        try:
            outs = self.state.cache_entry(sig)
        except (ValueError, TypeError):
            raise Invalid("its record in the index is not a list of outputs") from None
        return None if outs is None else Entry(parse_outputs(outs), True)

    def has(self, digest: str) -> bool:
        return is_digest(digest) and self.path(digest).is_file()

    def folder(self, digest: str) -> list[tuple[str, str]] | None:
        """The files of a kept folder, or None when it is not kept. Raises Corrupt (the
        bad copy is dropped) or Invalid."""
        obj = self.path(digest)
        try:
            data = obj.read_bytes()
        except OSError:
            return None
        try:
            return read_folder_object(data, digest)
        except Corrupt:
            obj.unlink(missing_ok=True)
            raise

    def materialize(self, digest: str, tmp: str) -> bool:
        """Put a verified copy of object `digest` at `tmp` (a folder: its files, each
        verified); False when it is not kept. Raises Corrupt (the bad copy is dropped)
        or Invalid."""
        if digest.startswith("d:"):
            files = self.folder(digest)
            if files is None:
                return False
            os.makedirs(tmp, exist_ok=True)
            try:
                if not all(self.materialize(d, os.path.join(tmp, rel)) for rel, d in files):
                    shutil.rmtree(tmp, ignore_errors=True)
                    return False
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            self.state.cache_touch(digest)
            return True
        obj = self.path(digest)
        if not obj.is_file():
            return False
        if hash_file(str(obj)) != digest:
            obj.unlink(missing_ok=True)
            raise Corrupt(digest)
        os.makedirs(os.path.dirname(tmp), exist_ok=True)
        link_or_copy(str(obj), tmp)
        self.state.cache_touch(digest)
        return True

    def adopt(self, digest: str, path: str) -> None:
        """Take a verified file (fetched from the shared cache) into the local cache,
        moving it there (unless the cache has it already)."""
        obj = self.path(digest)
        if not obj.exists():
            obj.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, obj)
            self.state.cache_add(None, [], [(digest, obj.stat().st_size)])

    def gc(self, size: int) -> tuple[int, int]:
        """Delete least recently used objects until the cache holds at most `size`
        bytes; returns (objects removed, bytes freed)."""
        removed = freed = 0
        for digest, nbytes in self.state.cache_lru_over(size):
            if is_digest(digest):  # the index names objects, never other files
                self.path(digest).unlink(missing_ok=True)
            removed += 1
            freed += nbytes
        self.state.cache_forget([sig for sig, _ in self.state.cache_missing(self.has)])
        return removed, freed


class SharedCache:
    """A team's cache at an fsspec URL (S3, a shared folder, ...); `key` is the team key
    that signs and checks its entries (None: not authenticated)."""

    def __init__(self, url: str, key: bytes | None = None):
        self.url = url.rstrip("/")
        self.name = f"shared cache `{self.url}`"
        self.key = key
        self._fs = None
        self._local = False

    @property
    def fs(self):
        if self._fs is None:
            self._fs = open_filesystem(self.url)
            self._local = "file" in self._fs.protocol or "local" in self._fs.protocol
        return self._fs

    def _parent(self, path: str) -> None:
        if self._local:  # a folder: its subfolders must exist before a write
            self.fs.makedirs(path.rpartition("/")[0], exist_ok=True)

    def _p(self, *parts: str) -> str:
        return "/".join([self.url, *parts])

    @staticmethod
    def entry_name(sig: str) -> str:
        return f"steps/{sig[:2]}/{sig}.json"

    def _error(self, e: Exception) -> CatalogError:
        return storage_error(self.name, e, endpoint_of(self._fs))

    def get(self, sig: str) -> Entry | None:
        """The entry under `sig` (None when there is none), trusted when the team key
        authenticates it. Raises Invalid (not an entry, or, with a key, not written with
        it) or CatalogError (the storage failed)."""
        try:
            raw = self.fs.cat_file(self._p(self.entry_name(sig)))
        except FileNotFoundError as e:
            if no_bucket(e):
                raise self._error(e) from None
            return None
        except Exception as e:
            raise self._error(e) from None
        try:
            data = json.loads(raw)
        except ValueError:
            raise Invalid("it is not JSON") from None
        if not isinstance(data, dict):
            raise Invalid("it is not an entry")
        outputs = parse_outputs(data.get("outputs"))
        if self.key is None:
            return Entry(outputs, False)
        mac = data.get("mac")
        if not isinstance(mac, str):
            raise Invalid(f"it carries no MAC: it was not written with the team key "
                          f"({KEY_ENV})")
        import hmac

        want = entry_mac(self.key, sig, outputs)
        if not (mac.isascii() and hmac.compare_digest(want.encode(), mac.encode())):
            raise Invalid(f"its MAC does not match: it was not written with the team key "
                          f"({KEY_ENV})")
        return Entry(outputs, True)

    def _object(self, digest: str) -> str:
        return self._p("objects", digest[:2], digest)

    def fetch(self, wanted: list[tuple[str, str]]) -> bool:
        """Download objects (validated digests) to local paths, (digest, path) each, all
        at once where the filesystem can (S3); False when one is missing. The caller
        verifies them. Raises CatalogError."""
        for _, dest in wanted:
            os.makedirs(os.path.dirname(dest), exist_ok=True)
        try:
            self.fs.get([self._object(d) for d, _ in wanted], [dest for _, dest in wanted])
        except FileNotFoundError as e:
            if no_bucket(e):
                raise self._error(e) from None
            return False
        except Exception as e:
            raise self._error(e) from None
        return all(os.path.exists(dest) for _, dest in wanted)

    def read(self, digest: str) -> bytes | None:
        """An object's bytes (a folder's list of files), None when missing. Raises
        CatalogError."""
        try:
            return self.fs.cat_file(self._object(digest))
        except FileNotFoundError as e:
            if no_bucket(e):
                raise self._error(e) from None
            return None
        except Exception as e:
            raise self._error(e) from None

    def _exist(self, paths: list[str]) -> list[bool]:
        """Whether each path exists: asked concurrently on an async filesystem (S3), where
        each is a request."""
        from fsspec.asyn import AsyncFileSystem, sync

        fs = self.fs
        if not isinstance(fs, AsyncFileSystem) or len(paths) < 2:
            return [fs.exists(p) for p in paths]

        async def ask() -> list[bool]:
            import asyncio

            limit = asyncio.Semaphore(32)

            async def one(p: str) -> bool:
                async with limit:
                    return await fs._exists(p)

            # Every answer collected, failures too: a failed task left unawaited is
            # printed by asyncio at exit ("Task exception was never retrieved").
            got = await asyncio.gather(*(one(p) for p in paths), return_exceptions=True)
            for g in got:
                if isinstance(g, BaseException):
                    raise g
            return list(got)

        return sync(fs.loop, ask)

    def put(self, sig: str, outputs: list[tuple[str, str]], files: dict[str, str]) -> None:
        """Upload the objects, `files` (digest -> local path; those not there yet, all at
        once where the filesystem can), then the entry naming the outputs (with its MAC
        when there is a team key). Raises CatalogError."""
        try:
            paths = {d: self._object(d) for d in files}
            todo = [d for d, there in zip(paths, self._exist(list(paths.values())))
                    if not there]
            for d in todo:
                self._parent(paths[d])
            if todo:
                self.fs.put([files[d] for d in todo], [paths[d] for d in todo])
            entry: dict[str, Any] = {"outputs": outputs, "created": time.time()}
            if self.key is not None:
                entry["mac"] = entry_mac(self.key, sig, outputs)
            path = self._p(self.entry_name(sig))
            self._parent(path)
            self.fs.pipe_file(path, json.dumps(entry).encode())
        except Exception as e:
            raise self._error(e) from None


def link_or_copy(src: str, dst: str | Path) -> None:
    """Put `src`'s bytes at `dst` atomically: a hard link when the filesystem allows
    (outputs are only ever replaced by rename, so sharing an inode is safe), else a copy."""
    tmp = f"{dst}.{os.getpid()}.tmp"
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


class Caches:
    """The local cache and, when configured, the shared one, as the executor uses them.

    `read_only`: fetch from the shared cache, never upload (also DATAMAKE_CACHE_READONLY);
    the team key comes from DATAMAKE_CACHE_KEY in `env` (default: the environment)."""

    def __init__(self, project: Any, shared_url: str | None, read_only: bool = False,
                 env: Any = None):
        env = os.environ if env is None else env
        self.project = project
        self.local = LocalCache(project.root, project.state)
        key = env.get(KEY_ENV) or None
        self.shared = (SharedCache(shared_url, key.encode("utf-8", "surrogatepass")
                                   if key else None) if shared_url else None)
        self.read_only = read_only or flag(env.get(READ_ONLY_ENV))
        # Warnings by kind, in order: a kind repeated for many steps is summarised.
        self._said: dict[str, list[str]] = {}
        self._unsafe: list[str] = []  # steps not restored: code-running formats, no key
        # After a storage failure the shared cache is not asked again in this build.
        self._no_reads = self._no_uploads = self._no_uploads_said = False
        # Uploads to the shared cache run in background threads while the build goes on
        # (each is a few requests per object, mostly waiting on the network); `close`
        # waits for them. Two uploads of one object write the same bytes: harmless.
        self._uploader: Any = None
        self._uploads: list[Any] = []

    # -- warnings -----------------------------------------------------------------

    def _warn(self, kind: str, text: str) -> None:
        self._said.setdefault(kind, []).append(text)

    @property
    def warnings(self) -> list[str]:
        """What went wrong with the caches (none of it fails a build), a kind repeated
        for many steps shown a few times, then counted."""
        out: list[str] = []
        for kind, texts in self._said.items():
            out.extend(texts[:_SHOWN])
            if len(texts) > _SHOWN:
                out.append(f"... and {len(texts) - _SHOWN} more {kind}")
        if self._unsafe and self.shared is not None:
            steps = ", ".join(f"`{s}`" for s in self._unsafe[:5])
            more = f" and {len(self._unsafe) - 5} more" if len(self._unsafe) > 5 else ""
            out.append(
                f"{self.shared.name}: not restored from it: {steps}{more}: their outputs "
                f"are of formats whose loading can run code (pickle, path, or a plugin "
                f"format not declared safe), and the cache is not authenticated; the "
                f"steps ran. To restore them, set {KEY_ENV} to the team's secret where "
                f"the cache is written and where it is read (see docs/security.md)")
        return out

    def _storage_failed(self, e: CatalogError, upload: bool) -> None:
        """The shared cache's storage failed: said once, and not asked again (after a
        failed read, nothing; after a failed upload, no more uploads). Failures after
        the first have the same cause, and are not repeated."""
        if upload:
            said = self._no_reads or self._no_uploads_said
            self._no_uploads = self._no_uploads_said = True
            if not said:
                self._warn("storage failures", f"{e}; nothing more is uploaded to it in "
                           f"this build (to only read it, use --cache-read-only)")
        elif not self._no_reads:
            self._no_reads = self._no_uploads = True
            self._warn("storage failures", f"{e}; it is not used for the rest of this "
                       f"build")

    # -- restoring ----------------------------------------------------------------

    def _entry(self, sig: str, step: str) -> tuple[Entry, Any] | None:
        """The entry under `sig`, from the local cache or else the shared one, and which
        cache it came from; None (a warning said why, if there is a reason) when none
        can be used."""
        try:
            entry = self.local.get(sig)
        except Invalid as e:
            self._invalid(self.local, sig, step, str(e))
            return None
        if entry is not None:
            return entry, self.local
        if self.shared is None or self._no_reads:
            return None
        try:
            entry = self.shared.get(sig)
        except CatalogError as e:
            self._storage_failed(e, upload=False)
            return None
        except Invalid as e:
            self._invalid(self.shared, sig, step, str(e))
            return None
        return None if entry is None else (entry, self.shared)

    def _invalid(self, cache: Any, sig: str, step: str, why: str) -> None:
        """An entry that cannot be used: said, and dropped from the local index."""
        where = f"entry `{cache.entry_name(sig)}`" if cache is self.shared else \
            f"entry `{sig}`"
        self._warn("refused entries", f"{cache.name}: {where} of `{step}` is refused: "
                   f"{why}; the step runs")
        if cache is self.local:
            self.project.state.cache_drop(sig)

    def _trusted_for(self, entry: Entry, cache: Any, outputs: Iterable[str],
                     step: str) -> bool:
        """Whether an entry may be restored into datasets `outputs`: always from the
        local cache or an authenticated one; from a shared cache that is not
        authenticated, only when every output's format loads without running code."""
        if entry.trusted or cache is self.local:
            return True
        fmt = self.project.catalog.format_of
        if all(formats.safe_to_load(fmt(o)) for o in outputs):
            return True
        self._unsafe.append(step)
        return False

    def restore(self, node: Any, key: str | None, sig: str) -> list[Pending] | None:
        """Pending writes of a step's outputs from the caches, verified, or None."""
        step = step_id(node.name, key)
        found = self._entry(sig, step)
        if found is None:
            return None
        entry, cache = found
        names = [n for n, _ in entry.outputs]
        if names != list(node.outputs):
            self._invalid(cache, sig, step, f"it names the outputs {shown(names)}, not "
                          f"the step's {shown(list(node.outputs))}")
            return None
        if not self._trusted_for(entry, cache, node.outputs, step):
            return None
        return self._materialize(sig, step, entry, cache, [(n, key) for n in node.outputs])

    def restore_parts(self, node: Any, sig: str) -> list[tuple[str, Pending]] | None:
        """A yielding step's partitions from the caches, as (key, pending write), all
        verified, or None. Its entry names them `OUT[KEY]`."""
        step = node.name
        found = self._entry(sig, step)
        if found is None:
            return None
        entry, cache = found
        out = node.outputs[0]
        keys: list[str] = []
        for n, _ in entry.outputs:
            k = key_of(n, out)
            if k is None:
                self._invalid(cache, sig, step, f"it names the output {shown(n)}, not a "
                              f"partition `{out}[KEY]`")
                return None
            try:
                self.project.catalog.location(out, k)  # the catalog's own test of a key
            except CatalogError:
                self._invalid(cache, sig, step, f"{shown(k)} is not a partition key of "
                              f"`{out}`")
                return None
            keys.append(k)
        if len(set(keys)) != len(keys):
            self._invalid(cache, sig, step, "it names a partition twice")
            return None
        if not self._trusted_for(entry, cache, [out], step):
            return None
        pendings = self._materialize(sig, step, entry, cache, [(out, k) for k in keys])
        return None if pendings is None else list(zip(keys, pendings))

    def _materialize(self, sig: str, step: str, entry: Entry, cache: Any,
                     where: list[tuple[str, str | None]]) -> list[Pending] | None:
        """The entry's objects at temporary paths of (dataset, partition key) `where`."""
        cat = self.project.catalog
        pendings = [cat.temp_path(name, key)._replace(digest=digest)
                    for (name, key), (_, digest) in zip(where, entry.outputs)]
        ok = False
        source = self.local
        try:
            # From the local cache first; what it lacks, brought there from the shared one.
            missing = [p for p in pendings if not self.local.materialize(p.digest, p.tmp)]
            ok = not missing
            if missing and self.shared is not None and not self._no_reads:
                source = self.shared
                ok = self._fetch([p.digest for p in missing]) and all(
                    self.local.materialize(p.digest, p.tmp) for p in missing)
        except Corrupt as e:
            self._warn("corrupt objects", f"{source.name}: object `{e.digest}` of `{step}` "
                       f"is corrupt (its bytes do not match its digest); the step runs")
        except Invalid as e:
            self._invalid(source, sig, step, str(e))
        except CatalogError as e:
            self._storage_failed(e, upload=False)
        except OSError as e:
            self._warn("restore failures", f"cannot restore `{step}` from the cache: "
                       f"{e.strerror or e}; the step runs")
        if not ok:
            for p in pendings:
                cat.discard(p)
            if cache is self.local:
                self.project.state.cache_drop(sig)
            return None
        if cache is not self.local and entry.trusted:
            # Authenticated: this machine may restore it again without asking. An entry
            # that is not stays out of the local index (which is trusted for every format).
            self.project.state.cache_add(sig, list(entry.outputs), [])
        return pendings

    def _fetch(self, digests: list[str]) -> bool:
        """Bring objects from the shared cache into the local one, verified (a folder:
        its list of files, then the files it lacks); False when one is missing. Raises
        Corrupt, Invalid or CatalogError."""
        assert self.shared is not None
        files = {d for d in digests if not d.startswith("d:")}
        for d in digests:
            if not d.startswith("d:"):
                continue
            listed = self.local.folder(d)
            if listed is None:  # the folder's list too comes from the shared cache
                data = self.shared.read(d)
                if data is None:
                    return False
                listed = read_folder_object(data, d)
                self._take(d, data)
            files.update(fd for _, fd in listed)
        files = {d for d in files if not self.local.has(d)}
        incoming = {d: self._incoming(d) for d in files}
        try:
            if incoming and not self.shared.fetch(list(incoming.items())):
                return False
            for d, path in incoming.items():
                if hash_file(path) != d:
                    raise Corrupt(d)
            for d, path in incoming.items():
                self.local.adopt(d, path)
        finally:
            for path in incoming.values():
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
        return True

    def _incoming(self, digest: str) -> str:
        # In .datamake/tmp, which a build started after a kill empties; on the cache's
        # filesystem, so that taking a file in is a rename.
        return os.path.join(self.project.root, TMP_DIR, f"{os.getpid()}-incoming-{digest}")

    def _take(self, digest: str, data: bytes) -> None:
        """A verified folder list into the local cache."""
        self.local.dir.mkdir(parents=True, exist_ok=True)
        self.local.path(digest).unlink(missing_ok=True)  # a bad copy, if any
        tmp = self._incoming(digest)
        os.makedirs(os.path.dirname(tmp), exist_ok=True)
        with open(tmp, "wb") as f:
            f.write(data)
        self.local.adopt(digest, tmp)

    # -- sharing ------------------------------------------------------------------

    def share_outputs(self, sig: str, outputs: list[tuple[str, str]]) -> None:
        """Upload (name, digest) outputs kept in the local cache, under `sig` (a folder:
        its list of files and the files); nothing in read-only mode."""
        if self.shared is None or self.read_only or self._no_uploads:
            return
        files = {}
        try:
            for _, d in outputs:
                files[d] = str(self.local.path(d))
                if d.startswith("d:"):
                    listed = self.local.folder(d)
                    if listed is None:
                        return
                    files.update((fd, str(self.local.path(fd))) for _, fd in listed)
        except (ValueError, Corrupt, Invalid):
            return  # not kept as it should be: not shared
        if not all(os.path.exists(f) for f in files.values()):
            return
        if self._uploader is None:
            from concurrent.futures import ThreadPoolExecutor

            self._uploader = ThreadPoolExecutor(4, thread_name_prefix="datamake-upload")
        self._uploads.append(self._uploader.submit(self._put, sig, outputs, files))

    def _put(self, sig: str, outputs: list[tuple[str, str]], files: dict[str, str]) -> None:
        if self._no_uploads or self.shared is None:  # an earlier upload failed
            return
        try:
            self.shared.put(sig, outputs, files)
        except CatalogError:
            self._no_uploads = True
            raise

    def close(self, cancel: bool = False) -> None:
        """Wait for the uploads under way (or, with `cancel`, for the one running only;
        an entry is written after its objects, so a cut-off upload leaves no entry)."""
        if self._uploader is None:
            return
        self._uploader.shutdown(wait=True, cancel_futures=cancel)
        for upload in self._uploads:
            if upload.cancelled():
                continue
            e = upload.exception()
            if isinstance(e, CatalogError):
                self._storage_failed(e, upload=True)
            elif e is not None:
                assert self.shared is not None
                self._warn("failed uploads", f"{self.shared.name}: upload failed: "
                           f"{type(e).__name__}: {e}")
        self._uploader, self._uploads = None, []
