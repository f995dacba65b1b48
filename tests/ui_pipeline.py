"""A generated pipeline for the pipeline page's tests and benchmark: N rules in layers,
each reading one to three rules of the layers just before it (the first layer reads
source files), every seventh one a parameter too."""
from __future__ import annotations

import random
from pathlib import Path


def generated(n: int = 300, width: int = 10, seed: int = 7) -> str:
    rnd = random.Random(seed)
    lines = ["param scale = 2", ""]
    lines += [f'dataset src{j} = "in/src{j}.txt"' for j in range(width)]
    lines.append("")
    for i in range(n):
        layer = i // width
        if layer == 0:
            ins = [f"src{i}"]
        else:
            first = max(0, (layer - 3) * width)
            last = layer * width  # exclusive: the layers before this one
            near = list(range(max(first, last - width), last))
            picks = {rnd.choice(near)}
            for _ in range(rnd.randint(0, 2)):
                picks.add(rnd.randrange(first, last))
            ins = [f"r{k:03d}" for k in sorted(picks)]
        if i % 7 == 0:
            ins.append("scale")
        lines += [f"## Step {i} of the generated pipeline.", f"r{i:03d}: {' '.join(ins)}",
                  f"    str(len(str(({', '.join(ins)},))))", ""]
    return "\n".join(lines)


def write(root: Path, n: int = 300) -> None:
    """A project of `n` generated rules in `root`, its source files included."""
    (root / "in").mkdir(parents=True, exist_ok=True)
    for j in range(10):
        (root / "in" / f"src{j}.txt").write_text(f"source {j}\n")
    (root / "Datafile").write_text(generated(n))
