#!/usr/bin/env python3
"""Generate equivalent workflows for datamake and the tools it is compared with.

    python bench/gen.py [--tools datamake,make,...] [--shapes wide,chain,fanin] [--sizes 100,1000]

writes bench/work/<tool>/<shape>-<N>/ for every combination. Each folder holds the
tool's build file and the inputs in in/; every tool writes its outputs to out/.

Shapes (every step upper-cases the text it reads):

  wide   N independent steps: in/<i>.txt -> out/<i>.txt
  chain  N steps in a line:   in/0.txt -> out/0.txt -> out/1.txt -> ... -> out/<N-1>.txt
  fanin  N independent steps in/<i>.txt -> out/<i>.txt, then one step that joins all
         N outputs in order into out/total.txt

Each tool gets the idiomatic form of the same work: shell commands (tr, cat) for make
and ninja, which is what those tools run; Python for datamake, doit, snakemake (run:
blocks) and kedro (a node per step, text datasets).
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORK = HERE / "work"

TOOLS = ("datamake", "datamake-pattern", "make", "ninja", "doit", "snakemake", "kedro")
# Shapes a tool's idiomatic form cannot express (a chain is not one pattern rule).
UNSUPPORTED = {("datamake-pattern", "chain")}


def supports(tool: str, shape: str) -> bool:
    return (tool, shape) not in UNSUPPORTED
SHAPES = ("wide", "chain", "fanin")


# --------------------------------------------------------------------------- layout
def input_indices(shape: str, n: int) -> range:
    """The indices i of the source files in/<i>.txt."""
    return range(1) if shape == "chain" else range(n)


def input_text(i: int) -> str:
    return f"input {i}: the quick brown fox jumps over the lazy dog\n"


def outputs(shape: str, n: int) -> list[str]:
    """Every output file, relative to the workload folder."""
    outs = [f"out/{i}.txt" for i in range(n)]
    if shape == "fanin":
        outs.append("out/total.txt")
    return outs


def changed_input(shape: str, n: int) -> str:
    """The source that the `one` measurement edits."""
    return "in/0.txt" if shape == "chain" else f"in/{n // 2}.txt"


def affected_outputs(shape: str, n: int) -> list[str]:
    """The outputs that must be rewritten after changed_input() changes."""
    if shape == "chain":
        return [f"out/{i}.txt" for i in range(n)]
    if shape == "fanin":
        return [f"out/{n // 2}.txt", "out/total.txt"]
    return [f"out/{n // 2}.txt"]


def check_one(shape: str, n: int, folder: Path, new_text: str) -> str | None:
    """After `one`, the output downstream of the edit must hold the new content."""
    up = new_text.upper()
    if shape == "wide":
        want = {f"out/{n // 2}.txt": up}
    elif shape == "chain":
        want = {f"out/{n - 1}.txt": up}
    else:
        want = {f"out/{n // 2}.txt": up}
    for rel, text in want.items():
        got = (folder / rel).read_text() if (folder / rel).exists() else None
        if got != text:
            return f"{rel} holds {got!r}, expected {text!r}"
    if shape == "fanin":
        total = (folder / "out/total.txt").read_text()
        if up not in total:
            return "out/total.txt does not contain the new content"
        if len(total.splitlines()) != n:
            return f"out/total.txt has {len(total.splitlines())} lines, expected {n}"
    return None


# --------------------------------------------------------------------------- tools
def gen_datamake(shape: str, n: int) -> dict[str, str]:
    lines: list[str] = []
    if shape == "fanin":
        lines.append("all: total")
    else:
        lines.append("all: " + " ".join(f"o{i}" for i in range(n)))
    lines.append("")
    for i in input_indices(shape, n):
        lines.append(f'dataset i{i} = "in/{i}.txt"')
    for i in range(n):
        lines.append(f'dataset o{i} = "out/{i}.txt"')
    if shape == "fanin":
        lines.append('dataset total = "out/total.txt"')
    lines.append("")
    for i in range(n):
        src = f"o{i - 1}" if shape == "chain" and i > 0 else f"i{i}"
        lines += [f"o{i}: {src}", f"    {src}.upper()", ""]
    if shape == "fanin":
        names = [f"o{i}" for i in range(n)]
        lines += ["total: " + " ".join(names), '    "".join([' + ", ".join(names) + "])", ""]
    return {"Datafile": "\n".join(lines)}


def gen_datamake_pattern(shape: str, n: int) -> dict[str, str]:
    # The same work as one pattern rule over partitions (as make's `out/%.txt` rule,
    # doit's task generator and snakemake's wildcard rule write it); the Datafile does
    # not grow with N.
    lines = []
    if shape == "fanin":
        lines += ["total: up", '    "".join(up[k] for k in sorted(up, key=int))', ""]
    lines += ['dataset src = "in/{i}.txt"', 'dataset up = "out/{i}.txt"']
    if shape == "fanin":
        lines.append('dataset total = "out/total.txt"')
    lines += ["", "up[i]: src[i]", "    src.upper()", ""]
    return {"Datafile": "\n".join(lines)}


def gen_make(shape: str, n: int) -> dict[str, str]:
    # Plain POSIX-make style with a pattern rule where the shape allows one.
    out = ["# generated by bench/gen.py", ".SUFFIXES:", ""]
    if shape == "wide":
        out += ["OUTS := " + " ".join(f"out/{i}.txt" for i in range(n)), "",
                "all: $(OUTS)", "",
                "out/%.txt: in/%.txt | out", "\ttr a-z A-Z < $< > $@", ""]
    elif shape == "chain":
        out += [f"all: out/{n - 1}.txt", "",
                "out/0.txt: in/0.txt | out", "\ttr a-z A-Z < $< > $@", ""]
        for i in range(1, n):
            out += [f"out/{i}.txt: out/{i - 1}.txt", "\ttr a-z A-Z < $< > $@", ""]
    else:
        out += ["OUTS := " + " ".join(f"out/{i}.txt" for i in range(n)), "",
                "all: out/total.txt", "",
                "out/%.txt: in/%.txt | out", "\ttr a-z A-Z < $< > $@", "",
                "out/total.txt: $(OUTS)", "\tcat $^ > $@", ""]
    out += ["out:", "\tmkdir -p $@", "", ".PHONY: all", ""]
    return {"Makefile": "\n".join(out)}


def gen_ninja(shape: str, n: int) -> dict[str, str]:
    out = ["# generated by bench/gen.py", "rule upper", "  command = tr a-z A-Z < $in > $out", ""]
    if shape == "fanin":
        out += ["rule join", "  command = cat $in > $out", ""]
    for i in range(n):
        src = f"out/{i - 1}.txt" if shape == "chain" and i > 0 else f"in/{i}.txt"
        out.append(f"build out/{i}.txt: upper {src}")
    if shape == "fanin":
        out.append("build out/total.txt: join " + " ".join(f"out/{i}.txt" for i in range(n)))
        out.append("build all: phony out/total.txt")
    elif shape == "chain":
        out.append(f"build all: phony out/{n - 1}.txt")
    else:
        out.append("build all: phony " + " ".join(f"out/{i}.txt" for i in range(n)))
    out += ["default all", ""]
    return {"build.ninja": "\n".join(out)}


DODO = '''\
"""doit tasks generated by bench/gen.py: shape {shape}, N = {n}."""
import os

N = {n}
SHAPE = "{shape}"


def upper(src, dst):
    with open(src) as f:
        text = f.read()
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    with open(dst, "w") as f:
        f.write(text.upper())


def join(srcs, dst):
    parts = []
    for src in srcs:
        with open(src) as f:
            parts.append(f.read())
    with open(dst, "w") as f:
        f.write("".join(parts))


def source(i):
    return f"out/{{i - 1}}.txt" if SHAPE == "chain" and i > 0 else f"in/{{i}}.txt"


def task_upper():
    for i in range(N):
        src, dst = source(i), f"out/{{i}}.txt"
        yield {{
            "name": str(i),
            "actions": [(upper, [src, dst])],
            "file_dep": [src],
            "targets": [dst],
        }}


if SHAPE == "fanin":
    def task_total():
        srcs = [f"out/{{i}}.txt" for i in range(N)]
        return {{
            "actions": [(join, [srcs, "out/total.txt"])],
            "file_dep": srcs,
            "targets": ["out/total.txt"],
        }}
'''


def gen_doit(shape: str, n: int) -> dict[str, str]:
    return {"dodo.py": DODO.format(shape=shape, n=n)}


SNAKEFILE = '''\
# Snakemake workflow generated by bench/gen.py: shape {shape}, N = {n}.
N = {n}
{header}
rule all:
    input: {all_input}

{rules}
'''

SNAKE_UPPER = '''\
rule upper:
    input: {input}
    output: "out/{{i}}.txt"
    run:
        with open(input[0]) as f:
            text = f.read()
        with open(output[0], "w") as f:
            f.write(text.upper())
'''

SNAKE_JOIN = '''
rule total:
    input: expand("out/{i}.txt", i=range(N))
    output: "out/total.txt"
    run:
        parts = []
        for src in input:
            with open(src) as f:
                parts.append(f.read())
        with open(output[0], "w") as f:
            f.write("".join(parts))
'''


def gen_snakemake(shape: str, n: int) -> dict[str, str]:
    if shape == "chain":
        # Snakemake builds its DAG recursively, one Python frame per step: a chain of
        # more than ~500 steps needs a higher recursion limit.
        header = "\nimport sys\nsys.setrecursionlimit(max(sys.getrecursionlimit(), 20 * N + 1000))\n"
        upper = SNAKE_UPPER.format(
            input='lambda w: "in/0.txt" if int(w.i) == 0 else f"out/{int(w.i) - 1}.txt"')
        all_input = f'"out/{n - 1}.txt"'
    else:
        header = ""
        upper = SNAKE_UPPER.format(input='"in/{i}.txt"')
        all_input = 'expand("out/{i}.txt", i=range(N))'
    rules = upper
    if shape == "fanin":
        rules += SNAKE_JOIN
        all_input = '"out/total.txt"'
    return {"Snakefile": SNAKEFILE.format(shape=shape, n=n, header=header, all_input=all_input, rules=rules)}


KEDRO_PYPROJECT = '''\
[project]
name = "bench_kedro"
version = "0.1"
requires-python = ">=3.9"

[tool.kedro]
package_name = "bench_kedro"
project_name = "bench"
kedro_init_version = "{kedro_version}"
source_dir = "src"
'''

KEDRO_REGISTRY = '''\
"""Pipeline generated by bench/gen.py: shape {shape}, N = {n}."""
from kedro.pipeline import Pipeline, node, pipeline

N = {n}
SHAPE = "{shape}"


def upper(text):
    return text.upper()


def join(*texts):
    return "".join(texts)


def register_pipelines():
    nodes = []
    for i in range(N):
        src = f"o{{i - 1}}" if SHAPE == "chain" and i > 0 else f"i{{i}}"
        nodes.append(node(upper, src, f"o{{i}}", name=f"upper_{{i}}"))
    if SHAPE == "fanin":
        nodes.append(node(join, [f"o{{i}}" for i in range(N)], "total", name="total"))
    return {{"__default__": pipeline(nodes)}}
'''

# Dataset factories: one pattern per kind of dataset instead of N catalog entries.
KEDRO_CATALOG = '''\
"i{n}":
  type: text.TextDataset
  filepath: in/{n}.txt

"o{n}":
  type: text.TextDataset
  filepath: out/{n}.txt

total:
  type: text.TextDataset
  filepath: out/total.txt
'''


def kedro_version() -> str:
    try:
        from importlib.metadata import version
        return version("kedro")
    except Exception:
        return "1.0.0"


def gen_kedro(shape: str, n: int) -> dict[str, str]:
    return {
        "pyproject.toml": KEDRO_PYPROJECT.format(kedro_version=kedro_version()),
        "src/bench_kedro/__init__.py": "",
        "src/bench_kedro/settings.py": "",
        "src/bench_kedro/pipeline_registry.py": KEDRO_REGISTRY.format(shape=shape, n=n),
        "conf/base/catalog.yml": KEDRO_CATALOG,
        "conf/base/parameters.yml": "{}\n",
        "conf/local/.keep": "",
    }


GENERATORS = {
    "datamake": gen_datamake,
    "datamake-pattern": gen_datamake_pattern,
    "make": gen_make,
    "ninja": gen_ninja,
    "doit": gen_doit,
    "snakemake": gen_snakemake,
    "kedro": gen_kedro,
}


# --------------------------------------------------------------------------- driver
def folder(tool: str, shape: str, n: int) -> Path:
    return WORK / tool / f"{shape}-{n}"


def generate(tool: str, shape: str, n: int) -> Path:
    """(Re)create one workload folder from scratch and return it."""
    d = folder(tool, shape, n)
    if d.exists():
        shutil.rmtree(d)
    (d / "in").mkdir(parents=True)
    for i in input_indices(shape, n):
        (d / "in" / f"{i}.txt").write_text(input_text(i))
    for rel, text in GENERATORS[tool](shape, n).items():
        p = d / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return d


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tools", default=",".join(TOOLS))
    ap.add_argument("--shapes", default=",".join(SHAPES))
    ap.add_argument("--sizes", default="100,1000")
    a = ap.parse_args(argv)
    for tool in a.tools.split(","):
        if tool not in GENERATORS:
            ap.error(f"unknown tool {tool!r}")
        for shape in a.shapes.split(","):
            if shape not in SHAPES:
                ap.error(f"unknown shape {shape!r}")
            if not supports(tool, shape):
                continue
            for n in map(int, a.sizes.split(",")):
                print(generate(tool, shape, n).relative_to(HERE.parent), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
