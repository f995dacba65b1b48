"""Data previews from stored bytes: a table's first rows and its columns' types, a value
pretty-printed, an image, an HTML page. Reading stays bounded: the first rows of a
table, the first characters of a text, files up to a size limit.

A pickle is read by an unpickler that builds objects of the standard library, numpy,
pandas and pyarrow only: a pickle of any other class (a model, a class of the project's own) is
named, not loaded, since loading it would import and run the code that defines it
inside the page's server. (This is no sandbox for hostile pickles: builds load the same
files without restriction, and the page trusts them no less.)
"""
from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import pickle
import pickletools
from typing import Any, BinaryIO

ROWS = 20  # rows of a table shown
MAX_TEXT = 20_000  # characters of a value shown
MAX_CELL = 200  # characters of one table cell
MAX_BYTES = 5 * 1024 * 1024  # an image or HTML page larger than this is not embedded
SAFE_MODULES = ("collections", "datetime", "decimal", "fractions", "copyreg",
                "_codecs", "numpy", "pandas", "pyarrow", "zoneinfo", "uuid", "pathlib")
_IMAGE_TYPES = {".png": "image/png", ".svg": "image/svg+xml", ".jpg": "image/jpeg",
                ".jpeg": "image/jpeg", ".gif": "image/gif", ".webp": "image/webp"}


class NotShown(Exception):
    """Why a value is not previewed (a missing library, an unsafe pickle, too big)."""


def table(fmt: str, f: BinaryIO, options: dict[str, Any]) -> dict[str, Any]:
    """The first rows of a csv, parquet or excel file. Raises NotShown."""
    try:
        import pandas as pd
    except ImportError:
        raise NotShown("previewing a table needs pandas: pip install 'datamake[data]'") from None
    total = None
    opts = {k: v for k, v in options.items()}
    if fmt == "parquet":
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            raise NotShown("previewing parquet needs pyarrow: pip install 'datamake[data]'") from None
        pf = pq.ParquetFile(f)
        total = pf.metadata.num_rows
        batches = list(_first(pf.iter_batches(batch_size=ROWS)))
        df = (pa.Table.from_batches(batches) if batches else pf.schema_arrow.empty_table()).to_pandas()
    elif fmt == "csv":
        df = pd.read_csv(f, nrows=ROWS, **_known(pd.read_csv, opts))
    else:
        try:
            import openpyxl  # noqa: F401
        except ImportError:
            raise NotShown("previewing excel needs openpyxl: pip install 'datamake[data]'") from None
        df = pd.read_excel(f, nrows=ROWS, **{"engine": "openpyxl", **_known(pd.read_excel, opts)})
    return frame(df, total)


def _first(it: Any) -> Any:
    for batch in it:
        yield batch
        return


def _known(fn: Any, options: dict[str, Any]) -> dict[str, Any]:
    import inspect

    try:
        names = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return options
    return {k: v for k, v in options.items() if k in names and k != "nrows"}


def frame(df: Any, total: int | None) -> dict[str, Any]:
    """A pandas DataFrame (or Series) as a table document."""
    if hasattr(df, "to_frame") and not hasattr(df, "columns"):
        df = df.to_frame()
    head = df.head(ROWS)
    columns = [{"name": str(c), "dtype": str(t)} for c, t in head.dtypes.items()]
    rows = [[_cell(v) for v in row] for row in head.itertuples(index=False, name=None)]
    return {"kind": "table", "columns": columns, "rows": rows,
            "total_rows": len(df) if total is None and len(df) > ROWS else total}


def _cell(v: Any) -> str:
    try:
        import pandas as pd

        if v is None or (not isinstance(v, (list, dict, tuple)) and pd.isna(v)):
            return ""
    except (ImportError, TypeError, ValueError):
        pass
    text = str(v)
    return text if len(text) <= MAX_CELL else text[:MAX_CELL] + "…"


def value(obj: Any) -> dict[str, Any]:
    """A value: a DataFrame as a table; else pretty JSON when it is JSON, else repr."""
    if type(obj).__module__.startswith("pandas") and hasattr(obj, "head"):
        return frame(obj, None)
    try:
        text = json.dumps(obj, indent=2, ensure_ascii=False, default=_not_json)
    except (TypeError, ValueError, RecursionError):
        import pprint

        text = pprint.pformat(obj, width=100, compact=True)
    return text_doc(text)


def _not_json(o: Any) -> Any:
    raise TypeError


def text_doc(text: str) -> dict[str, Any]:
    cut = len(text) > MAX_TEXT
    return {"kind": "value", "text": text[:MAX_TEXT] + ("\n…" if cut else ""), "truncated": cut}


def unpickle(data: bytes) -> Any:
    """A pickle's object, built only from SAFE_MODULES. Raises NotShown naming the
    class it would have to load otherwise."""
    class Safe(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> Any:
            if module == "builtins":
                found = getattr(__builtins__, name, None) if not isinstance(
                    __builtins__, dict) else __builtins__.get(name)
                if isinstance(found, type) and found not in (type, object):
                    return found  # set, frozenset, complex, slice...; never eval or getattr
            elif module.split(".", 1)[0] in SAFE_MODULES:
                return super().find_class(module, name)
            raise NotShown(f"a pickled `{module}.{name}`: not loaded here (loading it "
                           f"would run its code); `datamake.load(...)` in Python gives it")

    try:
        return Safe(io.BytesIO(data)).load()
    except NotShown:
        raise
    except Exception as e:  # noqa: BLE001 - a damaged or foreign pickle
        raise NotShown(f"not a readable pickle ({type(e).__name__})") from None


def pickled_class(data: bytes) -> str | None:
    """The first class a pickle names, without loading it (for messages)."""
    try:
        for op, arg, _ in pickletools.genops(io.BytesIO(data)):
            if op.name in ("GLOBAL",) and isinstance(arg, str):
                return arg.replace(" ", ".")
    except Exception:  # noqa: BLE001
        return None
    return None


def image(data: bytes, ext: str) -> dict[str, Any]:
    mime = _IMAGE_TYPES.get(ext.lower())
    if mime is None:
        raise NotShown(f"a {ext or 'binary'} file: no preview")
    if len(data) > MAX_BYTES:
        raise NotShown(f"an image of {len(data):,} bytes: too big to preview")
    return {"kind": "image", "src": f"data:{mime};base64," + base64.b64encode(data).decode()}


def html(data: bytes) -> dict[str, Any]:
    if len(data) > MAX_BYTES:
        raise NotShown(f"an HTML page of {len(data):,} bytes: too big to preview")
    return {"kind": "html", "html": data.decode("utf-8", "replace")}


def binary(data: bytes) -> dict[str, Any]:
    """The first bytes as a hex dump."""
    head = data[:512]
    lines = [f"{i:08x}  {head[i:i + 16].hex(' ')}" for i in range(0, len(head), 16)]
    return text_doc("\n".join(lines) + ("\n…" if len(data) > 512 else ""))


def folder_size(path: str, limit: int = 10_000) -> int:
    """The bytes of a folder's files (the first `limit` folders' worth)."""
    total = 0
    for i, (dirpath, _, files) in enumerate(os.walk(path)):
        for fn in files:
            with contextlib.suppress(OSError):
                total += os.stat(os.path.join(dirpath, fn)).st_size
        if i > limit:
            break
    return total


def files(path: str) -> dict[str, Any]:
    """A folder's first 200 files with their sizes (a `path` dataset's preview)."""
    out = []
    for dirpath, dirnames, names in os.walk(path):
        dirnames.sort()
        for fn in sorted(names):
            p = os.path.join(dirpath, fn)
            with contextlib.suppress(OSError):
                out.append({"name": os.path.relpath(p, path), "size": os.stat(p).st_size})
            if len(out) >= 200:
                return {"kind": "files", "files": out, "truncated": True}
    return {"kind": "files", "files": out, "truncated": False}
