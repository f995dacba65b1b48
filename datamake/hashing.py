"""Content digests: xxh3-128 in hex, for text, bytes and files."""
from __future__ import annotations

import os

import xxhash

_CHUNK = 1 << 20
_SMALL = 8 << 20  # read whole: one allocation of the file's size


def hash_text(text: str) -> str:
    """Digest of a string (UTF-8)."""
    return xxhash.xxh3_128_hexdigest(text.encode("utf-8", "surrogatepass"))


def hash_bytes(data: bytes) -> str:
    """Digest of bytes."""
    return xxhash.xxh3_128_hexdigest(data)


def hash_parts(*parts: str) -> str:
    """Digest of a sequence of strings (unambiguous: parts are separated by NUL)."""
    return xxhash.xxh3_128_hexdigest("\0".join(parts).encode("utf-8", "surrogatepass"))


def hash_file(path: str) -> str:
    """Digest of a local file's content (small files in one read, big ones in chunks).

    Plain `os` calls: `open(path, "rb").read()` costs three `fstat`s and an `lseek` more
    per file, which shows when a build hashes thousands of small inputs."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        size = os.fstat(fd).st_size
        if size <= _SMALL:
            data = os.read(fd, size + 1)
            more = os.read(fd, _CHUNK) if data else b""
            if not more:
                return xxhash.xxh3_128_hexdigest(data)
            h = xxhash.xxh3_128(data)  # it grew while being read: take all of it
            h.update(more)
        else:
            h = xxhash.xxh3_128()
        while True:
            chunk = os.read(fd, _CHUNK)
            if not chunk:
                break
            h.update(chunk)
    finally:
        os.close(fd)
    return h.hexdigest()


def hash_stream(f) -> str:
    """Digest of an open binary file object, read to its end."""
    h = xxhash.xxh3_128()
    while True:
        chunk = f.read(_CHUNK)
        if not chunk:
            break
        h.update(chunk)
    return h.hexdigest()


class HashingWriter:
    """A binary file's `write`, hashing what passes through it."""

    def __init__(self, f):
        self._f = f
        self._h = xxhash.xxh3_128()

    def write(self, data) -> int:
        self._h.update(data)
        view = memoryview(data).cast("B")
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
