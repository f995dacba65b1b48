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
    ".bin": "bytes",
}


class FormatError(Exception):
    """A value does not fit its dataset's format, or stored bytes cannot be read."""


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

    def load(self, f: BinaryIO, options: dict[str, Any]) -> Any:
        pd = _pandas("csv")

        check_options(pd.read_csv, pd.DataFrame.to_csv, options, "csv")
        return pd.read_csv(f, **_accepted(pd.read_csv, options))

    def save(self, value: Any, f: BinaryIO, options: dict[str, Any]) -> None:
        pd = _pandas("csv")

        check_options(pd.read_csv, pd.DataFrame.to_csv, options, "csv")
        opts = {"index": False, **_accepted(pd.DataFrame.to_csv, options)}
        _frame(value, "csv").to_csv(f, **opts)


class Parquet:
    extensions = (".parquet", ".pq")
    safe_to_load = True  # pyarrow >= 14.0.1: older ones unpickled extension types

    def load(self, f: BinaryIO, options: dict[str, Any]) -> Any:
        pd = _pandas("parquet")
        _engine("pyarrow", "parquet")

        return pd.read_parquet(f, **_accepted(pd.read_parquet, options))

    def save(self, value: Any, f: BinaryIO, options: dict[str, Any]) -> None:
        pd = _pandas("parquet")
        _engine("pyarrow", "parquet")

        _frame(value, "parquet").to_parquet(f, **_accepted(pd.DataFrame.to_parquet, options))


class Excel:
    extensions = (".xlsx", ".xls")
    safe_to_load = True

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
    safe_to_load = True
    sequential = True  # only calls f.write: hashed as it is written

    def load(self, f: BinaryIO, options: dict[str, Any]) -> Any:
        return f.read()

    def save(self, value: Any, f: BinaryIO, options: dict[str, Any]) -> None:
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise FormatError(f"a bytes dataset stores bytes, not `{type(value).__name__}`")
        f.write(value)


BUILTIN: dict[str, Any] = {
    "csv": Csv(), "parquet": Parquet(), "excel": Excel(), "json": Json(), "yaml": Yaml(),
    "pickle": Pickle(), "text": Text(), "html": Html(), "image": Image(), "bytes": Bytes(),
}


@functools.lru_cache(maxsize=1)
def _plugins() -> dict[str, Any]:
    from importlib.metadata import entry_points

    found: dict[str, Any] = {}
    for ep in entry_points(group="datamake.formats"):
        try:
            obj = ep.load()
        except Exception as e:  # a broken plugin must not break other formats
            raise FormatError(f"format plugin `{ep.name}` failed to load: {e}") from None
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
