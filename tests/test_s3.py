"""S3 datasets, the shared cache and versions, against a real S3 server (moto's server
mode on 127.0.0.1, started by the fixtures; DATAMAKE_TEST_S3_ENDPOINT names another)."""
from __future__ import annotations

import json
import os
import shutil

import pytest

from conftest import Proj, calls, clean_env
from test_cache import MODEL, folder

PIPE = """
    dataset raw    = "s3://{bucket}/raw/numbers.txt"
    dataset notes  = "s3://{bucket}/raw/notes.txt"
    dataset parsed = "s3://{bucket}/work/parsed.json"
    dataset total  = "s3://{bucket}/out/total.json" versioned
    dataset copy   = "out/total.json"

    python:
        def log(name):
            with open("calls.log", "a") as f:
                f.write(name + "\\n")

    all: copy loud

    parsed: raw
        log("parsed")
        [int(x) for x in raw.split()]

    total: parsed
        log("total")
        {{"total": sum(parsed)}}

    copy: total
        log("copy")
        total

    loud: notes
        log("loud")
        notes.upper()
"""


@pytest.fixture
def s3pipe(proj, s3):
    proj.write("Datafile", PIPE.format(bucket=s3.bucket))
    s3.put("raw/numbers.txt", "1 2 3")
    s3.put("raw/notes.txt", "hi")
    assert proj.built() == ["parsed", "total", "copy", "loud"]
    return proj


def test_pipeline_with_s3_inputs_and_outputs(s3pipe, s3):
    assert json.loads(s3.get("work/parsed.json")) == [1, 2, 3]
    assert json.loads(s3.get("out/total.json")) == {"total": 6}
    assert json.loads(s3pipe.read("out/total.json")) == {"total": 6}
    assert s3pipe.built() == []
    assert s3pipe.plan()["run"] == []


def test_same_bytes_reuploaded_rebuild_nothing(s3pipe, s3):
    from boto3.s3.transfer import TransferConfig

    s3.put("raw/numbers.txt", "1 2 3")  # new LastModified, same ETag
    assert s3pipe.built() == []
    # The same bytes as a multipart upload: another ETag, so datamake reads them once.
    body = b"1 2 3" + b" " * (6 * 1024 * 1024)
    s3.put("raw/notes.txt", body)
    assert s3pipe.built() == ["loud"]
    cfg = TransferConfig(multipart_threshold=5 * 1024 * 1024, multipart_chunksize=5 * 1024 * 1024)
    import io

    s3.client.upload_fileobj(io.BytesIO(body), s3.bucket, "raw/notes.txt", Config=cfg)
    etag = s3.client.head_object(Bucket=s3.bucket, Key="raw/notes.txt")["ETag"]
    assert "-" in etag  # really multipart
    assert s3pipe.built() == []
    assert calls(s3pipe).count("loud") == 2


def test_changed_content_rebuilds_downstream(s3pipe, s3):
    s3.put("raw/numbers.txt", "1 2 3 4")
    assert s3pipe.built() == ["parsed", "total", "copy"]
    assert json.loads(s3pipe.read("out/total.json")) == {"total": 10}
    s3.put("raw/numbers.txt", "1 2 3 4 ")  # parses the same: early cutoff
    assert s3pipe.built() == ["parsed"]


def test_output_edited_on_s3_is_rebuilt(s3pipe, s3):
    s3.put("out/total.json", '{"total": 0}')
    assert s3pipe.plan()["reasons"] == {"total": [{"code": "output-changed", "name": "total"}],
                                        "copy": [{"code": "upstream", "name": None}]}
    doc = s3pipe.build()
    assert (doc["built"], doc["cached"]) == ([], ["total"])  # the right bytes, from the cache
    assert json.loads(s3.get("out/total.json")) == {"total": 6}


def test_history_of_a_versioned_s3_dataset(s3pipe, s3):
    s3.put("raw/numbers.txt", "10 20")
    assert s3pipe.built() == ["parsed", "total", "copy"]
    versions = s3pipe.run("--history", "total", "--json").json
    assert len(versions) == 2
    assert [v["path"].rsplit("/", 1)[0] for v in versions] == [
        s3.url("out/.versions/total.json")] * 2
    assert [json.loads(s3.get(v["path"].split("/", 3)[3])) for v in versions] == [
        {"total": 6}, {"total": 30}]
    text = s3pipe.run("--history", "total").out
    assert text.splitlines()[0] == f"Versions of `total` ({s3.url('out/total.json')}), oldest first:"
    assert text.rstrip().endswith("(latest)")
    d = s3pipe.run("--diff", "total", "--json").json
    assert d["metrics"] == {"total": {"before": 6, "after": 30, "change": 24, "relative": 4.0}}


def test_storage_errors_name_the_dataset_and_location(proj, s3):
    proj.write("Datafile", """
        dataset raw = "s3://no-such-bucket-dm/raw.txt"
        dataset out = "out.txt"
        out: raw
            raw
    """)
    r = proj.run()
    assert r.code == 1
    assert ("dataset `raw` at `s3://no-such-bucket-dm/raw.txt`: the bucket does not exist"
            in r.err)
    assert "Traceback" not in r.err
    env = clean_env(AWS_ENDPOINT_URL="http://127.0.0.1:9", AWS_MAX_ATTEMPTS="1",
                    AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="y")
    r = proj.run(env=env)
    assert r.code == 1
    assert "dataset `raw` at `s3://no-such-bucket-dm/raw.txt`: cannot reach the storage endpoint" in r.err


def test_refused_credentials_are_said_plainly(proj, s3):
    # moto's server checks the access key once told to (its /moto-api/reset-auth): the
    # build meets a real 403 from a real endpoint, not a made-up exception.
    import os
    import urllib.request

    if os.environ.get("DATAMAKE_TEST_S3_ENDPOINT"):
        pytest.skip("needs moto's server, which can be told to check credentials")
    proj.write("Datafile", f"""
        dataset raw = "{s3.url('raw.txt')}"
        dataset out = "out.txt"
        out: raw
            raw
    """)
    s3.put("raw.txt", "hello")

    def checking(count: str) -> None:
        req = urllib.request.Request(f"{s3.env['AWS_ENDPOINT_URL']}/moto-api/reset-auth",
                                     data=count.encode(), method="POST",
                                     headers={"Content-Type": "text/plain"})
        urllib.request.urlopen(req, timeout=10).read()

    checking("0")
    try:
        r = proj.run(env=clean_env(**dict(s3.env, AWS_ACCESS_KEY_ID="AKIANOSUCHKEY0000000",
                                          AWS_SECRET_ACCESS_KEY="wrong")))
    finally:
        checking("inf")
    assert r.code == 1, r.err
    assert f"dataset `raw` at `{s3.url('raw.txt')}`: access denied" in r.err
    assert "help: check the credentials (AWS_* variables) and the bucket's policy" in r.err
    assert "Traceback" not in r.err
    assert proj.built() == ["out"]  # the server trusts anyone again: the same build works


def test_partitioned_dataset_on_s3(proj, s3):
    proj.write("Datafile", f"""
        dataset raw = "s3://{s3.bucket}/raw/{{id}}.json"
        dataset doubled = "s3://{s3.bucket}/doubled/{{id}}.json"
        doubled[id]: raw[id]
            [2 * x for x in raw]
    """)
    for i in range(3):
        s3.put(f"raw/{i}.json", json.dumps([i]))
    assert proj.built() == ["doubled[0]", "doubled[1]", "doubled[2]"]
    s3.put("raw/3.json", "[3]")
    assert proj.built() == ["doubled[3]"]
    assert json.loads(s3.get("doubled/3.json")) == [6]
    s3.client.delete_object(Bucket=s3.bucket, Key="raw/0.json")
    r = proj.run("--json")
    assert r.json["built"] == [] and "removed doubled[0]" in r.err
    assert s3.keys("doubled/") == ["doubled/1.json", "doubled/2.json", "doubled/3.json"]


SHARED = """
    cache "s3://{bucket}/team-cache"
    param k = 3
    dataset numbers = "numbers.txt"
    dataset scaled = "out/scaled.json"
    dataset report = "out/report.json"

    python:
        def log(name):
            with open("calls.log", "a") as f:
                f.write(name + "\\n")

    report: scaled
        log("report")
        {{"sum": sum(scaled), "n": len(scaled)}}

    scaled: parsed k
        log("scaled")
        [x * k for x in parsed]

    parsed: numbers
        log("parsed")
        [int(x) for x in numbers.split()]
"""


@pytest.fixture
def team_key(monkeypatch):
    """The team's secret, in the environment of every build (as CI and developers set
    it): entries are authenticated, so pickles and folders are restored too."""
    monkeypatch.setenv("DATAMAKE_CACHE_KEY", "the team's secret")


def teammates(tmp_path, datafile: str, numbers: str) -> tuple[Proj, Proj]:
    """Two separate project folders with the same Datafile and inputs."""
    pair = Proj(tmp_path / "alice"), Proj(tmp_path / "bob")
    for p in pair:
        p.root.mkdir()
        p.write("Datafile", datafile)
        p.write("numbers.txt", numbers)
    return pair


def test_shared_cache_lets_a_teammate_start_where_the_first_stopped(tmp_path, s3, team_key):
    alice, bob = teammates(tmp_path, SHARED.format(bucket=s3.bucket), "1 2 3 4\n")
    assert alice.built() == ["parsed", "scaled", "report"]
    assert any(k.startswith("team-cache/steps/") for k in s3.keys("team-cache/"))
    doc = bob.build()
    assert (doc["built"], doc["cached"]) == ([], ["parsed", "scaled", "report"])
    assert calls(bob) == []
    for f in ("out/scaled.json", "out/report.json", ".datamake/data/parsed.pkl"):
        assert bob.path(f).read_bytes() == alice.path(f).read_bytes()
    assert bob.built() == []
    # A different parameter is a different signature: Bob runs it, Alice then gets it.
    assert bob.built("k=5") == ["scaled", "report"]
    doc = alice.build("k=5")
    assert (doc["built"], doc["cached"]) == ([], ["scaled", "report"])
    # --no-cache ignores the shared cache.
    shutil.rmtree(alice.path(".datamake"))
    assert alice.built("--no-cache") == ["parsed", "scaled", "report"]


YIELDING = """
    cache "s3://{bucket}/team-cache"
    param n = 5
    dataset numbers = "numbers.txt"
    dataset emb = "emb/{{chunk}}.json"
    dataset total = "out/total.json"

    python:
        def log(name):
            with open("calls.log", "a") as f:
                f.write(name + "\\n")

    all: total

    ## The expensive node: written chunk by chunk.
    emb: numbers n
        for i in range(n):
            log(f"c{{i}}")
            yield f"c{{i}}", {{"i": i, "x": len(numbers) * i}}

    total: emb
        log("total")
        sum(v["x"] for v in emb.values())
"""


def test_a_teammate_starts_where_a_yielding_step_finished(tmp_path, s3):
    # The partitions of a recipe that yields go to the shared cache under the step's
    # signature: the second folder fetches them all, runs no recipe, and has the same
    # bytes; each partition is recorded, so the next build there is a no-op.
    alice, bob = teammates(tmp_path, YIELDING.format(bucket=s3.bucket), "1 2 3 4\n")
    assert alice.built() == ["emb", "total"]
    assert calls(alice) == ["c0", "c1", "c2", "c3", "c4", "total"]
    doc = bob.build()
    assert (doc["built"], doc["cached"]) == ([], ["emb", "total"])
    assert calls(bob) == []
    names = sorted(os.listdir(alice.path("emb")))
    assert names == [f"c{i}.json" for i in range(5)] == sorted(os.listdir(bob.path("emb")))
    for f in names + ["../out/total.json"]:
        assert bob.path(f"emb/{f}").read_bytes() == alice.path(f"emb/{f}").read_bytes()
    assert bob.built() == []
    # Bob's own new value is his to run, then Alice's to fetch.
    assert bob.built("n=3") == ["emb", "total"]
    doc = alice.build("n=3")
    assert (doc["built"], doc["cached"]) == ([], ["emb", "total"])
    assert sorted(os.listdir(alice.path("emb"))) == [f"c{i}.json" for i in range(3)]
    # An entry with one of its objects gone is a miss, not a partial restore.
    from datamake.hashing import hash_bytes

    gone = hash_bytes(alice.path("emb/c1.json").read_bytes())
    s3.client.delete_object(Bucket=s3.bucket, Key=f"team-cache/objects/{gone[:2]}/{gone}")
    carol = Proj(tmp_path / "carol")
    carol.root.mkdir()
    carol.write("Datafile", YIELDING.format(bucket=s3.bucket))
    carol.write("numbers.txt", "1 2 3 4\n")
    doc = carol.build("n=3")
    assert (doc["built"], doc["cached"]) == (["emb"], ["total"])  # its own entry is whole
    assert calls(carol) == ["c0", "c1", "c2"]
    assert os.listdir(carol.path(".datamake/tmp")) == []


def test_a_teammate_gets_a_folder_output_from_the_shared_cache(tmp_path, s3, team_key):
    # A folder output goes to the shared cache as its files and the list of them; the
    # second folder gets the same files (subfolders included) and runs no recipe.
    datafile = f'    cache "s3://{s3.bucket}/team-cache"\n' + MODEL
    alice, bob = teammates(tmp_path, datafile, "")
    assert alice.built() == ["model"]
    doc = bob.build()
    assert (doc["built"], doc["cached"]) == ([], ["model"])
    assert calls(bob) == []
    assert folder(bob, "out/model") == folder(alice, "out/model")
    assert sorted(folder(bob, "out/model")) == ["config.json", "weights/same.bin",
                                                 "weights/w.bin"]
    assert bob.built() == []


def test_a_corrupt_shared_entry_is_never_used(tmp_path, s3, team_key):
    alice, bob = teammates(tmp_path, SHARED.format(bucket=s3.bucket), "1 2 3 4\n")
    assert alice.built() == ["parsed", "scaled", "report"]
    scaled = alice.path("out/scaled.json").read_bytes()
    from datamake.hashing import hash_bytes

    key = f"team-cache/objects/{hash_bytes(scaled)[:2]}/{hash_bytes(scaled)}"
    s3.put(key, b"[0, 0, 0, 0]")  # someone wrote garbage over the object
    doc = bob.build()
    assert doc["built"] == ["scaled"] and doc["cached"] == ["parsed", "report"]
    assert calls(bob) == ["scaled"]
    assert bob.path("out/scaled.json").read_bytes() == scaled


def test_the_cache_can_be_a_folder(tmp_path, team_key):
    alice, bob = teammates(tmp_path, SHARED.replace('cache "s3://{bucket}/team-cache"', "")
                           .format(bucket=""), "5\n")
    folder = tmp_path / "shared"
    assert alice.built("--cache", str(folder)) == ["parsed", "scaled", "report"]
    assert bob.build("--cache", str(folder))["cached"] == ["parsed", "scaled", "report"]
