"""Where datasets live and how they are read and written: the only user of fsspec.

Local paths go straight to `os` (a stat costs microseconds; fsspec's local layer adds
more than the check itself). Every write is atomic: the value is saved to a temporary
file on the same filesystem and renamed into place only once complete, so a reader
never sees half a file and a failed recipe leaves the previous version in place.

Its length (over 500 lines) is its one job: every way a dataset is stored and found, local
and remote, with storage errors said plainly; it stays the only user of fsspec.
"""
from __future__ import annotations

import contextlib
import itertools
import os
import re
import time
from stat import S_ISDIR, S_ISREG
from pathlib import Path
from collections.abc import Mapping
from typing import Any, NamedTuple

from . import formats
from .errors import CatalogError
from .formats import FormatError
from . import locations
from .graph import DatasetInfo
from .hashing import (HashingWriter, NotAFileError, hash_file, hash_listing, hash_parts,
                      hash_stream)

TMP_DIR = ".datamake/tmp"
_RAISE = object()  # `_remote`'s default: a missing object raises FileNotFoundError


class _Box:
    """What a `_remote` block got (or its stand-in for a missing object)."""

    value: Any = None


class Location(NamedTuple):
    """A dataset resolved: absolute local path or fsspec URL, and its format."""

    name: str
    url: str
    local: bool
    format: str
    options: dict[str, Any]
    compression: str | None = None  # from a last extension `.gz`, `.bz2` or `.xz`


class Pending(NamedTuple):
    """A value written to a temporary place, not yet visible at its location."""

    name: str
    tmp: str
    final: str
    local: bool
    digest: str


def local_stamp(path: str) -> str | None:
    """A cheap change token for a local file or folder: mtime, size and inode."""
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    if not S_ISDIR(st.st_mode):
        return f"{st.st_mtime_ns}:{st.st_size}:{st.st_ino}"
    parts = []
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames.sort()
        for fn in sorted(filenames):
            p = os.path.join(dirpath, fn)
            try:
                s = os.stat(p)
            except OSError:
                continue
            parts.append(f"{os.path.relpath(p, path)}:{s.st_mtime_ns}:{s.st_size}:{s.st_ino}")
    return "d:" + hash_parts(*parts)


# Stamps younger than this are not trusted: a file rewritten within one timestamp tick
# of being checked could keep its mtime and size (git's "racily clean" problem).
RACY_NS = 20_000_000


def stable(stamp: str | None) -> str:
    """The stamp to remember: '' (unknown, so the next check hashes) when it is too
    young to be trusted."""
    if not stamp or stamp.startswith(("d:", "r:")):
        return stamp or ""
    try:
        mtime = int(stamp.split(":", 1)[0])
    except ValueError:
        return stamp
    return "" if time.time_ns() - mtime < RACY_NS else stamp


def local_digest(path: str) -> str:
    """The content digest of a local file, or of a folder's files and their names."""
    try:
        return hash_file(path)  # a file, nearly always: no stat to ask first
    except IsADirectoryError:
        pass
    return folder_digest(folder_files(path))


def folder_files(path: str) -> list[tuple[str, str]]:
    """(path inside the folder, content digest) of each file under a folder, in a
    fixed order (empty folders are not part of it)."""
    out = []
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames.sort()
        for fn in sorted(filenames):
            p = os.path.join(dirpath, fn)
            out.append((os.path.relpath(p, path), hash_file(p)))
    return out


def folder_digest(files: list[tuple[str, str]]) -> str:
    """A folder's digest from its `folder_files`: `d:` and the content digest of its
    names and their digests."""
    return "d:" + hash_listing(*(f"{rel}={digest}" for rel, digest in files))


class Catalog:
    """Datasets by name: locations, stamps, digests, loading and atomic saving."""

    def __init__(self, root: Path, datasets: Mapping[str, DatasetInfo],
                 env: Mapping[str, str] | None = None,
                 resolved: Mapping[str, Location] | None = None):
        self.root = Path(root)
        self.datasets = datasets
        self.env = os.environ if env is None else env
        self._root = str(self.root)
        self._plain: dict[str, Location] = dict(resolved or {})
        self._listings: dict[str, dict[str, str]] = {}
        self._paths: dict[str, dict[str, str]] = {}
        self._shared_prefixes: set[str] | None = None
        self._prefixes: dict[str, dict[str, dict]] = {}  # remote prefix -> name -> info
        self._templates: dict[str, tuple[Location, list[str], list[str]]] = {}
        self._keyed: dict[tuple[str, str], Location] = {}  # (name, key) -> location
        self._formats: dict[str, str] = {}
        self._fs: dict[str, Any] = {}
        self._tmp_dev: int | None = None
        self._parents: dict[str, bool] = {}  # folder -> on the temp folder's filesystem
        self._counter = itertools.count()

    # -- locations ----------------------------------------------------------------

    def location(self, name: str, key: str | None = None) -> Location:
        """Where dataset `name` (partition `key`) lives. Raises CatalogError."""
        if key is None:
            loc = self._plain.get(name)
            if loc is None:
                loc = self._plain[name] = self._resolve(name)
            return loc
        # A partition: the dataset's resolved location with the key's parts filled in.
        loc = self._keyed.get((name, key))
        if loc is not None:
            return loc
        tmpl = self._templates.get(name)
        if tmpl is None:
            tmpl = self._templates[name] = self._template(name)
        base, pieces, names = tmpl
        url = locations.fill(pieces, names, key)
        if url is None:
            raise CatalogError(f"`{key}` is not a partition key of `{name}`",
                               help=f"its location has {len(names)} placeholder(s); a key "
                                    f"has as many non-empty parts, joined by `/`")
        loc = self._keyed[(name, key)] = base._replace(url=url)
        return loc

    def _template(self, name: str) -> tuple[Location, list[str], list[str]]:
        base = self._resolve(name)
        return (base, *locations.template(base.url))

    def _resolve(self, name: str) -> Location:
        info = self.datasets.get(name)
        if info is None:
            raise CatalogError(f"`{name}` is not a dataset")
        raw = info.location
        if "${" in raw:
            try:
                raw = locations.expand_env(raw, self.env)
            except KeyError as e:
                raise CatalogError(f"dataset `{name}`: environment variable `{e.args[0]}` is not set",
                                   help=f"set it, e.g. `export {e.args[0]}=...`") from None
            problem = locations.problem(raw)  # what the environment made of it
            if problem is not None:
                raise CatalogError(f"dataset `{name}` at `{info.location}`: {problem[0]}",
                                   help=f"check the environment variables it names; {problem[1]}")
        url, local = locations.resolve(raw, self._root)
        ext, compression = formats.split_extension(raw)
        fmt = info.format or formats.for_extension(ext)
        if fmt == formats.PATH:
            compression = None  # the recipe writes the file itself, as it likes
        if fmt != formats.PATH and fmt not in formats.BUILTIN:
            try:
                formats.get(fmt)
            except FormatError as e:
                raise CatalogError(f"dataset `{name}`: {e}",
                                   help="known formats: " + ", ".join(formats.known())) from None
        options = dict(info.options) if info.options else {}
        if fmt == "image":
            options.setdefault("ext", ext)
        return Location(name, url, local, fmt, options, compression)

    def path_of(self, name: str, key: str | None = None) -> str:
        """The URL of a dataset or partition (from its listing when there is one)."""
        if key is not None:
            paths = self._paths.get(name)
            if paths is not None:
                path = paths.get(key)
                if path is not None:
                    return path
        return self.location(name, key).url

    def format_of(self, name: str) -> str:
        """The format of a dataset (the same for all its partitions)."""
        fmt = self._formats.get(name)
        if fmt is None:
            fmt = self._formats[name] = self._resolve(name).format
        return fmt

    def is_partitioned(self, name: str) -> bool:
        info = self.datasets.get(name)
        return bool(info and info.placeholders)

    def partitions(self, name: str) -> dict[str, str]:
        """key -> stamp of every stored partition of `name`, from one listing of the
        folder (or object prefix) above its first placeholder."""
        listed = self._listings.get(name)
        if listed is not None:
            return listed
        info = self.datasets[name]
        raw = info.location
        if "${" in raw:
            raw = locations.expand_env(raw, self.env)
        raw, local = locations.resolve(raw, self._root)
        base, rest = locations.listing_base(raw)
        pattern = re.compile(locations.pattern_regex(rest) + r"\Z")
        names = list(dict.fromkeys(locations.placeholders(rest)))
        folders = info.format == formats.PATH
        found: dict[str, str] = {}
        paths: dict[str, str] = {}
        single = len(names) == 1
        if local and "/" not in rest and single and not folders:
            # The common case, one folder of files: a tight loop over one scandir.
            match = pattern.match
            group = names[0]
            # `{key}.ext` and the like: prefix and suffix tests instead of a regex.
            one = locations.PLACEHOLDER.fullmatch(rest[rest.find("{"):rest.find("}") + 1])
            simple = rest.count("{") == 1 and one is not None
            pre = rest[:rest.find("{")] if simple else ""
            suf = rest[rest.find("}") + 1:] if simple else ""
            cut = len(suf)
            try:
                it = os.scandir(base)
            except (FileNotFoundError, NotADirectoryError):
                it = None
            except OSError as e:
                raise _unlistable(base, e) from None
            if it is not None:
                with it:
                    for e in it:
                        fname = e.name
                        if fname[0] == "." or ".datamake-tmp-" in fname:
                            continue
                        if simple:
                            if not (fname.startswith(pre) and fname.endswith(suf)) or \
                                    len(fname) <= len(pre) + cut or "/" in fname:
                                continue
                            key = fname[len(pre):len(fname) - cut] if cut else fname[len(pre):]
                        else:
                            m = match(fname)
                            if m is None:
                                continue
                            key = m.group(group)
                        try:
                            st = e.stat()
                        except OSError:  # gone, or a link to nowhere (or to itself)
                            continue
                        if S_ISDIR(st.st_mode):
                            continue
                        found[key] = f"{st.st_mtime_ns}:{st.st_size}:{st.st_ino}"
                        paths[key] = base + fname
        elif local:
            for rel, st in _walk(base, rest.count("/"), folders):
                m = pattern.match(rel)
                if m and ".datamake-tmp-" not in rel:
                    key = m.group(names[0]) if single else "/".join(m.group(n) for n in names)
                    found[key] = f"{st.st_mtime_ns}:{st.st_size}:{st.st_ino}"
                    paths[key] = base + rel
        else:
            fs = self.fs(raw)
            proto = raw.split("://", 1)[0]
            bare = raw.split("://", 1)[1]
            bare_base = bare[: len(base) - len(proto) - 3]
            with self._remote(Location(name, raw, False, "", {}), missing={}) as got:
                got.value = fs.find(bare_base, detail=True, withdirs=folders)
            entries = got.value
            for path, inf in entries.items():
                rel = path[len(bare_base):] if path.startswith(bare_base) else None
                m = pattern.match(rel) if rel is not None else None
                if m:
                    key = "/".join(m.group(n) for n in names)
                    found[key] = _remote_stamp(inf)
                    paths[key] = f"{proto}://{path}"
        self._listings[name] = found
        self._paths[name] = paths
        return found

    def remove(self, name: str, key: str | None = None) -> None:
        """Delete a stored dataset or partition (its rule no longer produces it)."""
        import shutil

        loc = self.location(name, key)
        try:
            if loc.local:
                # A symbolic link (a partition folder moved to another disk, say) is
                # removed itself: what it points to is never followed nor deleted.
                if os.path.isdir(loc.url) and not os.path.islink(loc.url):
                    shutil.rmtree(loc.url)
                else:
                    os.unlink(loc.url)
            else:
                with self._remote(loc):
                    self.fs(loc.url).rm(loc.url, recursive=True)
        except FileNotFoundError:
            pass
        except OSError as e:
            if not loc.local:
                raise self._storage_error(loc, e) from None
            raise CatalogError(f"cannot remove `{self.shown(loc)}`: {e.strerror or e}",
                               help="remove it yourself, or make it writable") from None
        listed = self._listings.get(name)
        if listed is not None and key is not None:
            listed.pop(key, None)
            self._paths[name].pop(key, None)

    # -- versions -----------------------------------------------------------------

    def _versions_dir(self, name: str) -> str:
        url = self.location(name).url
        parent, _, base = url.rstrip("/").rpartition("/")
        return f"{parent}/.versions/{base}"

    def versions(self, name: str) -> list:
        """The saved versions of a `versioned` dataset, oldest first (one listing)."""
        from .versions import parse

        folder = self._versions_dir(name)
        loc = self.location(name)
        found = []
        try:
            if loc.local:
                entries = [(e.name, e.path, e.stat().st_size) for e in os.scandir(folder)
                           if e.is_file()]
            else:
                fs = self.fs(folder)
                proto = folder.split("://", 1)[0]
                with self._remote(loc):
                    entries = [(d["name"].rsplit("/", 1)[-1], f"{proto}://{d['name']}",
                                d.get("size")) for d in fs.ls(folder, detail=True, refresh=True)]
        except FileNotFoundError:
            return []
        except OSError as e:
            raise self._storage_error(loc, e) from None
        for fname, url, size in entries:
            v = parse(fname, url, size)
            if v is not None:
                found.append(v)
        return sorted(found, key=lambda v: v.id)

    def save_version(self, name: str, digest: str, sig: str | None):
        """Keep the stored (just committed) value of `name` as a new version, unless the
        latest version holds the same bytes. The new `versions.Version`, or None."""
        from .versions import file_name, new_id, parse

        known = self.versions(name)
        if known and known[-1].digest == digest:
            return None
        loc = self.location(name)
        base = loc.url.rstrip("/").rpartition("/")[2]
        dot = base.rfind(".")
        ext = base[dot:] if dot > 0 else ""
        folder = self._versions_dir(name)
        target = f"{folder}/{file_name(new_id(time.time()), digest, sig, ext)}"
        try:
            if loc.local:
                import shutil

                os.makedirs(folder, exist_ok=True)
                tmp = f"{target}.{os.getpid()}.tmp"
                # A copy, never a hard link: the output may later be edited in place,
                # and a saved version never changes. Read-only, to say so.
                shutil.copyfile(loc.url, tmp)
                os.chmod(tmp, 0o444)
                os.replace(tmp, target)
            else:
                with self._remote(loc):
                    self.fs(loc.url).copy(loc.url, target)
        except OSError as e:
            raise self._storage_error(loc, e) from None
        return parse(target.rpartition("/")[2], target, None)

    # -- files beside a dataset (a report's index and version records) ------------

    def _beside(self, name: str, rel: str) -> tuple[Location, str]:
        loc = self.location(name)
        parent = loc.url.rstrip("/").rpartition("/")[0]
        return loc, f"{parent}/{rel}"

    def write_beside(self, name: str, rel: str, data: bytes) -> None:
        """Write `rel` (a path relative to the folder of dataset `name`) whole: a local
        file through a temporary and a rename, a remote object in one upload. Raises
        CatalogError."""
        loc, url = self._beside(name, rel)
        try:
            if loc.local:
                os.makedirs(os.path.dirname(url), exist_ok=True)
                tmp = f"{url}.{os.getpid()}.tmp"
                with open(tmp, "wb") as f:
                    f.write(data)
                os.replace(tmp, url)
            else:
                with self._remote(loc):
                    self.fs(url).pipe_file(url, data)
        except OSError as e:
            raise self._storage_error(loc, e) from None

    def read_beside(self, name: str, rel: str) -> bytes | None:
        """The bytes of `rel` beside dataset `name`, or None when there is none."""
        loc, url = self._beside(name, rel)
        try:
            return self.read_bytes(url)
        except FileNotFoundError:
            return None
        except OSError as e:
            raise self._storage_error(loc, e) from None

    def listed_beside(self, name: str, rel: str) -> set[str]:
        """The names of the files in folder `rel` beside dataset `name` (none: empty)."""
        loc, url = self._beside(name, rel)
        try:
            if loc.local:
                return {e.name for e in os.scandir(url) if e.is_file()}
            with self._remote(loc):
                return {d.rstrip("/").rsplit("/", 1)[-1]
                        for d in self.fs(url).ls(url, detail=False, refresh=True)}
        except FileNotFoundError:
            return set()
        except OSError as e:
            raise self._storage_error(loc, e) from None

    def load_version(self, name: str, url: str) -> Any:
        """The value of one saved version of `name`, verified (see `read_version`)."""
        import io

        loc = self.location(name)
        if loc.format == formats.PATH:
            return url  # read by the recipe itself
        data = self.read_version(name, url)
        try:
            return formats.codec(loc.format, loc.compression).load(io.BytesIO(data), loc.options)
        except FormatError as e:
            raise CatalogError(f"dataset `{name}` version `{url}`: {e}") from None

    def read_version(self, name: str, url: str) -> bytes:
        """The bytes of a saved version of `name`, checked against the content digest
        its file name records. Raises CatalogError when they differ: a version was
        edited after it was saved, and is never read as if it were that version."""
        from .hashing import hash_bytes
        from .versions import parse

        try:
            data = self.read_bytes(url)
        except FileNotFoundError:
            raise CatalogError(f"version `{url}` of `{name}` is gone") from None
        except OSError as e:
            raise storage_error(f"version `{url}` of `{name}`", e) from None
        v = parse(url.rstrip("/").rpartition("/")[2], url, None)
        digest = hash_bytes(data)
        # Versions saved by an older datamake name a digest of another length (another
        # hash function): they cannot be checked, and are read as they are.
        if v is not None and len(v.digest) == len(digest) and v.digest != digest:
            raise CatalogError(f"version {v.id} of `{name}` was changed after it was saved "
                               f"(its content no longer matches its digest)",
                               help=f"restore it from a backup, or delete `{url}` to drop it "
                                    f"from the history")
        return data

    def read_bytes(self, url: str) -> bytes:
        if "://" not in url:
            with open(url, "rb") as f:
                return f.read()
        with self._remote(Location("", url, False, "", {})):
            return self.fs(url).cat_file(url)

    def fs(self, url: str):
        """The fsspec filesystem for a URL (imported on first use)."""
        protocol = url.split("://", 1)[0]
        fs = self._fs.get(protocol)
        if fs is None:
            fs = self._fs[protocol] = open_filesystem(url)
        return fs

    # -- checking -------------------------------------------------------------------

    def stamp(self, name: str, key: str | None = None) -> str | None:
        """A change token for the stored dataset, or None when it does not exist."""
        if key is not None:
            listed = self._listings.get(name)
            if listed is None and self.is_partitioned(name):
                listed = self.partitions(name)
            if listed is not None:
                return listed.get(key)
        loc = self.location(name, key)
        if loc.local:
            return local_stamp(loc.url)
        info = self._remote_info(loc)
        return None if info is None else _remote_stamp(info)

    def _remote_info(self, loc: Location) -> dict | None:
        """An object's metadata: from one listing of its prefix when several datasets
        live there (one LIST, not one HEAD per object), else from a HEAD."""
        parent, _, _ = loc.url.rpartition("/")
        if self._shared_prefixes is None:
            self._shared_prefixes = self._count_prefixes()
        fs = self.fs(loc.url)
        bare = loc.url.split("://", 1)[1]
        try:
            if parent in self._shared_prefixes:
                listing = self._prefixes.get(parent)
                if listing is None:
                    with self._remote(loc, missing=[]) as got:
                        got.value = fs.ls(parent, detail=True, refresh=True)
                    entries = got.value
                    listing = self._prefixes[parent] = {e["name"]: e for e in entries}
                return listing.get(bare)
            return fs.info(loc.url)
        except FileNotFoundError as e:
            if no_bucket(e):
                raise self._storage_error(loc, e) from None
            return None
        except CatalogError:
            raise
        except Exception as e:
            raise self._storage_error(loc, e) from None

    def _count_prefixes(self) -> set[str]:
        """Remote prefixes holding two or more (whole) datasets: worth one LIST each."""
        seen: dict[str, int] = {}
        for name, info in self.datasets.items():
            if info.placeholders or not locations.is_url(info.location):
                continue
            try:
                url = self.location(name).url
            except CatalogError:
                continue
            parent = url.rpartition("/")[0]
            seen[parent] = seen.get(parent, 0) + 1
        return {p for p, n in seen.items() if n >= 2}

    def digest(self, name: str, key: str | None = None) -> str:
        """The content digest of the stored dataset. Raises CatalogError."""
        loc = self.location(name, key)
        try:
            if loc.local:
                return local_digest(loc.url)
            with self._remote(loc), self.fs(loc.url).open(loc.url, "rb") as f:
                return hash_stream(f)
        except FileNotFoundError:
            raise CatalogError(f"dataset `{name}` does not exist at `{self.shown(loc)}`") from None
        except NotAFileError:
            raise _not_a_file(name, self.shown(loc)) from None
        except OSError as e:
            raise self._storage_error(loc, e) from None

    def exists(self, name: str, key: str | None = None) -> bool:
        return self.stamp(name, key) is not None

    def shown(self, loc: Location) -> str:
        """A location as the user wrote it (relative to the Datafile when local)."""
        if loc.local:
            try:
                return os.path.relpath(loc.url, self.root)
            except ValueError:
                return loc.url
        return loc.url

    # -- reading --------------------------------------------------------------------

    def load(self, name: str, key: str | None = None) -> Any:
        """The value of dataset `name`; a `path` dataset gives its path."""
        loc = self.location(name, key)
        if loc.format == formats.PATH:
            return loc.url
        fmt = formats.codec(loc.format, loc.compression)
        try:
            if loc.local:
                fd = os.open(loc.url, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
                if not S_ISREG(os.fstat(fd).st_mode):
                    os.close(fd)
                    raise _not_a_file(name, self.shown(loc))
                with open(fd, "rb") as f:
                    return fmt.load(f, loc.options)
            with self._remote(loc), self.fs(loc.url).open(loc.url, "rb") as f:
                return fmt.load(f, loc.options)
        except FileNotFoundError:
            raise CatalogError(f"dataset `{name}` does not exist at `{self.shown(loc)}`",
                               help="build the rule that writes it, or check the location") from None
        except FormatError as e:
            raise CatalogError(f"dataset `{name}` at `{self.shown(loc)}`: {e}") from None

    # -- writing --------------------------------------------------------------------

    def _tmp_for(self, final: str) -> str:
        """A fresh temporary path on the same filesystem as `final` (rename is atomic)."""
        parent, _, base = final.rpartition("/")
        same = self._parents.get(parent)
        if same is None:
            tmpdir = os.path.join(self.root, TMP_DIR)
            os.makedirs(parent or "/", exist_ok=True)
            if self._tmp_dev is None:
                os.makedirs(tmpdir, exist_ok=True)
                self._tmp_dev = os.stat(tmpdir).st_dev
            same = self._parents[parent] = os.stat(parent or "/").st_dev == self._tmp_dev
        n = next(self._counter)
        if same:
            return f"{self._root}/{TMP_DIR}/{os.getpid()}-{n}-{base}"
        return f"{parent}/.{base}.datamake-tmp-{os.getpid()}-{n}"

    def temp_path(self, name: str, key: str | None = None) -> Pending:
        """A fresh path for a recipe to write a `path` output to (then `seal` it)."""
        loc = self.location(name, key)
        if loc.local:
            tmp = self._tmp_for(loc.url)
        else:
            os.makedirs(os.path.join(self.root, TMP_DIR), exist_ok=True)
            tmp = os.path.join(self.root, TMP_DIR, f"{os.getpid()}-{next(self._counter)}-{name}")
        return Pending(name, tmp, loc.url, loc.local, "")

    def seal(self, pending: Pending) -> Pending:
        """A written temporary path, with its digest. Raises CatalogError when missing."""
        if not os.path.exists(pending.tmp):
            raise CatalogError(f"the recipe did not write its output `{pending.name}`",
                               help=f"a `path` output must be created at the path bound to "
                                    f"`{pending.name}` in the recipe")
        return pending._replace(digest=local_digest(pending.tmp))

    def write(self, name: str, value: Any, key: str | None = None) -> Pending:
        """Save `value` to a temporary file; `commit` makes it visible. Raises CatalogError."""
        loc = self.location(name, key)
        if loc.format == formats.PATH:
            raise CatalogError(f"`{name}` is a path dataset: the recipe writes it itself")
        pending = self.temp_path(name, key)
        fmt = formats.codec(loc.format, loc.compression)
        digest = None
        try:
            if getattr(fmt, "sequential", False):
                # Unbuffered: a sequential format hands over few, large writes.
                with open(pending.tmp, "wb", buffering=0) as raw:
                    w = HashingWriter(raw)
                    fmt.save(value, w, loc.options)
                    digest = w.hexdigest()
            else:
                with open(pending.tmp, "wb") as f:
                    fmt.save(value, f, loc.options)
        except FormatError as e:
            self.discard(pending)
            raise CatalogError(f"output `{name}` ({loc.format}): {e}") from None
        except BaseException:
            self.discard(pending)
            raise
        name, tmp, final, local, _ = pending
        return Pending(name, tmp, final, local, digest or hash_file(tmp))

    def commit(self, pending: Pending, key: str | None = None) -> str:
        """Move a pending write into place; returns the new stamp."""
        stamp = self._commit(pending)
        if key is not None:
            listed = self._listings.get(pending.name)
            if listed is not None:
                listed[key] = stamp
                self._paths[pending.name][key] = pending.final
        return stamp

    def _commit(self, pending: Pending) -> str:
        import shutil

        if pending.local:
            try:
                os.replace(pending.tmp, pending.final)
            except OSError:
                if not os.path.isdir(pending.final):
                    raise
                # A folder cannot replace a folder in one rename: swap via a third name.
                old = pending.tmp + ".old"
                os.rename(pending.final, old)
                os.rename(pending.tmp, pending.final)
                shutil.rmtree(old, ignore_errors=True)
            return local_stamp(pending.final) or ""
        fs = self.fs(pending.final)
        try:
            # One PUT: the object appears whole or not at all.
            if os.path.isdir(pending.tmp):
                fs.put(pending.tmp, pending.final, recursive=True)
                shutil.rmtree(pending.tmp, ignore_errors=True)
            else:
                fs.put_file(pending.tmp, pending.final)
                os.unlink(pending.tmp)
        except Exception as e:
            raise self._storage_error(self.location(pending.name), e) from None
        fs.invalidate_cache(pending.final.rpartition("/")[0])
        with self._remote(self.location(pending.name)):
            info = fs.info(pending.final)
        parent = pending.final.rpartition("/")[0]
        if parent in self._prefixes:
            self._prefixes[parent][pending.final.split("://", 1)[1]] = info
        return _remote_stamp(info)

    def discard(self, pending: Pending) -> None:
        """Remove a pending write's temporary file or folder."""
        import shutil

        try:
            if os.path.isdir(pending.tmp):
                shutil.rmtree(pending.tmp, ignore_errors=True)
            else:
                os.unlink(pending.tmp)
        except FileNotFoundError:
            pass

    @contextlib.contextmanager
    def _remote(self, loc: Location, missing: Any = _RAISE):
        """Remote storage calls: a failure of the storage (not of a format reading its
        bytes) becomes a CatalogError naming the dataset, never a library's exception;
        a missing object is FileNotFoundError, or `missing` in `.value` when given. A
        missing bucket is an error, never a missing object."""
        box = _Box()
        try:
            yield box
        except CatalogError:
            raise
        except FileNotFoundError as e:
            if no_bucket(e):
                raise self._storage_error(loc, e) from None
            if missing is _RAISE:
                raise
            box.value = missing
        except Exception as e:
            if storage_failure(e):
                raise self._storage_error(loc, e) from None
            raise

    def _storage_error(self, loc: Location, e: Exception) -> CatalogError:
        return storage_error(f"dataset `{loc.name}` at `{loc.url}`", e,
                             endpoint_of(self._fs.get(loc.url.split("://", 1)[0])))


def _walk(base: str, levels: int, folders: bool):
    """(path relative to `base`, stat) of the files (and folders, for `path` datasets)
    under `base`, down to `levels` folders below it (as deep as the pattern reaches, so a
    link that loops is not followed forever): one scandir per folder. Raises
    CatalogError for a folder that cannot be read (its partitions must not look gone)."""
    stack = [("", 0)]
    while stack:
        rel, level = stack.pop()
        where = os.path.join(base, rel) if rel else base
        try:
            it = os.scandir(where)
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as e:
            raise _unlistable(where, e) from None
        with it:
            for e in it:
                name = rel + e.name
                if e.name.startswith("."):
                    continue
                try:
                    is_dir = e.is_dir()
                    if is_dir and folders:
                        yield name, e.stat()
                    if is_dir:
                        if level < levels:
                            stack.append((name + "/", level + 1))
                    else:
                        yield name, e.stat()
                except OSError:  # gone, or a link to nowhere (or to itself)
                    continue


def _unlistable(folder: str, e: OSError) -> CatalogError:
    return CatalogError(f"cannot list the partitions in `{folder}`: {e.strerror or e}",
                        help="make the folder readable; until then its partitions cannot "
                             "be told from missing ones")


def _remote_stamp(info: dict) -> str:
    """An object's change token: ETag, size and modification time (never its bytes)."""
    token = str(info.get("ETag") or info.get("etag") or info.get("md5") or "").strip('"')
    when = info.get("LastModified") or info.get("mtime") or info.get("created") or ""
    if hasattr(when, "timestamp"):
        when = f"{when.timestamp():.3f}"
    return f"r:{token}:{info.get('size', info.get('Size'))}:{when}"


def same_content(old: str, new: str) -> bool:
    """Whether two remote stamps name the same bytes without reading them: an ETag is
    the MD5 of the content for a single-part upload (multipart ETags contain a `-` and
    depend on the part size, so they prove nothing)."""
    if not (old.startswith("r:") and new.startswith("r:")):
        return False
    o, n = old.split(":"), new.split(":")
    return len(o) > 2 and len(n) > 2 and o[1] == n[1] and o[2] == n[2] and o[1] != "" \
        and "-" not in o[1]


# Storage timeouts and retries, for every remote filesystem datamake opens (datasets and
# the shared cache alike): without them an endpoint that accepts connections and never
# answers holds a build for minutes (s3fs's own retries times botocore's).
STORAGE_SETTINGS = {  # environment variable -> default
    "DATAMAKE_STORAGE_CONNECT_TIMEOUT": 5.0,  # seconds to open a connection
    "DATAMAKE_STORAGE_READ_TIMEOUT": 15.0,  # seconds to wait for any bytes of an answer
    "DATAMAKE_STORAGE_RETRIES": 2,  # retries of a failed request, after the first try
}


def storage_setting(name: str, env: Mapping[str, str] | None = None) -> float:
    """A storage timeout or retry count from the environment (its default when unset or
    not a number >= 0)."""
    default = STORAGE_SETTINGS[name]
    raw = (os.environ if env is None else env).get(name)
    try:
        value = float(raw) if raw else default
    except ValueError:
        return default
    if not value >= 0 or (isinstance(default, int) and value != int(value)):
        return default
    return type(default)(value)


def storage_options(protocol: str, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """What a filesystem of `protocol` is opened with: the timeouts and retries above."""
    if protocol not in ("s3", "s3a"):
        return {}
    return {"config_kwargs": {
        "connect_timeout": storage_setting("DATAMAKE_STORAGE_CONNECT_TIMEOUT", env),
        "read_timeout": storage_setting("DATAMAKE_STORAGE_READ_TIMEOUT", env),
        # botocore's standard mode retries throttling, server errors, timeouts and
        # refused connections, with backoff: the one place a request is retried.
        "retries": {"total_max_attempts": int(storage_setting("DATAMAKE_STORAGE_RETRIES",
                                                              env)) + 1,
                    "mode": "standard"}}}


def open_filesystem(url: str):
    """The fsspec filesystem for a URL or a local path, with timeouts and bounded
    retries for remote storage: the one place datamake opens a filesystem."""
    import fsspec

    protocol = url.split("://", 1)[0] if locations.is_url(url) else "file"
    if protocol in ("s3", "s3a"):
        from .extras import require

        require("s3fs", f"an `{protocol}://` location")
    fs = fsspec.filesystem(protocol, **storage_options(protocol))
    if protocol in ("s3", "s3a"):
        fs.retries = 1  # s3fs's own loop would multiply botocore's attempts: one try
    return fs


def endpoint_of(fs: Any) -> str | None:
    """The endpoint URL an S3 filesystem talks to, when it has one (None for others)."""
    if fs is None or not hasattr(fs, "client_kwargs"):
        return None
    client = getattr(fs, "_s3", None)
    url = getattr(getattr(client, "meta", None), "endpoint_url", None)
    return (url or getattr(fs, "endpoint_url", None) or fs.client_kwargs.get("endpoint_url")
            or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL"))


_TIMEOUTS = {"ReadTimeoutError", "ConnectTimeoutError", "TimeoutError", "FSTimeoutError",
             "ServerTimeoutError", "Timeout"}
_UNREACHABLE = {"EndpointConnectionError", "ClientConnectorError", "ClientOSError",
                "ServerDisconnectedError", "ConnectionClosedError", "ClientConnectionError",
                "ConnectionError", "ConnectionRefusedError", "ConnectionResetError",
                "ProxyConnectionError", "gaierror"} | _TIMEOUTS


_STORAGE = _UNREACHABLE | {"BotoCoreError", "ClientError", "ClientResponseError",
                           "ClientPayloadError", "IncompleteRead", "ResponseStreamingError"}


def no_bucket(e: BaseException) -> bool:
    """Whether a FileNotFoundError is S3 saying the bucket itself does not exist."""
    low = str(e).lower()
    return "bucket" in low and ("not exist" in low or "nosuchbucket" in low)


def storage_failure(e: BaseException) -> bool:
    """Whether an exception is the storage failing (network, service, permissions),
    not a missing object or a format's complaint about bytes it read."""
    if isinstance(e, FileNotFoundError):
        return no_bucket(e)
    if isinstance(e, (PermissionError, ConnectionError, TimeoutError)):
        return True
    return bool({c.__name__ for x in _chain(e) for c in type(x).__mro__} & _STORAGE)


def _chain(e: BaseException) -> list[BaseException]:
    """An exception and its causes (what s3fs and aiobotocore wrap)."""
    out: list[BaseException] = []
    cur: BaseException | None = e
    while cur is not None and cur not in out and len(out) < 10:
        out.append(cur)
        cur = cur.__cause__ or cur.__context__
    return out


# A refusal as S3 says it. The status code is a word of its own: a port such as
# 127.0.0.1:40312 in a "could not connect" message is not a refusal.
_DENIED = re.compile(r"InvalidAccessKeyId|SignatureDoesNotMatch|AccessDenied|Forbidden|"
                     r"(?<![\w:./-])403(?![\w.:])")


def storage_error(what: str, e: Exception, endpoint: str | None = None) -> CatalogError:
    """A storage failure said plainly: missing bucket, refused credentials, no endpoint
    (which one), never a library's raw text."""
    chain = _chain(e)
    names = {c.__name__ for x in chain for c in type(x).__mro__}
    for x in chain:
        kw = getattr(x, "kwargs", None)
        if isinstance(kw, dict) and isinstance(kw.get("endpoint_url"), str):
            endpoint = kw["endpoint_url"]  # the request's URL: its scheme and host are it
            break
    if endpoint:
        from urllib.parse import urlsplit

        parts = urlsplit(endpoint)
        endpoint = f"{parts.scheme}://{parts.netloc}" if parts.netloc else endpoint
    text = str(e)
    low = " ".join(str(x) for x in chain).lower()
    at = f" {endpoint}" if endpoint else ""
    waits = ("the waits are DATAMAKE_STORAGE_CONNECT_TIMEOUT, DATAMAKE_STORAGE_READ_TIMEOUT "
             "(seconds) and DATAMAKE_STORAGE_RETRIES")
    if any(no_bucket(x) for x in chain):
        msg, hint = "the bucket does not exist", "create it, or fix the location"
    elif names & {"NoCredentialsError", "PartialCredentialsError"} or \
            "unable to locate credentials" in low:
        msg, hint = "no credentials", "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)"
    elif _DENIED.search(" ".join(str(x) for x in chain)) or isinstance(e, PermissionError):
        msg, hint = "access denied", "check the credentials (AWS_* variables) and the bucket's policy"
    elif names & _TIMEOUTS:
        msg = f"cannot reach the storage endpoint{at}: it did not answer in time"
        hint = f"check AWS_ENDPOINT_URL and the network; {waits}"
    elif names & _UNREACHABLE or "connect" in low:
        msg = f"cannot reach the storage endpoint{at}"
        hint = f"check AWS_ENDPOINT_URL and the network; {waits}"
    else:
        kind = type(e).__name__
        detail = " ".join(text.split())
        detail = detail if len(detail) <= 200 else detail[:197] + "..."
        msg, hint = f"{kind}: {detail}", ("check the location, the credentials (AWS_* "
                                          "variables) and the endpoint (AWS_ENDPOINT_URL)")
    return CatalogError(f"{what}: {msg}", help=hint)


def clean_temps(root: Path) -> None:
    """Remove temporary files that a killed run left in `.datamake/tmp` (call under lock)."""
    import shutil

    tmpdir = os.path.join(root, TMP_DIR)
    try:
        entries = os.listdir(tmpdir)
    except FileNotFoundError:
        return
    for e in entries:
        p = os.path.join(tmpdir, e)
        if os.path.isdir(p):
            shutil.rmtree(p, ignore_errors=True)
        else:
            try:
                os.unlink(p)
            except OSError:
                pass


class PartitionMap(Mapping):
    """A partitioned dataset as a read-only mapping `key -> value` that loads one
    partition at a time, so the whole never has to fit in memory.

    Iteration is in key order; `len`, `in` and `.keys()` read no data.
    """

    def __init__(self, catalog: Catalog, name: str, keys):
        self._catalog = catalog
        self._name = name
        self._keys = sorted(keys)
        self._set = frozenset(self._keys)

    def __getitem__(self, key: str) -> Any:
        if key not in self._set:
            raise KeyError(key)
        return self._catalog.load(self._name, key)

    def __iter__(self):
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key: object) -> bool:
        return key in self._set

    def __repr__(self) -> str:
        return f"<{len(self._keys)} partitions of {self._name}>"


def _not_a_file(name: str, shown: str) -> CatalogError:
    return CatalogError(f"dataset `{name}` at `{shown}` is not a file (a device, a pipe or "
                        f"a socket): datamake reads only files and folders",
                        help="point the dataset at a file or a folder")
