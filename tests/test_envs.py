"""Environments (`--env NAME`): parameters laid over `conf/base/`, credentials read
from `conf/NAME/credentials.yaml` and never shown, recorded or cached."""
from __future__ import annotations

import json
import os

from conftest import clean_env

DATAFILE = """
    params "conf/base/parameters.yaml"
    dataset total = "out/total.json"
    dataset label = "out/label.txt"
    all: total label
    total: model
        model["depth"] * 10
    label: name
        name
"""


def setup(proj):
    proj.write("Datafile", DATAFILE)
    proj.write("conf/base/parameters.yaml", "model:\n  depth: 3\n  lr: 0.1\nname: base\n")
    return proj


def test_an_environment_lays_its_parameters_over_base(proj):
    setup(proj)
    assert proj.built() == ["total", "label"]  # `local` has no file: base alone
    assert json.loads(proj.read("out/total.json")) == 30
    proj.write("conf/prod/parameters.yaml", "model:\n  depth: 5\n")
    assert proj.built() == []  # prod is not in force
    assert proj.built("--env", "prod") == ["total"]  # depth from prod, lr and name from base
    assert json.loads(proj.read("out/total.json")) == 50
    assert proj.built("--env", "prod") == []
    assert proj.read("out/label.txt") == "base"
    # `local`, the default, is read once it exists (and a new file is seen at once);
    # `total` with depth 3 again comes from the local cache.
    proj.write("conf/local/parameters.yaml", "name: mine\n")
    r = proj.build()
    assert (r["built"], r["cached"]) == (["label"], ["total"])
    assert proj.read("out/label.txt") == "mine"
    assert json.loads(proj.read("out/total.json")) == 30
    # DATAMAKE_ENV is the same as --env.
    r = proj.run(env=clean_env(DATAMAKE_ENV="prod"))
    assert r.code == 0, r.err


def test_an_environment_name_is_one_folder(proj):
    setup(proj)
    for bad in ("../x", "a/b", "..", ""):
        r = proj.run("--env", bad)
        assert r.code == 2, (bad, r.err)
        assert "--env" in r.err and "Traceback" not in r.err


def test_credentials_reach_recipes_and_appear_nowhere(proj):
    secret = "s3cr3t-Wv7q-never-shown"
    proj.write("Datafile", """
        dataset seen = "out/seen.txt"
        seen:
            import os
            str(len(os.environ["DM_TEST_SECRET"]))
    """)
    proj.write("conf/prod/credentials.yaml", f"DM_TEST_SECRET: {secret}\n")
    r = proj.run("--env", "prod", "--json")
    assert r.code == 0, r.err
    assert proj.read("out/seen.txt") == str(len(secret))
    outputs = [r.out, r.err]
    for args in (("--env", "prod", "-n", "--json"), ("--env", "prod", "--explain"),
                 ("--env", "prod", "--runs"), ("--env", "prod", "--list")):
        x = proj.run(*args)
        outputs += [x.out, x.err]
    assert not any(secret in o for o in outputs)
    for dirpath, _, files in os.walk(proj.path(".datamake")):
        for f in files:
            with open(os.path.join(dirpath, f), "rb") as fh:
                assert secret.encode() not in fh.read(), f
    # Without the environment the variable is not set: the recipe fails, saying so.
    r = proj.run("-B")
    assert r.code == 1 and "DM_TEST_SECRET" in r.err and secret not in r.err


def test_a_broken_credentials_file_is_one_error_without_its_contents(proj):
    proj.write("Datafile", 'dataset out = "out.txt"\nout:\n    "x"\n')
    proj.write("conf/prod/credentials.yaml", "AWS_SECRET_ACCESS_KEY: [unclosed-s3cr3t\n")
    r = proj.run("--env", "prod")
    assert r.code == 2
    assert r.err == ("datamake: error: `conf/prod/credentials.yaml` is not a YAML mapping of "
                     "environment variables\nhelp: a credentials file maps environment "
                     "variables to values, e.g. `AWS_ACCESS_KEY_ID: ...`\n")
