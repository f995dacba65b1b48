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

A cached object is hashed before use: a corrupt or partial entry is ignored (and the
recipe runs), never restored.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, NamedTuple

from .catalog import TMP_DIR, Pending, folder_digest, storage_error
from .errors import CatalogError
from .hashing import hash_file

DEFAULT_LIMIT = 10 * 1024 ** 3
_UNITS = {"": 1, "B": 1, "K": 1024, "M": 1024 ** 2, "G": 1024 ** 3, "T": 1024 ** 4}


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


class Entry(NamedTuple):
    """A cached step: its outputs' names and digests, in output order."""

    outputs: tuple[tuple[str, str], ...]


# A folder output is kept as its files, each an object, and the list of them (path in the
# folder, digest) as the object named by the folder's digest.

def folder_object(files: list[tuple[str, str]]) -> bytes:
    return json.dumps({"files": files}).encode()


def read_folder_object(data: bytes, digest: str) -> list[tuple[str, str]] | None:
    """The files a folder object lists, or None when it is not the list of `digest`."""
    try:
        files = [(str(rel), str(d)) for rel, d in json.loads(data)["files"]]
    except (ValueError, KeyError, TypeError):
        return None
    unsafe = any(os.path.isabs(rel) or os.path.normpath(rel).startswith("..") for rel, _ in files)
    return None if unsafe or folder_digest(files) != digest else files


class LocalCache:
    """`.datamake/cache`: objects as files, the index in the state database."""

    def __init__(self, root: Path, state: Any):
        self.dir = Path(root) / ".datamake" / "cache" / "objects"
        self.state = state

    def path(self, digest: str) -> Path:
        return self.dir / digest

    def get(self, sig: str) -> Entry | None:
        outs = self.state.cache_entry(sig)
        return None if outs is None else Entry(tuple(outs))

    def has(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def folder(self, digest: str) -> list[tuple[str, str]] | None:
        """The files of a kept folder, or None (missing, or not its list)."""
        try:
            return read_folder_object(self.path(digest).read_bytes(), digest)
        except OSError:
            return None

    def materialize(self, digest: str, tmp: str) -> bool:
        """Put a verified copy of object `digest` at `tmp` (a folder: its files, each
        verified); False when it is missing or corrupt (then it is dropped)."""
        obj = self.path(digest)
        if digest.startswith("d:"):
            files = self.folder(digest)
            if files is None:
                obj.unlink(missing_ok=True)
                return False
            os.makedirs(tmp, exist_ok=True)
            if not all(self.materialize(d, os.path.join(tmp, rel)) for rel, d in files):
                shutil.rmtree(tmp, ignore_errors=True)
                return False
            self.state.cache_touch(digest)
            return True
        if not obj.is_file():
            return False
        if hash_file(str(obj)) != digest:
            obj.unlink(missing_ok=True)
            return False
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
            self.path(digest).unlink(missing_ok=True)
            removed += 1
            freed += nbytes
        self.state.cache_forget([sig for sig, _ in self.state.cache_missing(self.has)])
        return removed, freed


class SharedCache:
    """A team's cache at an fsspec URL (S3, a shared folder, ...)."""

    def __init__(self, url: str):
        self.url = url.rstrip("/")
        self._fs = None
        self._local = False

    @property
    def fs(self):
        if self._fs is None:
            import fsspec

            self._fs = fsspec.core.url_to_fs(self.url)[0]
            self._local = "file" in self._fs.protocol or "local" in self._fs.protocol
        return self._fs

    def _parent(self, path: str) -> None:
        if self._local:  # a folder: its subfolders must exist before a write
            self.fs.makedirs(path.rpartition("/")[0], exist_ok=True)

    def _p(self, *parts: str) -> str:
        return "/".join([self.url, *parts])

    def get(self, sig: str) -> Entry | None:
        try:
            raw = self.fs.cat_file(self._p("steps", sig[:2], sig + ".json"))
            data = json.loads(raw)
            return Entry(tuple((str(n), str(d)) for n, d in data["outputs"]))
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError):
            return None  # a corrupt entry is a miss
        except Exception as e:
            raise storage_error(f"shared cache `{self.url}`", e) from None

    def _object(self, digest: str) -> str:
        return self._p("objects", digest[:2], digest)

    def fetch(self, wanted: list[tuple[str, str]]) -> bool:
        """Download objects to local paths, (digest, path) each, all at once where the
        filesystem can (S3), and verify them; False when one is missing or corrupt."""
        for _, dest in wanted:
            os.makedirs(os.path.dirname(dest), exist_ok=True)
        try:
            self.fs.get([self._object(d) for d, _ in wanted], [dest for _, dest in wanted])
        except FileNotFoundError:
            return False
        except Exception as e:
            raise storage_error(f"shared cache `{self.url}`", e) from None
        return all(os.path.exists(dest) and hash_file(dest) == d for d, dest in wanted)

    def read(self, digest: str) -> bytes | None:
        """An object's bytes (a folder's list of files), None when missing."""
        try:
            return self.fs.cat_file(self._object(digest))
        except FileNotFoundError:
            return None
        except Exception as e:
            raise storage_error(f"shared cache `{self.url}`", e) from None

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

            return list(await asyncio.gather(*(one(p) for p in paths)))

        return sync(fs.loop, ask)

    def put(self, sig: str, outputs: list[tuple[str, str]], files: dict[str, str]) -> None:
        """Upload the objects, `files` (digest -> local path; those not there yet, all at
        once where the filesystem can), then the entry naming the outputs."""
        try:
            paths = {d: self._object(d) for d in files}
            todo = [d for d, there in zip(paths, self._exist(list(paths.values())))
                    if not there]
            for d in todo:
                self._parent(paths[d])
            if todo:
                self.fs.put([files[d] for d in todo], [paths[d] for d in todo])
            entry = {"outputs": outputs, "created": time.time()}
            path = self._p("steps", sig[:2], sig + ".json")
            self._parent(path)
            self.fs.pipe_file(path, json.dumps(entry).encode())
        except Exception as e:
            raise storage_error(f"shared cache `{self.url}`", e) from None


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
    """The local cache and, when configured, the shared one, as the executor uses them."""

    def __init__(self, project: Any, shared_url: str | None):
        self.project = project
        self.local = LocalCache(project.root, project.state)
        self.shared = SharedCache(shared_url) if shared_url else None
        self.warnings: list[str] = []
        # Uploads to the shared cache run in background threads while the build goes on
        # (each is a few requests per object, mostly waiting on the network); `close`
        # waits for them. Two uploads of one object write the same bytes: harmless.
        self._uploader: Any = None
        self._uploads: list[Any] = []

    def _entry(self, sig: str) -> tuple[Entry | None, str]:
        entry = self.local.get(sig)
        if entry is not None or self.shared is None:
            return entry, "local"
        try:
            return self.shared.get(sig), "shared"
        except CatalogError as e:
            self.warnings.append(str(e))
            return None, "shared"

    def restore(self, node: Any, key: str | None, sig: str) -> list[Pending] | None:
        """Pending writes of a step's outputs from the caches, verified, or None."""
        entry, source = self._entry(sig)
        if entry is None or [n for n, _ in entry.outputs] != list(node.outputs):
            return None
        return self._materialize(sig, entry, source, [(n, key) for n in node.outputs])

    def restore_parts(self, node: Any, sig: str) -> list[tuple[str, Pending]] | None:
        """A yielding step's partitions from the caches, as (key, pending write), all
        verified, or None. Its entry names them `OUT[KEY]`."""
        entry, source = self._entry(sig)
        out = node.outputs[0]
        if entry is None or not all(n.startswith(out + "[") and n.endswith("]")
                                    for n, _ in entry.outputs):
            return None
        keys = [n[len(out) + 1:-1] for n, _ in entry.outputs]
        pendings = self._materialize(sig, entry, source, [(out, k) for k in keys])
        return None if pendings is None else list(zip(keys, pendings))

    def _materialize(self, sig: str, entry: Entry, source: str,
                     where: list[tuple[str, str | None]]) -> list[Pending] | None:
        """The entry's objects at temporary paths of (dataset, partition key) `where`."""
        cat = self.project.catalog
        pendings = [cat.temp_path(name, key)._replace(digest=digest)
                    for (name, key), (_, digest) in zip(where, entry.outputs)]
        # From the local cache first; what it lacks, brought there from the shared one.
        missing = [p for p in pendings if not self.local.materialize(p.digest, p.tmp)]
        ok = not missing
        if missing and self.shared is not None:
            try:
                ok = self._fetch([p.digest for p in missing]) and all(
                    self.local.materialize(p.digest, p.tmp) for p in missing)
            except CatalogError as e:
                self.warnings.append(str(e))
                ok = False
        if not ok:
            for p in pendings:
                cat.discard(p)
            if source == "local":
                self.project.state.cache_drop(sig)
            return None
        if source == "shared":
            self.project.state.cache_add(sig, list(entry.outputs), [])
        return pendings

    def _fetch(self, digests: list[str]) -> bool:
        """Bring objects from the shared cache into the local one, verified (a folder:
        its list of files, then the files it lacks); False when one is missing or bad."""
        assert self.shared is not None
        files = {d for d in digests if not d.startswith("d:")}
        for d in digests:
            if not d.startswith("d:"):
                continue
            listed = self.local.folder(d)
            if listed is None:  # the folder's list too comes from the shared cache
                data = self.shared.read(d)
                listed = None if data is None else read_folder_object(data, d)
                if listed is None:
                    return False
                self._take(d, data)
            files.update(fd for _, fd in listed)
        files = {d for d in files if not self.local.has(d)}
        incoming = {d: self._incoming(d) for d in files}
        try:
            if incoming and not self.shared.fetch(list(incoming.items())):
                return False
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

    def share_outputs(self, sig: str, outputs: list[tuple[str, str]]) -> None:
        """Upload (name, digest) outputs kept in the local cache, under `sig` (a folder:
        its list of files and the files)."""
        if self.shared is None:
            return
        files = {}
        for _, d in outputs:
            files[d] = str(self.local.path(d))
            if d.startswith("d:"):
                listed = self.local.folder(d)
                if listed is None:
                    return
                files.update((fd, str(self.local.path(fd))) for _, fd in listed)
        if not all(os.path.exists(f) for f in files.values()):
            return
        if self._uploader is None:
            from concurrent.futures import ThreadPoolExecutor

            self._uploader = ThreadPoolExecutor(4, thread_name_prefix="datamake-upload")
        self._uploads.append(self._uploader.submit(self.shared.put, sig, outputs, files))

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
                self.warnings.append(str(e))
            elif e is not None:
                self.warnings.append(f"shared cache: {type(e).__name__}: {e}")
        self._uploader, self._uploads = None, []
