"""The catalog: every format of docs/language.md round-trips, writes are atomic, options
reach the reader and the writer, and plugins come through entry points."""
from __future__ import annotations

import json
import os
import textwrap

import pytest

from datamake.catalog import Catalog
from datamake.errors import CatalogError
from datamake.graph import DatasetInfo
from datamake.locations import placeholders


def catalog(root, **locations):
    infos = {}
    for name, spec in locations.items():
        loc, fmt, opts = (spec + (None, ()))[:3] if isinstance(spec, tuple) else (spec, None, ())
        infos[name] = DatasetInfo(name, loc, fmt, tuple(opts or ()), False, True,
                                  tuple(placeholders(loc)))
    return Catalog(root, infos, env={"DATA": "lake"})


def save(cat, name, value):
    return cat.commit(cat.write(name, value))


def test_tables_round_trip(tmp_path):
    import pandas as pd
    frame = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    cat = catalog(tmp_path, c="t.csv", p="t.parquet", x="t.xlsx")
    for name in "cpx":
        save(cat, name, frame)
        back = cat.load(name)
        assert back.equals(frame), name
    assert (tmp_path / "t.csv").read_text() == "a,b\n1,x\n2,y\n"  # no index by default


def test_csv_options_go_to_reader_and_writer(tmp_path):
    import pandas as pd
    cat = catalog(tmp_path, c=("t.csv", "csv", (("sep", ";"), ("index", False))))
    save(cat, "c", pd.DataFrame({"a": [1], "b": [2]}))
    assert (tmp_path / "t.csv").read_text() == "a;b\n1;2\n"
    assert list(cat.load("c").columns) == ["a", "b"]
    bad = catalog(tmp_path, c=("t.csv", "csv", (("nonsense", 1),)))
    with pytest.raises(CatalogError, match="format `csv` has no option `nonsense`"):
        bad.load("c")


def test_objects_text_and_bytes_round_trip(tmp_path):
    cat = catalog(tmp_path, j="o.json", y="o.yml", k="o.pkl", t="o.md", h="o.html", b=("o.dat", "bytes"))
    value = {"a": [1, 2.5, None], "b": "é"}
    for name in "jyk":
        save(cat, name, value)
        assert cat.load(name) == value
    save(cat, "t", "# Title\n")
    assert cat.load("t") == "# Title\n"
    save(cat, "h", "<p>hi</p>")
    assert cat.load("h") == "<p>hi</p>"
    save(cat, "b", b"\x00\x01")
    assert cat.load("b") == b"\x00\x01"
    with pytest.raises(CatalogError, match="a text dataset stores a str, not `int`"):
        cat.write("t", 3)


def test_digests_hashed_while_writing_are_the_files_digests(tmp_path):
    from datamake.hashing import hash_file

    big = {"rows": [{"i": i, "s": "x" * 50} for i in range(20000)]}  # several writes
    cat = catalog(tmp_path, j="o.json", y="o.yaml", p="o.pkl", t="o.txt", h="o.html",
                  b="o.bin", c="o.csv")
    values = {"j": big, "y": {"a": [1, 2]}, "p": big, "t": "text\n" * 1000, "h": "<p>hi</p>",
              "b": bytes(range(256)) * 100}
    for name, value in values.items():
        pending = cat.write(name, value)
        assert pending.digest == hash_file(pending.tmp), name
        cat.commit(pending)
    import pandas as pd

    pending = cat.write("c", pd.DataFrame({"a": [1]}))  # not sequential: read back
    assert pending.digest == hash_file(pending.tmp)


def test_figures_as_images_and_html(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cat = catalog(tmp_path, png="f.png", svg="f.svg", page="f.html")
    fig, ax = plt.subplots()
    ax.plot([1, 2], [3, 4])
    save(cat, "png", fig)
    assert cat.load("png")[:8] == b"\x89PNG\r\n\x1a\n"
    save(cat, "svg", fig)
    assert b"<svg" in cat.load("svg")
    save(cat, "page", fig)
    assert "data:image/png;base64," in cat.load("page")


def test_reports_render_self_contained(tmp_path):
    import pandas as pd
    from datamake import Report

    r = Report("Demo").text("Some **bold** words.").metric("r2", 0.9312345).metric("rows", 1200)
    r.table(pd.DataFrame({"a": range(100)}), "Numbers", max_rows=5)
    html = r.to_html()
    assert "<strong>bold</strong>" in html and "0.9312" in html and "1,200" in html
    assert "first 5 of 100 rows" in html
    assert json.loads(html.split('id="datamake-metrics">')[1].split("</script>")[0]) == {
        "r2": 0.9312345, "rows": 1200}
    assert "http://" not in html and "https://" not in html


def test_writes_are_atomic(tmp_path):
    cat = catalog(tmp_path, k="obj.pkl", j="obj.json")
    save(cat, "j", {"v": 1})

    class Unserialisable:
        pass

    with pytest.raises(CatalogError):
        cat.write("j", {"v": Unserialisable()})
    assert json.loads((tmp_path / "obj.json").read_text()) == {"v": 1}  # untouched
    pending = cat.write("j", {"v": 2})
    assert json.loads((tmp_path / "obj.json").read_text()) == {"v": 1}  # not yet visible
    cat.commit(pending)
    assert cat.load("j") == {"v": 2}
    assert os.listdir(tmp_path / ".datamake" / "tmp") == []  # no temporary left behind


def test_locations_env_memory_and_file_urls(tmp_path):
    cat = catalog(tmp_path, e="${DATA}/x.json", m="memory://dm-test/x.json",
                  f=f"file://{tmp_path}/f.json", missing="${NOPE}/x.json")
    assert cat.location("e").url == str(tmp_path / "lake" / "x.json")
    save(cat, "m", [1, 2])
    assert cat.load("m") == [1, 2]
    assert cat.stamp("m") is not None and len(cat.digest("m")) == 64
    save(cat, "f", {"ok": True})
    assert json.loads((tmp_path / "f.json").read_text()) == {"ok": True}
    with pytest.raises(CatalogError, match="environment variable `NOPE` is not set"):
        cat.location("missing")


def test_stamps_and_digests(tmp_path):
    cat = catalog(tmp_path, t="t.txt", d=("folder", "path"))
    assert cat.stamp("t") is None
    save(cat, "t", "abc")
    s1, d1 = cat.stamp("t"), cat.digest("t")
    os.utime(tmp_path / "t.txt", (1, 1))
    assert cat.stamp("t") != s1 and cat.digest("t") == d1  # touched: same content
    (tmp_path / "folder" / "sub").mkdir(parents=True)
    (tmp_path / "folder" / "sub" / "a").write_text("1")
    d_before = cat.digest("d")
    (tmp_path / "folder" / "sub" / "a").write_text("2")
    assert cat.digest("d") != d_before


def test_format_plugins_come_from_entry_points(tmp_path, proj):
    """A package declaring `datamake.formats` adds a format, found by name or extension."""
    site = tmp_path / "site"
    (site / "upperfmt").mkdir(parents=True)
    (site / "upperfmt" / "__init__.py").write_text(textwrap.dedent("""
        class Upper:
            extensions = (".up",)
            def load(self, f, options):
                return f.read().decode().lower()
            def save(self, value, f, options):
                f.write(value.upper().encode())
    """))
    dist = site / "upperfmt-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: upperfmt\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[datamake.formats]\nupper = upperfmt:Upper\n")
    proj.write("Datafile", """
        dataset shout = "out/shout.up"
        dataset whisper = "out/whisper.txt"
        shout:
            "hello"
        whisper: shout
            shout + "!"
    """)
    from conftest import clean_env

    env = clean_env(PYTHONPATH=str(site))
    r = proj.run("whisper", env=env)
    assert r.code == 0, r.err
    assert proj.read("out/shout.up") == "HELLO"
    assert proj.read("out/whisper.txt") == "hello!"


def test_a_partitioned_dataset_is_listed_once(tmp_path, monkeypatch):
    """Checking costs one listing per folder, not one call per file."""
    import datamake.catalog as catalog_mod

    for i in range(20):
        (tmp_path / "parts").mkdir(exist_ok=True)
        (tmp_path / "parts" / f"{i}.txt").write_text(str(i))
    (tmp_path / "parts" / "notes.md").write_text("not a partition")
    (tmp_path / "parts" / ".hidden.txt").write_text("not a partition either")
    calls = []
    real = catalog_mod.os.scandir
    monkeypatch.setattr(catalog_mod.os, "scandir", lambda p: calls.append(p) or real(p))
    cat = catalog(tmp_path, parts="parts/{n}.txt")
    found = cat.partitions("parts")
    assert sorted(found, key=int) == [str(i) for i in range(20)]
    assert all(cat.stamp("parts", str(i)) == found[str(i)] for i in range(20))
    assert cat.stamp("parts", "99") is None
    assert len(calls) == 1
    assert cat.load("parts", "7") == "7"


def test_storage_errors_are_said_plainly():
    from botocore.exceptions import EndpointConnectionError, NoCredentialsError

    from datamake.catalog import storage_error

    cases = [
        (FileNotFoundError("The specified bucket does not exist"), "the bucket does not exist"),
        (NoCredentialsError(), "no credentials"),
        (PermissionError("The AWS Access Key Id you provided does not exist in our records."),
         "access denied"),
        (EndpointConnectionError(endpoint_url="http://127.0.0.1:9"),
         "cannot reach the storage endpoint http://127.0.0.1:9"),
        # A port with 403 in it is not a refusal (this made a CI run fail).
        (EndpointConnectionError(endpoint_url="http://127.0.0.1:40312/b/out.txt"),
         "cannot reach the storage endpoint http://127.0.0.1:40312"),
        (OSError("An error occurred (403) when calling the PutObject operation: Forbidden"),
         "access denied"),
    ]
    for exc, said in cases:
        e = storage_error("dataset `raw` at `s3://b/raw.csv`", exc)
        assert str(e) == f"dataset `raw` at `s3://b/raw.csv`: {said}", type(exc)
        assert e.help


def test_hash_file_reads_whole_files_of_any_size(tmp_path):
    import blake3

    from datamake.hashing import hash_file

    # Empty, small, around the 1 MiB chunk and the 8 MiB whole-read limit, and beyond.
    for n in (0, 1, 55, 1 << 20, (1 << 20) + 3, 8 << 20, (8 << 20) + 1, (20 << 20) + 7):
        p = tmp_path / f"f{n}"
        data = os.urandom(n)
        p.write_bytes(data)
        assert hash_file(str(p)) == blake3.blake3(data).hexdigest(), n
