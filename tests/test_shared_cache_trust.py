"""What a shared cache may do to a teammate's build: nothing but save it time.

The attacks are real: whoever can write to the cache (a folder, or a bucket on a real
S3 server, moto's) plants entries and objects as datamake lays them out, and the next
build must neither delete a file an entry names, nor run code an object holds, nor use
an entry the team key does not authenticate. Every test runs against both kinds of
shared cache.

(Named to run after test_parser.py: the S3 server's thread, once started, stays for the
session, and the parser forks only in a process with one thread.)"""
from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest

from conftest import Proj, calls, clean_env
from datamake.cache import entry_mac, folder_object, read_folder_object, Corrupt, Invalid
from datamake.catalog import folder_digest
from datamake.hashing import hash_bytes

KEY = "the team's secret"

PIPE = """
    cache "{url}"
    dataset numbers = "numbers.txt"
    dataset total = "out/total.json"

    python:
        def log(name):
            with open("calls.log", "a") as f:
                f.write(name + "\\n")

    total: parsed
        log("total")
        {{"total": sum(parsed)}}

    ## `parsed` is declared nowhere: kept as a pickle, as undeclared outputs are.
    parsed: numbers
        log("parsed")
        [int(x) for x in numbers.split()]
"""


class Folder:
    """A shared cache in a plain folder (a network share)."""

    def __init__(self, root: Path):
        self.root = root
        self.url = str(root)

    def keys(self, prefix: str = "") -> list[str]:
        if not self.root.exists():
            return []
        return sorted(str(p.relative_to(self.root)) for p in self.root.rglob("*")
                      if p.is_file() and str(p.relative_to(self.root)).startswith(prefix))

    def get(self, key: str) -> bytes:
        return (self.root / key).read_bytes()

    def put(self, key: str, data: bytes) -> None:
        (self.root / key).parent.mkdir(parents=True, exist_ok=True)
        (self.root / key).write_bytes(data)


class Bucket:
    """A shared cache under a prefix of a bucket on the S3 server."""

    def __init__(self, s3):
        self.s3 = s3
        self.url = s3.url("team-cache")

    def keys(self, prefix: str = "") -> list[str]:
        return [k[len("team-cache/"):] for k in self.s3.keys("team-cache/" + prefix)]

    def get(self, key: str) -> bytes:
        return self.s3.get("team-cache/" + key)

    def put(self, key: str, data: bytes) -> None:
        self.s3.put("team-cache/" + key, data)


@pytest.fixture(params=["folder", "s3"])
def cache(request, tmp_path):
    if request.param == "folder":
        return Folder(tmp_path / "shared")
    return Bucket(request.getfixturevalue("s3"))


def member(tmp_path: Path, name: str, cache, numbers: str = "1 2 3\n",
           datafile: str = PIPE) -> Proj:
    p = Proj(tmp_path / name)
    p.root.mkdir()
    p.write("Datafile", datafile.format(url=cache.url))
    p.write("numbers.txt", numbers)
    return p


def build(p: Proj, *args: str, **env: str) -> tuple[dict, str]:
    """A build that must succeed: its JSON document and its stderr."""
    r = p.run("--json", *args, env=clean_env(**env))
    assert r.code == 0, r.err
    assert "Traceback" not in r.err
    return r.json, r.err


def entry_of(cache, output: str) -> str:
    """The key of the entry whose first output is `output`."""
    for k in cache.keys("steps/"):
        if json.loads(cache.get(k))["outputs"][0][0] == output:
            return k
    raise AssertionError(f"no entry for {output}")


def sig_of(key: str) -> str:
    return key.rsplit("/", 1)[1].removesuffix(".json")


class Evil:
    """Unpickling it writes a marker file: what an attacker's pickle would do."""

    marker = ""

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('pwned')",))


def plant_pickle(cache, marker: Path) -> str:
    """An attacker's pickle in the cache under its own, correct, digest."""
    Evil.marker = str(marker)
    data = pickle.dumps(Evil())
    digest = hash_bytes(data)
    cache.put(f"objects/{digest[:2]}/{digest}", data)
    return digest


def test_an_entry_naming_a_path_deletes_nothing(tmp_path, cache):
    # The digests of an entry are used to name object files: a path in their place must
    # never reach the filesystem (it used to be unlinked as a "corrupt object").
    alice = member(tmp_path, "alice", cache)
    assert build(alice)[0]["built"] == ["parsed", "total"]
    bob = member(tmp_path, "bob", cache)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    key = entry_of(cache, "total")
    for digest in (str(victim), "../../x", "../../../victim.txt"):
        shutil_rm(bob.path(".datamake"))
        near = bob.write(".datamake/x", "also precious")  # objects/../../x from Bob's
        cache.put(key, json.dumps({"outputs": [["total", digest]]}).encode())
        r = bob.run("--json")
        assert victim.read_text() == "precious" and near.read_text() == "also precious"
        assert r.code == 0 and "Traceback" not in r.err, r.err
        doc, err = r.json, r.err
        assert doc["built"] == ["parsed", "total"] and doc["cached"] == []
        assert (f"warning: shared cache `{cache.url}`: entry `{key}` of `total` is refused: "
                f"output 'total' names '{digest}', which is not a content digest; the "
                f"step runs") in err
        assert json.loads(bob.read("out/total.json")) == {"total": 6}


def test_an_entry_with_wrong_names_or_keys_is_refused(tmp_path, cache):
    alice = member(tmp_path, "alice", cache)
    build(alice)
    bob = member(tmp_path, "bob", cache)
    key = entry_of(cache, "total")
    good = json.loads(cache.get(key))["outputs"][0][1]
    for outputs, why in [
        ([["other", good]], "it names the outputs ['other'], not the step's ['total']"),
        ([["total", good], ["total", good]], "it names the outputs ['total', 'total']"),
        ([["total", "d:" + "0" * 63]], "which is not a content digest"),
        ("nonsense", "its outputs are not a list"),
    ]:
        cache.put(key, json.dumps({"outputs": outputs}).encode())
        shutil_rm(bob.path(".datamake"))
        doc, err = build(bob)
        assert doc["built"] == ["parsed", "total"], outputs
        assert why in err and f"entry `{key}` of `total` is refused" in err


def shutil_rm(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


YIELDING = """
    cache "{url}"
    dataset numbers = "numbers.txt"
    dataset emb = "emb/{{chunk}}.json"

    emb: numbers
        for i in range(3):
            yield f"c{{i}}", {{"i": i}}
"""


def test_a_yielding_entry_with_a_key_that_is_a_path_is_refused(tmp_path, cache):
    alice = member(tmp_path, "alice", cache, datafile=YIELDING)
    assert build(alice)[0]["built"] == ["emb"]
    bob = member(tmp_path, "bob", cache, datafile=YIELDING)
    key = entry_of(cache, "emb[c0]")
    outputs = json.loads(cache.get(key))["outputs"]
    outputs[0][0] = "emb[../../escaped]"
    cache.put(key, json.dumps({"outputs": outputs}).encode())
    doc, err = build(bob)
    assert doc["built"] == ["emb"] and doc["cached"] == []
    assert "'../../escaped' is not a partition key of `emb`" in err
    assert sorted(os.listdir(bob.path("emb"))) == ["c0.json", "c1.json", "c2.json"]
    assert not (tmp_path / "escaped.json").exists()


def test_a_planted_pickle_is_never_loaded_without_a_key(tmp_path, cache):
    # An attacker plants a pickle under its own correct digest and points `parsed`'s
    # entry at it: `total` would unpickle it. Without a team key the shared cache is
    # not authenticated, so a pickle is never restored from it: `parsed` runs.
    alice = member(tmp_path, "alice", cache)
    assert build(alice)[0]["built"] == ["parsed", "total"]
    marker = tmp_path / "PWNED"
    digest = plant_pickle(cache, marker)
    cache.put(entry_of(cache, "parsed"), json.dumps({"outputs": [["parsed", digest]]}).encode())
    bob = member(tmp_path, "bob", cache)
    r = bob.run("--json")
    assert not marker.exists()
    assert r.code == 0, r.err
    doc, err = r.json, r.err
    assert doc["built"] == ["parsed"] and doc["cached"] == ["total"]  # json: restored
    assert calls(bob) == ["parsed"]
    assert json.loads(bob.read("out/total.json")) == {"total": 6}
    assert (f"warning: shared cache `{cache.url}`: not restored from it: `parsed`: their "
            f"outputs are of formats whose loading can run code") in err
    assert "set DATAMAKE_CACHE_KEY to the team's secret" in err
    assert err.count("DATAMAKE_CACHE_KEY") == 1  # one warning per build
    # The same build with the key: the entry carries no MAC, so it is refused.
    shutil_rm(bob.path(".datamake"))
    doc, err = build(bob, DATAMAKE_CACHE_KEY=KEY)
    assert not marker.exists()
    assert doc["built"] == ["parsed", "total"]
    assert "it carries no MAC: it was not written with the team key" in err
    # An entry whose MAC was made with another key: refused too.
    key = entry_of(cache, "parsed")
    mac = entry_mac(b"someone else's key", sig_of(key), [("parsed", digest)])
    cache.put(key, json.dumps({"outputs": [["parsed", digest]], "mac": mac}).encode())
    shutil_rm(bob.path(".datamake"))
    doc, err = build(bob, DATAMAKE_CACHE_KEY=KEY)
    assert not marker.exists()
    assert "parsed" in doc["built"]
    assert (f"entry `{key}` of `parsed` is refused: its MAC does not match: it was not "
            f"written with the team key (DATAMAKE_CACHE_KEY)") in err
    assert KEY not in err and KEY not in json.dumps(doc)


def test_a_teammate_with_the_key_restores_everything(tmp_path, cache):
    alice = member(tmp_path, "alice", cache)
    assert build(alice, DATAMAKE_CACHE_KEY=KEY)[0]["built"] == ["parsed", "total"]
    entry = json.loads(cache.get(entry_of(cache, "parsed")))
    assert len(entry["mac"]) == 64
    bob = member(tmp_path, "bob", cache)
    doc, err = build(bob, DATAMAKE_CACHE_KEY=KEY)
    assert (doc["built"], doc["cached"]) == ([], ["parsed", "total"])
    assert calls(bob) == [] and "warning" not in err
    assert bob.path(".datamake/data/parsed.pkl").read_bytes() == \
        alice.path(".datamake/data/parsed.pkl").read_bytes()
    # Without the key, Carol restores what is safe to load and runs the pickle's step.
    carol = member(tmp_path, "carol", cache)
    doc, _ = build(carol)
    assert (doc["built"], doc["cached"]) == (["parsed"], ["total"])
    # The key is nowhere in what datamake keeps.
    for p in (alice, bob):
        for f in p.path(".datamake").rglob("*"):
            if f.is_file():
                assert KEY.encode() not in f.read_bytes(), f


def test_read_only_mode_uploads_nothing(tmp_path, cache):
    alice = member(tmp_path, "alice", cache)
    doc, _ = build(alice, "--cache-read-only")
    assert doc["built"] == ["parsed", "total"]
    assert cache.keys() == []
    bob = member(tmp_path, "bob", cache)
    build(bob, DATAMAKE_CACHE_READONLY="1")
    assert cache.keys() == []
    # What a writer (CI) uploads, a read-only developer restores.
    ci = member(tmp_path, "ci", cache, numbers="5 6\n")
    build(ci, DATAMAKE_CACHE_KEY=KEY)
    written = cache.keys()
    assert written
    dev = member(tmp_path, "dev", cache, numbers="5 6\n")
    doc, _ = build(dev, "--cache-read-only", DATAMAKE_CACHE_KEY=KEY)
    assert (doc["built"], doc["cached"]) == ([], ["parsed", "total"])
    doc, _ = build(dev, "--cache-read-only", "-B", DATAMAKE_CACHE_KEY=KEY)
    assert doc["built"] == ["parsed", "total"]
    assert cache.keys() == written


def test_a_corrupt_object_is_reported(tmp_path, cache):
    alice = member(tmp_path, "alice", cache)
    build(alice)
    total = alice.path("out/total.json").read_bytes()
    digest = hash_bytes(total)
    cache.put(f"objects/{digest[:2]}/{digest}", b'{"total": 0}')
    bob = member(tmp_path, "bob", cache)
    doc, err = build(bob)
    assert doc["built"] == ["parsed", "total"]
    assert (f"warning: shared cache `{cache.url}`: object `{digest}` of `total` is "
            f"corrupt (its bytes do not match its digest); the step runs") in err
    assert bob.path("out/total.json").read_bytes() == total


def test_a_corrupt_local_object_is_reported(proj):
    proj.write("Datafile", PIPE.replace('cache "{url}"\n', "").format())
    proj.write("numbers.txt", "1 2 3\n")
    assert proj.built() == ["parsed", "total"]
    total = proj.path("out/total.json").read_bytes()
    digest = hash_bytes(total)
    proj.path("numbers.txt").write_text("4 5\n")
    assert proj.built() == ["parsed", "total"]
    proj.path(f".datamake/cache/objects/{digest}").write_bytes(b"garbage")
    proj.path("numbers.txt").write_text("1 2 3\n")
    doc, err = build(proj)
    assert doc["cached"] == ["parsed"] and doc["built"] == ["total"]
    assert (f"warning: local cache `.datamake/cache`: object `{digest}` of `total` is "
            f"corrupt (its bytes do not match its digest); the step runs") in err
    assert proj.path("out/total.json").read_bytes() == total


def test_a_folder_list_names_only_plain_relative_paths():
    d = hash_bytes(b"x")
    fine = [("a.txt", d), ("sub/b.txt", d)]
    assert read_folder_object(folder_object(fine), folder_digest(fine)) == fine
    for files in ([("/etc/passwd", d)], [("../x", d)], [("a/../../x", d)], [("./a", d)],
                  [("a//b", d)], [("a/", d)], [("", d)], [("a", d), ("a", d)],
                  [("a", d), ("a/b", d)], [("a", "/etc/passwd")], [("a", "d:" + d)]):
        with pytest.raises(Invalid):
            read_folder_object(folder_object(files), folder_digest(files))
    with pytest.raises(Corrupt):  # the bytes are not the list the digest names
        read_folder_object(folder_object(fine), folder_digest([("c", d)]))
    with pytest.raises(Corrupt):
        read_folder_object(b"not json", folder_digest(fine))


def test_a_folder_list_with_a_path_out_of_the_folder_is_refused(tmp_path, cache):
    datafile = """
        cache "{url}"
        dataset model = "out/model" as path
        model:
            import os
            os.makedirs(model)
            open(f"{{model}}/w.bin", "w").write("weights")
    """
    alice = member(tmp_path, "alice", cache, datafile=datafile)
    build(alice, DATAMAKE_CACHE_KEY=KEY)
    bob = member(tmp_path, "bob", cache, datafile=datafile)
    # The attacker holds the key too (a teammate gone rogue): the list still may not
    # name a path out of the folder.
    data = b"overwritten"
    d = hash_bytes(data)
    cache.put(f"objects/{d[:2]}/{d}", data)
    files = [("../../../../escaped.txt", d)]
    fd = folder_digest(files)
    cache.put(f"objects/d:/{fd}", folder_object(files))
    key = entry_of(cache, "model")
    mac = entry_mac(KEY.encode(), sig_of(key), [("model", fd)])
    cache.put(key, json.dumps({"outputs": [["model", fd]], "mac": mac}).encode())
    doc, err = build(bob, DATAMAKE_CACHE_KEY=KEY)
    assert doc["built"] == ["model"]
    assert "its folder list names '../../../../escaped.txt', which is not a plain " \
           "relative path" in err
    assert not any(p.name == "escaped.txt" for p in tmp_path.rglob("escaped.txt"))


def test_the_local_index_names_no_path_either(proj):
    # The local cache's index (in the state database) is read as carefully as a shared
    # entry: a digest there that is not one is a miss and a warning, and names no file.
    from datamake.cache import Caches
    from datamake.project import Project

    proj.write("Datafile", PIPE.replace('cache "{url}"\n', "").format())
    proj.write("numbers.txt", "1 2 3\n")
    victim = proj.write("victim.txt", "precious")
    project = Project(proj.path("Datafile"))
    try:
        caches = Caches(project, None)
        project.state.cache_add("s" * 32, [("total", str(victim))], [])
        assert caches.restore(project.graph.rules["total"], None, "s" * 32) is None
        assert caches.warnings == [
            f"local cache `.datamake/cache`: entry `{'s' * 32}` of `total` is refused: "
            f"output 'total' names '{victim}', which is not a content digest; the step runs"]
        assert project.state.cache_entry("s" * 32) is None  # dropped from the index
        assert victim.read_text() == "precious"
        with pytest.raises(ValueError):
            caches.local.path("../../victim.txt")
    finally:
        project.close()
