"""Digests: BLAKE3 for content, xxh3 for names.

Every digest of *content* (a file, bytes, a stream, what `HashingWriter` sees, a
folder's list of files) is a BLAKE3-256 in 64 lowercase hex characters: the local and
the shared cache name and verify objects by it, so it must be a cryptographic hash (no
one can write other bytes under a digest someone else's step recorded). A folder's
digest is `d:` and the BLAKE3 of its list of (path, file digest).

Code fingerprints and step signatures (`hash_text`, `hash_parts`) are xxh3-128: they
hash names, source text and the content digests above, never bytes a cache serves,
and they are computed for every step of a no-op build, where xxh3's speed shows. A
cache entry's link from a signature to its outputs is authenticated by the team key
(see `cache.py`), not by the signature's hash.
"""
from __future__ import annotations

import os
import stat
import re

import xxhash

# blake3 is imported where it is used: a no-op build hashes no content (stamps match),
# and its import is a millisecond.

_CHUNK = 1 << 20
_SMALL = 8 << 20  # read whole: one allocation of the file's size

# What a content digest looks like, exactly: anything else read from a cache is refused.
_DIGEST = re.compile(r"(?:d:)?[0-9a-f]{64}")


def is_digest(text: object) -> bool:
    """Whether `text` is a content digest: 64 lowercase hex characters, or `d:` and
    64 (a folder's)."""
    return isinstance(text, str) and _DIGEST.fullmatch(text) is not None


def hash_text(text: str) -> str:
    """xxh3 of a string (UTF-8): for names and source text, not content."""
    return xxhash.xxh3_128_hexdigest(text.encode("utf-8", "surrogatepass"))


def hash_parts(*parts: str) -> str:
    """xxh3 of a sequence of strings (unambiguous: parts are separated by NUL): for
    fingerprints and signatures, not content."""
    return xxhash.xxh3_128_hexdigest("\0".join(parts).encode("utf-8", "surrogatepass"))


def hash_bytes(data: bytes) -> str:
    """Content digest of bytes."""
    from blake3 import blake3

    return blake3(data).hexdigest()


def hash_listing(*parts: str) -> str:
    """Content digest of a list of strings (a folder's files and their digests),
    separated by NUL."""
    from blake3 import blake3

    return blake3("\0".join(parts).encode("utf-8", "surrogatepass")).hexdigest()


class NotAFileError(OSError):
    """A path that is neither a file nor a folder (a device, a pipe, a socket): its
    "content" may never end, so datamake never reads it."""


def hash_file(path: str) -> str:
    """Content digest of a local file (small files in one read, big ones in chunks).

    Plain `os` calls: `open(path, "rb").read()` costs three `fstat`s and an `lseek` more
    per file, which shows when a build hashes thousands of small inputs."""
    from blake3 import blake3

    # Non-blocking: a named pipe must not wait here for a writer (it is refused below).
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0))
    try:
        st = os.fstat(fd)
        if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
            raise NotAFileError(path)
        size = st.st_size
        if size <= _SMALL:
            data = os.read(fd, size + 1)
            more = os.read(fd, _CHUNK) if data else b""
            if not more:
                return blake3(data).hexdigest()
            h = blake3(data)  # it grew while being read: take all of it
            h.update(more)
        else:
            h = blake3()
        while True:
            chunk = os.read(fd, _CHUNK)
            if not chunk:
                break
            h.update(chunk)
    finally:
        os.close(fd)
    return h.hexdigest()


def hash_stream(f) -> str:
    """Content digest of an open binary file object, read to its end."""
    from blake3 import blake3

    h = blake3()
    while True:
        chunk = f.read(_CHUNK)
        if not chunk:
            break
        h.update(chunk)
    return h.hexdigest()


class HashingWriter:
    """A binary file's `write`, hashing (content digest) what passes through it."""

    def __init__(self, f):
        from blake3 import blake3

        self._f = f
        self._h = blake3()

    def write(self, data) -> int:
        view = memoryview(data).cast("B")  # as bytes: BLAKE3 takes no typed buffer
        self._h.update(view)
        done = self._f.write(view)
        while done is not None and done < len(view):  # a raw file may take less
            done += self._f.write(view[done:])
        return len(view)

    def writable(self) -> bool:
        return True

    def flush(self) -> None:
        self._f.flush()

    def hexdigest(self) -> str:
        return self._h.hexdigest()
