"""Content digests are BLAKE3 (what the caches name and verify objects by); a state
recorded with the older xxh3 digests is started afresh, not refused."""
from __future__ import annotations

import sqlite3

import blake3

from conftest import calls
from datamake.catalog import folder_digest, folder_files, local_digest
from datamake.hashing import HashingWriter, hash_bytes, hash_file, hash_stream, is_digest
from datamake.state import SCHEMA_VERSION
from datamake.versions import parse

PIPE = """
    dataset numbers = "numbers.txt"
    dataset total = "out/total.json"

    python:
        def log(name):
            with open("calls.log", "a") as f:
                f.write(name + "\\n")

    total: numbers
        log("total")
        sum(int(x) for x in numbers.split())
"""


def test_every_content_digest_is_blake3(tmp_path):
    data = b"some bytes\n" * 1000
    want = blake3.blake3(data).hexdigest()
    (tmp_path / "f").write_bytes(data)
    assert hash_bytes(data) == hash_file(str(tmp_path / "f")) == want
    with open(tmp_path / "f", "rb") as f:
        assert hash_stream(f) == want
    with open(tmp_path / "g", "wb") as f:
        w = HashingWriter(f)
        w.write(data[:5])
        w.write(memoryview(data)[5:])
    assert w.hexdigest() == want
    # A folder: `d:` and the BLAKE3 of its list of files.
    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "d" / "sub" / "a.txt").write_bytes(data)
    files = folder_files(str(tmp_path / "d"))
    assert files == [("sub/a.txt", want)]
    listing = blake3.blake3(f"sub/a.txt={want}".encode()).hexdigest()
    assert folder_digest(files) == local_digest(str(tmp_path / "d")) == "d:" + listing


def test_the_digest_grammar_is_exact():
    good = "0123456789abcdef" * 4
    assert is_digest(good) and is_digest("d:" + good)
    for bad in ("", good[:-1], good + "0", good.upper(), "/etc/passwd", "../../x",
                "d:" + good[:-1], "x:" + good, good + "\n", "d:d:" + good, None, 7,
                good[:32], "/" + good[1:]):
        assert not is_digest(bad), bad


def test_versions_of_both_digest_lengths_are_listed():
    new = parse(f"20261126T100405.123Z-{'a' * 64}-{'b' * 16}.json", "u", 1)
    old = parse(f"20251126T100405.123Z-{'c' * 32}-none.json", "u", 1)
    assert new is not None and new.digest == "a" * 64
    assert old is not None and old.digest == "c" * 32


def test_a_state_of_an_older_schema_is_started_afresh(proj):
    # Its records hold xxh3 digests, which cannot be compared with BLAKE3 ones: the
    # build rebuilds what it cannot verify instead of refusing to run.
    proj.write("Datafile", PIPE)
    proj.write("numbers.txt", "1 2 3\n")
    assert proj.built() == ["total"]
    old_object = proj.path(".datamake/cache/objects/" + "0" * 32)
    old_object.write_bytes(b"kept by an older datamake")
    db = sqlite3.connect(proj.path(".datamake/state.db"))
    db.execute("UPDATE meta SET value='3' WHERE key='schema'")
    db.commit()
    db.close()
    assert proj.built() == ["total"]
    assert calls(proj) == ["total", "total"]
    assert not old_object.exists()  # no record can name the old objects any more
    db = sqlite3.connect(proj.path(".datamake/state.db"))
    assert db.execute("SELECT value FROM meta WHERE key='schema'").fetchone() == (
        str(SCHEMA_VERSION),)
    assert db.execute("SELECT COUNT(*) FROM runs").fetchone() == (2,)  # history kept
    db.close()
    assert proj.built() == []
