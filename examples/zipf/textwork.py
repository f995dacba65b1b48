"""Word counts, Zipf tables and a toy embedding for the zipf example."""
from __future__ import annotations

import re
import time
import zlib

WORD = re.compile(r"[a-z]+")


def count_words(text: str):
    """Word frequencies of one book, most frequent first."""
    import pandas as pd

    counts = pd.Series(WORD.findall(text.lower())).value_counts()
    return counts.rename_axis("word").reset_index(name="count")


def zipf_table(counts, top: int):
    """For each book, the `top` words by rank with frequency * rank (about constant)."""
    import pandas as pd

    rows = []
    for book, frame in counts.items():  # one book at a time
        frame = frame.head(top).reset_index(drop=True)
        total = int(frame["count"].sum())
        for rank, (word, n) in enumerate(zip(frame["word"], frame["count"]), 1):
            rows.append({"book": book, "rank": rank, "word": word, "count": int(n),
                         "share_of_top": n / total, "count_x_rank": int(n) * rank})
    return pd.DataFrame(rows)


def plot_zipf(table):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for book, frame in table.groupby("book"):
        ax.loglog(frame["rank"], frame["count"], marker="o", label=book)
    ax.set_xlabel("rank")
    ax.set_ylabel("count")
    ax.legend()
    return fig


def chunks_of(text: str, size: int):
    """Consecutive pieces of about `size` characters, cut at whitespace."""
    start = 0
    while start < len(text):
        end = min(len(text), start + size)
        while end < len(text) and not text[end].isspace():
            end += 1
        yield text[start:end]
        start = end


def embed(chunk: str, dim: int = 64, seconds: float = 0.0):
    """A toy embedding: hashed bag of words, L2-normalised (stands in for a model call)."""
    import numpy as np
    import pandas as pd

    if seconds:
        time.sleep(seconds)  # a real model takes its time; the example can pretend to
    vec = np.zeros(dim)
    for w in WORD.findall(chunk.lower()):
        vec[zlib.crc32(w.encode()) % dim] += 1.0
    norm = np.linalg.norm(vec) or 1.0
    return pd.DataFrame({"dim": np.arange(dim), "value": vec / norm})
