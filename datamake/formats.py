"""Dataset formats: how a value is read from and written to a binary file.

Built-in formats import pandas, pyarrow, openpyxl or matplotlib only when used. More
formats plug in through the `datamake.formats` entry-point group: each entry point
names an object with `load(file, options)`, `save(value, file, options)` and an
optional `extensions` tuple. A format whose `save` only ever calls `file.write` may say
`sequential = True`: its bytes are then hashed as they are written, not read back.

A format whose `load` cannot run code whatever the bytes (it parses data: no pickle, no
import, no eval) may say `safe_to_load = True`: its datasets may then be restored from a
shared cache that is not authenticated by a team key. Pickle, `path` datasets (the
recipe opens them with any library) and plugin formats that do not say so are restored
only from the local cache or an authenticated shared one.

Over 500 lines: one short reader and writer per format, and the registry.
"""
from __future__ import annotations

import functools
import json
import pickle
from typing import Any, BinaryIO, Callable

PATH = "path"  # not a codec: the recipe reads or writes the location itself

EXTENSIONS = {
    ".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".xlsx": "excel",
    ".xls": "excel", ".json": "json", ".yaml": "yaml", ".yml": "yaml", ".pkl": "pickle",
    ".pickle": "pickle", ".txt": "text", ".md": "text", ".html": "html", ".htm": "html",
    ".png": "image", ".svg": "image", ".jpg": "image", ".jpeg": "image", ".pdf": "image",
    ".bin": "bytes", ".feather": "feather", ".arrow": "feather", ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}

# A last extension that says how the file is compressed; the one before it says the
# format (`table.csv.gz`: csv, gzip). Any format but `path` can be compressed.
COMPRESSIONS = {".gz": "gzip", ".bz2": "bz2", ".xz": "xz"}


def split_extension(location: str) -> tuple[str, str | None]:
    """(the format's extension, the compression) of a location's last part:
    `t.csv.gz` -> (".csv", "gzip"), `t.csv` -> (".csv", None)."""
    base = location.rstrip("/").rsplit("/", 1)[-1].lower()
    stem, dot, ext = base.rpartition(".")
    if not dot or not stem:
        return "", None
    compression = COMPRESSIONS.get("." + ext)
    if compression is None:
        return "." + ext, None
    stem2, dot2, ext2 = stem.rpartition(".")
    return ("." + ext2 if dot2 and stem2 else ""), compression


def extensions() -> list[str]:
    """Every extension that names a format (built in and plugins), sorted."""
    found = set(EXTENSIONS)
    for fmt in _plugins().values():
        found.update(e.lower() for e in getattr(fmt, "extensions", ()))
    return sorted(found)


class FormatError(Exception):
    """A value does not fit its dataset's format, or stored bytes cannot be read."""


class PluginError(FormatError):
    """A format plugin failed to load (told as `format-plugin-broken`)."""

    def __init__(self, plugin: str, reason: str):
        from .messages import text

        super().__init__(text("format-plugin-broken", plugin=plugin, reason=reason)[0])
        self.plugin = plugin
        self.reason = reason


def _accepted(fn: Callable, options: dict[str, Any]) -> dict[str, Any]:
    """The options `fn` accepts (so one option list can serve a reader and a writer)."""
    params = _parameters(fn)
    if params is None:
        return dict(options)
    return {k: v for k, v in options.items() if k in params}


@functools.lru_cache(maxsize=None)
def _parameters(fn: Callable) -> frozenset[str] | None:
    import inspect

    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    if any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
        return None
    return frozenset(sig.parameters)


def options_of(name: str) -> frozenset[str] | None:
    """The options format `name` takes (its reader's and writer's named parameters), or
    None when they cannot be known (a writer that takes any keyword, a plugin that does
    not say). Imports the format's library (pandas): for `--check`, not for builds."""
    fmt = BUILTIN.get(name)
    if fmt is None:
        try:
            fmt = get(name)
        except FormatError:
            return None
        names = getattr(fmt, "option_names", None)
        return frozenset(names) if names is not None else None
    own = getattr(fmt, "option_names", None)
    if own is not None:
        return frozenset(own)
    pair = getattr(fmt, "signatures", None)
    if pair is None:
        return None
    r, w = (_parameters(f) for f in pair())
    if r is None or w is None:
        return None
    return (r | w) - {"self", "path_or_buf", "filepath_or_buffer", "path", "io",
                      "excel_writer", "buf", "f"}


def check_options(reader: Callable, writer: Callable, options: dict[str, Any], fmt: str) -> None:
    """Raise FormatError for an option neither the reader nor the writer accepts."""
    r, w = _parameters(reader), _parameters(writer)
    if r is None or w is None:
        return
    for k in options:
        if k not in r and k not in w:
            raise FormatError(f"format `{fmt}` has no option `{k}`")


def _pandas(fmt: str):
    """pandas, for the `fmt` format (MissingExtraError naming the extra when absent)."""
    from .extras import require

    return require("pandas", f"the {fmt} format")


def _engine(module: str, fmt: str) -> None:
    """The library pandas hands the `fmt` format to, checked before pandas says it its way."""
    from .extras import require

    require(module, f"the {fmt} format")


def _frame(value: Any, fmt: str):
    pd = _pandas(fmt)

    if isinstance(value, pd.Series):
        return value.to_frame()
    if not isinstance(value, pd.DataFrame):
        raise FormatError(f"a {fmt} dataset stores a pandas DataFrame, not "
                          f"`{type(value).__name__}`")
    return value


class Csv:
    extensions = (".csv",)
    safe_to_load = True

    @staticmethod
    def signatures():
        import pandas as pd

        return pd.read_csv, pd.DataFrame.to_csv

    def load(self, f: BinaryIO, options: dict[str, Any]) -> Any:
        pd = _pandas("csv")

        check_options(pd.read_csv, pd.DataFrame.to_csv, options, "csv")
        return pd.read_csv(f, **_accepted(pd.read_csv, options))

    def save(self, value: Any, f: BinaryIO, options: dict[str, Any]) -> None:
        pd = _pandas("csv")

        check_options(pd.read_csv, pd.DataFrame.to_csv, options, "csv")
        opts = {"index": False, **_accepted(pd.DataFrame.to_csv, options)}
        _frame(value, "csv").to_csv(f, **opts)


_PARQUET_WRITE_ONLY = frozenset({"compression", "compression_level", "index", "row_group_size",
                                 "partition_cols", "use_dictionary", "data_page_size",
                                 "write_statistics", "version", "coerce_timestamps"})


class Parquet:
    extensions = (".parquet", ".pq")
    safe_to_load = True  # pyarrow >= 14.0.1: older ones unpickled extension types

    def load(self, f: BinaryIO, options: dict[str, Any]) -> Any:
        pd = _pandas("parquet")
        _engine("pyarrow", "parquet")

        # Both take **kwargs (passed on to pyarrow): the writer's own options stay out.
        opts = {k: v for k, v in options.items() if k not in _PARQUET_WRITE_ONLY}
        return pd.read_parquet(f, **_accepted(pd.read_parquet, opts))

    def save(self, value: Any, f: BinaryIO, options: dict[str, Any]) -> None:
        pd = _pandas("parquet")
        _engine("pyarrow", "parquet")

        _frame(value, "parquet").to_parquet(f, **_accepted(pd.DataFrame.to_parquet, options))


class Excel:
    extensions = (".xlsx", ".xls")
    safe_to_load = True

    @staticmethod
    def signatures():
        import pandas as pd

        return pd.read_excel, pd.DataFrame.to_excel

    def load(self, f: BinaryIO, options: dict[str, Any]) -> Any:
        pd = _pandas("excel")
        _engine("openpyxl", "excel")

        check_options(pd.read_excel, pd.DataFrame.to_excel, options, "excel")
        return pd.read_excel(f, **{"engine": "openpyxl", **_accepted(pd.read_excel, options)})

    def save(self, value: Any, f: BinaryIO, options: dict[str, Any]) -> None:
        pd = _pandas("excel")
        _engine("openpyxl", "excel")

        check_options(pd.read_excel, pd.DataFrame.to_excel, options, "excel")
        opts = {"index": False, "engine": "openpyxl", **_accepted(pd.DataFrame.to_excel, options)}
        _frame(value, "excel").to_excel(f, **opts)


def _json_default(o: Any) -> Any:
    # numpy and pandas scalars and arrays: the values metrics usually are.
    if hasattr(o, "item") and callable(o.item) and getattr(o, "ndim", 1) == 0:
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    if hasattr(o, "to_dict"):
        return o.to_dict()
    if isinstance(o, (set, frozenset)):
        return sorted(o)
    raise TypeError(f"`{type(o).__name__}` is not JSON serialisable")


class Json:
    extensions = (".json",)
    safe_to_load = True
    sequential = True  # only calls f.write: hashed as it is written

    def load(self, f: BinaryIO, options: dict[str, Any]) -> Any:
        return json.load(f)

    def save(self, value: Any, f: BinaryIO, options: dict[str, Any]) -> None:
        try:
            text = json.dumps(value, default=_json_default, **{"indent": 2, **options})
        except TypeError as e:
            raise FormatError(f"cannot save as json: {e}") from None
        f.write(text.encode("utf-8") + b"\n")


class Yaml:
    extensions = (".yaml", ".yml")
    safe_to_load = True
    sequential = True  # only calls f.write: hashed as it is written

    def load(self, f: BinaryIO, options: dict[str, Any]) -> Any:
        import yaml

        return yaml.safe_load(f)

    def save(self, value: Any, f: BinaryIO, options: dict[str, Any]) -> None:
        import yaml

        try:
            text = yaml.safe_dump(value, **{"sort_keys": False, **options})
        except yaml.YAMLError as e:
            raise FormatError(f"cannot save as yaml: {e}") from None
        f.write(text.encode("utf-8"))


class Pickle:
    extensions = (".pkl", ".pickle")
    option_names = ("protocol",)
    safe_to_load = False  # unpickling runs whatever code the bytes name
    sequential = True  # only calls f.write: hashed as it is written

    def load(self, f: BinaryIO, options: dict[str, Any]) -> Any:
        return pickle.load(f)

    def save(self, value: Any, f: BinaryIO, options: dict[str, Any]) -> None:
        try:
            pickle.dump(value, f, protocol=options.get("protocol", pickle.HIGHEST_PROTOCOL))
        except (pickle.PicklingError, TypeError, AttributeError) as e:
            raise FormatError(f"cannot pickle a `{type(value).__name__}`: {e}") from None


class Text:
    extensions = (".txt", ".md")
    option_names = ("encoding",)
    safe_to_load = True
    sequential = True  # only calls f.write: hashed as it is written

    def load(self, f: BinaryIO, options: dict[str, Any]) -> Any:
        return f.read().decode(options.get("encoding", "utf-8"))

    def save(self, value: Any, f: BinaryIO, options: dict[str, Any]) -> None:
        if not isinstance(value, str):
            raise FormatError(f"a text dataset stores a str, not `{type(value).__name__}`")
        f.write(value.encode(options.get("encoding", "utf-8")))


class Html:
    extensions = (".html", ".htm")
    option_names = ()
    safe_to_load = True
    sequential = True  # only calls f.write: hashed as it is written

    def load(self, f: BinaryIO, options: dict[str, Any]) -> Any:
        return f.read().decode("utf-8")

    def save(self, value: Any, f: BinaryIO, options: dict[str, Any]) -> None:
        f.write(to_html(value).encode("utf-8"))


def to_html(value: Any) -> str:
    """HTML for a str, a Report, a matplotlib Figure or a DataFrame."""
    if isinstance(value, str):
        return value
    if hasattr(value, "to_html") and hasattr(value, "metrics"):  # a datamake Report
        return value.to_html()
    from .report import Report

    if type(value).__name__ == "Figure" and hasattr(value, "savefig"):
        r = Report("Figure")
        r.figure(value)
        return r.to_html()
    if hasattr(value, "to_html"):
        r = Report("Table")
        r.table(value)
        return r.to_html()
    raise FormatError(f"an html dataset stores a str, a Report, a Figure or a DataFrame, "
                      f"not `{type(value).__name__}`")


class Image:
    extensions = (".png", ".svg", ".jpg", ".jpeg", ".pdf")
    safe_to_load = True

    def load(self, f: BinaryIO, options: dict[str, Any]) -> Any:
        return f.read()

    def save(self, value: Any, f: BinaryIO, options: dict[str, Any]) -> None:
        if isinstance(value, (bytes, bytearray)):
            f.write(value)
            return
        if not hasattr(value, "savefig"):
            raise FormatError(f"an image dataset stores a matplotlib Figure or bytes, not "
                              f"`{type(value).__name__}`")
        opts = {k: v for k, v in options.items() if k != "ext"}
        fmt = options.get("ext", ".png").lstrip(".") or "png"
        value.savefig(f, format=fmt, **{"bbox_inches": "tight", **opts})


class Bytes:
    extensions = (".bin",)
    option_names = ()
    safe_to_load = True
    sequential = True  # only calls f.write: hashed as it is written

    def load(self, f: BinaryIO, options: dict[str, Any]) -> Any:
        return f.read()

    def save(self, value: Any, f: BinaryIO, options: dict[str, Any]) -> None:
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise FormatError(f"a bytes dataset stores bytes, not `{type(value).__name__}`")
        f.write(value)


class Feather:
    """Feather (Arrow IPC files): `.feather`, `.arrow`."""

    extensions = (".feather", ".arrow")
    safe_to_load = True

    @staticmethod
    def signatures():
        import pandas as pd

        return pd.read_feather, pd.DataFrame.to_feather

    def load(self, f: BinaryIO, options: dict[str, Any]) -> Any:
        import pandas as pd

        check_options(pd.read_feather, pd.DataFrame.to_feather, options, "feather")
        return pd.read_feather(f, **_accepted(pd.read_feather, options))

    def save(self, value: Any, f: BinaryIO, options: dict[str, Any]) -> None:
        import pandas as pd

        check_options(pd.read_feather, pd.DataFrame.to_feather, options, "feather")
        frame = _frame(value, "feather")
        # Arrow IPC files hold no index: a default one is dropped, any other kept.
        if not isinstance(frame.index, pd.RangeIndex) or frame.index.start != 0 or \
                frame.index.step != 1:
            frame = frame.reset_index()
        frame.to_feather(f, **_accepted(pd.DataFrame.to_feather, options))


class JsonLines:
    """JSON Lines: one JSON value a line. Stores a list (or a DataFrame, as its
    records); loads a list."""

    extensions = (".jsonl", ".ndjson")
    option_names = ()
    safe_to_load = True
    sequential = True  # only calls f.write: hashed as it is written

    def load(self, f: BinaryIO, options: dict[str, Any]) -> Any:
        out = []
        for n, line in enumerate(f.read().decode("utf-8").splitlines(), 1):
            if line.strip():
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise FormatError(f"line {n} is not JSON: {e.msg}") from None
        return out

    def save(self, value: Any, f: BinaryIO, options: dict[str, Any]) -> None:
        if hasattr(value, "to_dict") and hasattr(value, "columns"):  # a DataFrame
            value = value.to_dict(orient="records")
        if not isinstance(value, (list, tuple)):
            raise FormatError(f"a jsonl dataset stores a list (one line per item) or a "
                              f"DataFrame, not `{type(value).__name__}`")
        try:
            for item in value:
                f.write(json.dumps(item, default=_json_default).encode("utf-8") + b"\n")
        except TypeError as e:
            raise FormatError(f"cannot save as jsonl: {e}") from None


class Compressed:
    """A format read and written through a compression (gzip, bz2, xz), chosen by the
    location's last extension. Compressed bytes are the same for the same value (no
    time stamp in the gzip header), so a rebuild that gives the same value is seen so."""

    def __init__(self, inner: Any, compression: str):
        self.inner, self.compression = inner, compression
        self.sequential = getattr(inner, "sequential", False)
        self.safe_to_load = getattr(inner, "safe_to_load", False)

    def _open(self, f: BinaryIO, mode: str):
        if self.compression == "gzip":
            import gzip

            return gzip.GzipFile(filename="", mode=mode, fileobj=f, mtime=0)
        if self.compression == "bz2":
            import bz2

            return bz2.BZ2File(f, mode)
        import lzma

        return lzma.LZMAFile(f, mode)

    def load(self, f: BinaryIO, options: dict[str, Any]) -> Any:
        import io

        try:
            with self._open(f, "rb") as z:
                data = z.read()
        except (OSError, EOFError) as e:  # gzip.BadGzipFile, lzma.LZMAError... are OSErrors
            raise FormatError(f"cannot decompress ({self.compression}): {e}") from None
        return self.inner.load(io.BytesIO(data), options)

    def save(self, value: Any, f: BinaryIO, options: dict[str, Any]) -> None:
        with self._open(f, "wb") as z:
            self.inner.save(value, z, options)


BUILTIN: dict[str, Any] = {
    "csv": Csv(), "parquet": Parquet(), "excel": Excel(), "json": Json(), "yaml": Yaml(),
    "pickle": Pickle(), "text": Text(), "html": Html(), "image": Image(), "bytes": Bytes(),
    "feather": Feather(), "jsonl": JsonLines(),
}


def codec(name: str, compression: str | None = None) -> Any:
    """The format called `name`, read and written through `compression` when given.
    Raises FormatError when there is none."""
    fmt = get(name)
    return Compressed(fmt, compression) if compression else fmt


@functools.lru_cache(maxsize=1)
def _plugins() -> dict[str, Any]:
    from importlib.metadata import entry_points

    found: dict[str, Any] = {}
    for ep in entry_points(group="datamake.formats"):
        try:
            obj = ep.load()
        except Exception as e:  # a broken plugin must not break other formats
            raise PluginError(ep.name, str(e)) from None
        found[ep.name] = obj() if isinstance(obj, type) else obj
    return found


def known() -> list[str]:
    """Every format name: built in, `path`, and plugins."""
    return sorted(set(BUILTIN) | {PATH} | set(_plugins()))


def get(name: str) -> Any:
    """The format called `name`. Raises FormatError when there is none."""
    fmt = BUILTIN.get(name)
    if fmt is not None:
        return fmt
    fmt = _plugins().get(name)
    if fmt is None:
        raise FormatError(f"unknown format `{name}`")
    return fmt


def safe_to_load(name: str) -> bool:
    """Whether loading a dataset of format `name` can never run code (see above)."""
    if name == PATH:
        return False
    try:
        return getattr(get(name), "safe_to_load", False) is True
    except FormatError:
        return False


def for_extension(ext: str) -> str:
    """The format name for a file extension (`path` when none claims it)."""
    name = EXTENSIONS.get(ext.lower())
    if name is not None:
        return name
    if ext:
        for pname, fmt in _plugins().items():
            if ext.lower() in tuple(getattr(fmt, "extensions", ())):
                return pname
    return PATH
