"""`LocalSource`: the page's questions (see `api.py`) answered for a Datafile on this
machine. The one module of `datamake.ui` that uses datamake's internals — the project,
its graph, catalog and state, the executor's dry run, `--explain`'s wording — so that
porting the page onto another core means rewriting this file alone.

Each question opens the Datafile afresh (`Project` reads its parse cache, so this is
cheap) and plans a dry run: what the page shows is what a build would see now, whatever
other processes have built since. Questions are answered one at a time.

It is longer than most modules because it is the whole seam, on purpose: everything the
page needs from the core is here (and only that: reading files, highlighting and
previewing bytes live in `code.py` and `preview.py`).
"""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from . import code as code_mod
from . import events as events_mod
from . import preview as pv
from .api import Busy, NotFound, Unavailable

if TYPE_CHECKING:
    from ..outcomes import BuildResult, Outcome
    from ..project import Project

MAX_PARTITIONS = 500  # partitions listed in a panel or a preview
MAX_VERSIONS = 50  # versions (and their metrics) listed
MAX_PICKLE = 200 * 1024 * 1024  # a pickle larger than this is not read for a preview
MAX_EVENTS = 8 * 1024 * 1024  # the events file is emptied once read this far


class LocalSource:
    """The Source of a Datafile: `datafile` as the user named it (relative to the
    current folder), `params` the parameter overrides and `overrides` the same as typed
    (`NAME=VALUE`, passed on to the builds the page starts).

    `project` and `result`: an already loaded project and its dry run, for a one-off
    export (`--dag --format html`) of what `targets` need; the source then answers from
    them instead of opening the Datafile again."""

    def __init__(self, datafile: str = "Datafile", params: dict[str, Any] | None = None,
                 overrides: list[str] | tuple[str, ...] = (), *,
                 project: "Project | None" = None, result: "BuildResult | None" = None,
                 targets: list[str] | None = None):
        self.datafile = datafile
        self.params = dict(params or {})
        self.overrides = list(overrides)
        self.targets = list(targets) if targets else None
        self._given = project
        self._result = result
        self.cwd = os.getcwd()
        self.title = project.display if project is not None else datafile
        self._lock = threading.RLock()
        self._build_lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self._following = False

    # -- opening the Datafile ---------------------------------------------------------

    @contextlib.contextmanager
    def _project(self) -> Iterator["Project"]:
        if self._given is not None:
            yield self._given
            return
        from ..project import Project

        project = Project(self.datafile, params=self.params)
        try:
            yield project
        finally:
            project.close()

    def _plan(self, project: "Project", targets: list[str] | None = None) -> "BuildResult":
        if self._result is not None:  # an export: one dry run answers every question
            return self._result
        from ..executor import build
        from ..console import QuietReporter

        if targets is None:
            targets = self.targets or list(project.graph.rules)
        return build(project, targets, QuietReporter(), dry_run=True)

    @property
    def state_dir(self) -> Path:
        from ..state import STATE_DIR

        return Path(self.cwd, self.datafile).resolve().parent / STATE_DIR

    # -- the graph ----------------------------------------------------------------------

    def graph(self) -> dict[str, Any]:
        from ..errors import DatamakeError

        with self._lock:
            try:
                with self._project() as project:
                    return self._graph(project, self._plan(project))
            except DatamakeError as e:
                return {"title": self.title, "default": None, "error": _error_text(e),
                        "nodes": [], "edges": [], "namespaces": []}

    def _graph(self, project: "Project", result: "BuildResult") -> dict[str, Any]:
        from ..steps import split_step

        g = project.graph
        last = project.state.last_runs()
        steps_of: dict[str, list[str]] = {}
        for step in result.outcomes:
            steps_of.setdefault(split_step(step)[0], []).append(step)
        whole = self.targets is None
        if whole:
            shown = list(g.rules)
        else:
            shown = [r.name for r in g.needed(self.targets or [])]
        nodes: dict[str, dict[str, Any]] = {}
        edges: list[dict[str, Any]] = []
        seen_edges: set[tuple[str, str]] = set()

        def edge(a: str, b: str, pinned: str | None = None) -> None:
            if (a, b) not in seen_edges:
                seen_edges.add((a, b))
                edges.append({"from": a, "to": b, "pinned": pinned})

        def source_node(name: str) -> str:
            if name not in nodes:
                nodes[name] = self._dataset_node(project, name)
            return name

        def param_node(name: str) -> str:
            if name not in nodes:
                nodes[name] = _node(name, "param", "param",
                                    detail=_short(repr(project.params.get(name))))
            return name

        for name in shown:
            node = g.rules[name]
            nodes[name] = self._rule_node(project, name, steps_of.get(name, []), result, last)
            for inp, version in zip(node.inputs, node.versions):
                prod = g.producer.get(inp)
                edge(prod if prod is not None else source_node(inp), name, version)
            for p in node.params:
                edge(param_node(p), name)
        aliases = list(g.aliases) if whole else _aliases_reached(g, self.targets or [])
        for name in aliases:
            nodes[name] = _node(name, "alias", "alias", description=g.docs.get(name))
        for name in aliases:
            for inp in g.aliases[name]:
                if inp in g.aliases or inp in g.params:
                    src = param_node(inp) if inp in g.params else inp
                else:
                    src = g.producer.get(inp) or source_node(inp)
                if src in nodes:
                    edge(src, name)
        if whole:  # what nothing reads (a warning of --check) is part of the picture too
            for name, info in g.datasets.items():
                if info.declared and name not in g.producer:
                    source_node(name)
            for name in g.params:
                param_node(name)
        _alias_statuses(nodes, edges)
        namespaces: dict[str, dict[str, Any]] = {}
        for n in nodes.values():
            ns = n["ns"]
            while ns and ns not in namespaces:
                parent, _, label = ns.rpartition(".")
                namespaces[ns] = {"id": ns, "label": label, "parent": parent or None}
                ns = parent
        return {"title": self.title, "default": g.default, "error": None,
                "nodes": list(nodes.values()), "edges": edges,
                "namespaces": sorted(namespaces.values(), key=lambda n: n["id"])}

    def _rule_node(self, project: "Project", name: str, steps: list[str],
                   result: "BuildResult", last: dict[str, tuple[str, float]]) -> dict[str, Any]:
        g = project.graph
        node = g.rules[name]
        if node.key:
            statuses = [_step_status(result.outcomes[s], last.get(s)) for s in steps]
            counts = {"total": len(steps),
                      "stale": sum(1 for s, _ in statuses if s == "stale"),
                      "failed": sum(1 for s, _ in statuses if s == "failed")}
            reasons = sorted({c for _, rs in statuses for c in rs})
            kinds = {s for s, _ in statuses}
            status = ("failed" if "failed" in kinds else "stale" if "stale" in kinds
                      else "cached" if kinds == {"cached"} else "fresh")
            if not steps:
                status, reasons = "stale", ["upstream"]
            label = f"{name}[{len(steps)}]"
        else:
            o = result.outcomes.get(name)
            status, reasons = _step_status(o, last.get(name)) if o else ("stale", ["upstream"])
            counts, label = None, name
        return _node(name, "rule", status, label=label, reasons=reasons,
                     outputs=list(node.outputs), partitions=counts, pattern=bool(node.key),
                     description=g.docs.get(name))

    def _dataset_node(self, project: "Project", name: str) -> dict[str, Any]:
        from ..errors import CatalogError

        cat = project.catalog
        info = project.graph.datasets.get(name)
        label, detail = name, None
        try:
            if cat.is_partitioned(name):
                n = len(cat.partitions(name))
                exists, label = n > 0, f"{name}[{n}]"
            else:
                exists = cat.exists(name)
            detail = cat.format_of(name) + (" · versioned" if info and info.versioned else "")
        except (CatalogError, OSError, KeyError) as e:
            exists, detail = False, str(e)
        return _node(name, "dataset", "source" if exists else "missing", label=label,
                     detail=detail)

    # -- a node's panel -----------------------------------------------------------------

    @contextlib.contextmanager
    def _answering(self) -> Iterator["Project"]:
        """The project, one question at a time; datamake's errors as Unavailable."""
        from ..errors import DatamakeError

        with self._lock:
            try:
                with self._project() as project:
                    yield project
            except DatamakeError as e:
                raise Unavailable(_error_text(e)) from None

    def panel(self, node: str) -> dict[str, Any]:
        with self._answering() as project:
            g = project.graph
            rule = node if node in g.rules else g.producer.get(node)
            if rule is not None:
                return self._rule_panel(project, rule)
            if node in g.aliases:
                return self._alias_panel(project, node)
            if node in project.params:
                return self._param_panel(project, node)
            if node in g.datasets:
                return self._dataset_panel(project, node)
            raise NotFound(f"no node `{node}` in {self.title}")

    def _rule_panel(self, project: "Project", name: str) -> dict[str, Any]:
        from ..explain import explain_build
        from ..steps import split_step

        g = project.graph
        node = g.rules[name]
        result = self._plan(project, [name])
        last = project.state.last_runs()
        steps = [s for s in result.outcomes if split_step(s)[0] == name]
        built = self._rule_node(project, name, steps, result, last)
        info = project.recipes[name]
        lines = code_mod.file_lines(info.filename)
        n_body = len(info.text.rstrip("\n").split("\n"))
        header = code_mod.lines_of(lines, info.header_line, info.line - 1)
        body = code_mod.lines_of(lines, info.line, info.line + n_body - 1)
        if body is None or header is None:  # the file moved on: show what was parsed
            header, body = None, info.text.rstrip("\n")
        code_lines = code_mod.plain(header, info.header_line) if header else []
        code_lines += code_mod.highlight(body, info.line, info.kind)
        doc = _panel(name, "rule", built)
        doc["target"] = name
        doc["code"] = {"title": f"{info.filename}:{info.header_line}", "file": info.filename,
                       "lines": code_lines}
        doc["helpers"] = self._helpers(project, name, info.scope)
        doc["inputs"] = [self._data(project, n, pinned=v)
                         for n, v in zip(node.inputs, node.versions)]
        doc["outputs"] = [self._data(project, n) for n in node.outputs]
        doc["params"] = [{"name": p, "value": _short(repr(project.params.get(p)), 2000)}
                         for p in node.params]
        capture = _Capture()
        explain_build(project, result, capture, True)  # type: ignore[arg-type]
        details = capture.doc.get("explain", {}) if capture.doc else {}
        doc["explain"] = _explained(steps, result, details)
        failure = None
        for s in steps:
            o = result.outcomes[s]
            if o.status == "failed":
                failure = {"step": s, "text": o.error or "failed"}
                break
            text = project.state.failure(s) if last.get(s, ("",))[0] == "failed" else None
            if text:
                failure = {"step": s, "text": text}
                break
        doc["failure"] = failure
        if node.key:
            doc["partitions"] = [{"key": split_step(s)[1], "status": _step_status(
                result.outcomes[s], last.get(s))[0]} for s in steps[:MAX_PARTITIONS]]
        doc["history"] = [{"started": t, "status": st, "seconds": sec,
                           "peak_mb": None if kb is None else round(kb / 1024, 1)}
                          for t, st, sec, kb in project.state.history(steps[0] if steps else name, 10)]
        doc["readers"] = _readers(g, node.outputs)
        return doc

    def _alias_panel(self, project: "Project", name: str) -> dict[str, Any]:
        g = project.graph
        file, line, _ = g.spans.get(name, (None, 0, 0))
        result = self._plan(project, [name])
        stale = any(o.status != "fresh" for o in result.outcomes.values())
        node = _node(name, "alias", "stale" if stale else "fresh", description=g.docs.get(name),
                     reasons=["upstream"] if stale else [])
        doc = _panel(name, "alias", node)
        doc["target"] = name
        doc["code"] = code_mod.declaration(file, line)
        doc["inputs"] = [self._data(project, n) for n in g.aliases[name]
                         if n in g.datasets or n in g.producer]
        return doc

    def _param_panel(self, project: "Project", name: str) -> dict[str, Any]:
        import pprint

        doc = _panel(name, "param", _node(name, "param", "param"))
        doc["value"] = _short(pprint.pformat(project.params[name], width=80), pv.MAX_TEXT)
        span = next((p.span for p in project.model.params if p.name == name), None)
        doc["code"] = code_mod.declaration(span.file, span.line) if span else None
        doc["readers"] = [r for r, n in project.graph.rules.items() if name in n.params]
        return doc

    def _dataset_panel(self, project: "Project", name: str) -> dict[str, Any]:
        g = project.graph
        file, line, _ = g.spans.get(name, (None, 0, 0))
        doc = _panel(name, "dataset", self._dataset_node(project, name))
        doc["code"] = code_mod.declaration(file, line)
        doc["outputs"] = [self._data(project, name)]
        doc["readers"] = _readers(g, (name,))
        return doc

    def _data(self, project: "Project", name: str, pinned: str | None = None) -> dict[str, Any]:
        """A dataset as a panel lists it: where, how, how big, when built and how fast."""
        from ..errors import CatalogError

        g, cat = project.graph, project.catalog
        info = g.datasets.get(name)
        doc: dict[str, Any] = {"name": name, "location": None, "format": None, "exists": False,
                               "size": None, "modified": None, "built_at": None,
                               "seconds": None, "partitions": None,
                               "versioned": bool(info and info.versioned), "pinned": pinned,
                               "preview": False}
        if info is None:
            return doc
        try:
            loc = cat.location(name)
            doc["location"], doc["format"] = cat.shown(loc), loc.format
            if cat.is_partitioned(name):
                doc["partitions"] = len(cat.partitions(name))
                doc["exists"] = doc["partitions"] > 0
            elif loc.local:
                try:
                    st = os.stat(loc.url)
                except OSError:
                    pass
                else:
                    doc["exists"] = True
                    doc["modified"] = st.st_mtime
                    doc["size"] = pv.folder_size(loc.url) if os.path.isdir(loc.url) else st.st_size
            else:
                doc["exists"] = cat.exists(name)
        except (CatalogError, OSError, KeyError):
            pass
        prod = g.producer.get(name)
        if prod is not None and not g.rules[prod].key:
            rec = project.state.step(prod)
            if rec is not None:
                doc["built_at"], doc["seconds"] = rec.built_at, rec.seconds
        doc["preview"] = doc["exists"] or doc["versioned"]
        return doc

    def _helpers(self, project: "Project", rule: str, scope: str) -> list[dict[str, Any]]:
        """The definitions the recipe's fingerprint follows, at their own files' lines."""
        out = []
        texts = project.code_texts
        deps = project.graph.code_deps.get(rule, {})
        for label in sorted(deps, key=lambda s: (not s.startswith("python:"), s)):
            text = texts.get(deps[label])
            found = None
            if label.startswith("python:"):
                found = code_mod.in_blocks(project.python_blocks(scope), label[len("python:"):])
            elif not label.startswith("recipe:") and not label.endswith(":<module>"):
                found = code_mod.in_module([project.scope_folder(scope), project.root], label)
            if found is not None:
                file, first, snippet = found
                out.append({"title": f"{label}  ({file}:{first})", "file": file,
                            "lines": code_mod.highlight(snippet, first)})
            elif text is not None:
                out.append({"title": label, "file": None, "lines": code_mod.highlight(text, None)})
        return out

    # -- previews -------------------------------------------------------------------------

    def preview(self, name: str, key: str | None = None,
                version: str | None = None) -> dict[str, Any]:
        from ..errors import CatalogError

        with self._answering() as project:
            g, cat = project.graph, project.catalog
            info = g.datasets.get(name)
            if info is None:
                raise NotFound(f"no dataset `{name}` in {self.title}")
            doc: dict[str, Any] = {"name": name, "key": key, "location": None, "format": None,
                                   "keys": None, "total_keys": None, "versions": None}
            try:
                if cat.is_partitioned(name):
                    keys = sorted(cat.partitions(name))
                    doc["keys"], doc["total_keys"] = keys[:MAX_PARTITIONS], len(keys)
                    if key is None and keys:
                        key = doc["key"] = keys[0]
                    if key is None:
                        doc.update(_none("no partitions yet"))
                        return doc
                    if key not in keys:
                        raise NotFound(f"`{name}` has no partition `{key}`")
                elif key is not None:
                    raise NotFound(f"`{name}` is not partitioned")
                loc = cat.location(name, key)
                doc["location"], doc["format"] = cat.shown(loc), loc.format
                if info.versioned and key is None:
                    doc["versions"] = self._versions(project, name, loc.format)
                data = None
                if version is not None:
                    data = self._version_bytes(project, name, version)
                doc.update(self._content(project, loc, data))
            except CatalogError as e:
                doc.update(_none(str(e)))
            return doc

    def _version_bytes(self, project: "Project", name: str, spec: str) -> bytes:
        from ..versions import VersionError, resolve

        try:
            v = resolve(project.catalog.versions(name), spec)
        except VersionError as e:
            raise NotFound(e.told(f"`{name}`")) from None
        return project.catalog.read_version(name, v.url)

    def _versions(self, project: "Project", name: str, fmt: str) -> list[dict[str, Any]]:
        from ..errors import CatalogError
        from ..versions import metrics_of

        cat = project.catalog
        out = []
        for v in cat.versions(name)[-MAX_VERSIONS:]:
            metrics: dict[str, Any] = {}
            if fmt in ("html", "json"):
                try:
                    metrics = metrics_of(cat.read_version(name, v.url), fmt)
                except (CatalogError, ValueError, UnicodeDecodeError):
                    metrics = {}
            out.append({"id": v.id, "time": v.time.isoformat(), "digest": v.digest[:12],
                        "size": v.size, "metrics": metrics})
        return out

    def _content(self, project: "Project", loc: Any, data: bytes | None) -> dict[str, Any]:
        """What the stored value (or `data`, a version's bytes) looks like."""
        from .. import formats

        cat = project.catalog
        fmt = loc.format
        ext = os.path.splitext(loc.url.rstrip("/"))[1]

        def opened() -> Any:
            if data is not None:
                import io

                return io.BytesIO(data)
            if loc.local:
                return open(loc.url, "rb")
            return cat.fs(loc.url).open(loc.url, "rb")

        try:
            if fmt == formats.PATH:
                if data is None and loc.local and os.path.isdir(loc.url):
                    return pv.files(loc.url)
                with opened() as f:
                    return pv.binary(f.read(4096))
            if fmt in ("csv", "parquet", "excel"):
                with opened() as f:
                    return pv.table(fmt, f, dict(loc.options))
            if fmt == "pickle":
                if data is None and loc.local and os.path.getsize(loc.url) > MAX_PICKLE:
                    raise pv.NotShown("a pickle too big to preview")
                with opened() as f:
                    raw = f.read()
                return pv.value(pv.unpickle(raw))
            if fmt in ("json", "yaml"):
                with opened() as f:
                    return pv.value(formats.get(fmt).load(f, dict(loc.options)))
            if fmt == "text":
                with opened() as f:
                    return pv.text_doc(f.read(pv.MAX_TEXT * 4 + 1).decode(
                        loc.options.get("encoding", "utf-8"), "replace"))
            if fmt in ("html", "image", "bytes"):
                with opened() as f:
                    raw = f.read(pv.MAX_BYTES + 1)
                if fmt == "html":
                    return pv.html(raw)
                return pv.image(raw, ext) if fmt == "image" else pv.binary(raw)
            with opened() as f:  # a plugin's format: its own reader
                return pv.value(formats.get(fmt).load(f, dict(loc.options)))
        except FileNotFoundError:
            return _none("it does not exist yet")
        except pv.NotShown as e:
            return _none(str(e))
        except Exception as e:  # noqa: BLE001 - a preview that cannot be made says why
            return _none(f"cannot preview it: {type(e).__name__}: {e}")

    # -- builds ---------------------------------------------------------------------------

    def build(self, target: str | None) -> dict[str, Any]:
        from ..errors import DatamakeError

        with self._build_lock:
            if self._proc is not None and self._proc.poll() is None:
                raise Busy(f"a build started from this page (pid {self._proc.pid}) is still "
                           f"running: wait for it to end")
            if target is not None:
                with self._answering() as project:
                    try:
                        project.resolve_targets([target])
                    except DatamakeError as e:
                        raise NotFound(str(e)) from None
            argv = [sys.executable, "-m", "datamake", "-f", self.datafile, "--",
                    *([target] if target else []), *self.overrides]
            self._proc = subprocess.Popen(argv, cwd=self.cwd, stdin=subprocess.DEVNULL)
            threading.Thread(target=self._proc.wait, daemon=True).start()
            return {"target": target, "pid": self._proc.pid}

    # -- following builds -----------------------------------------------------------------

    def follow(self) -> None:
        d = self.state_dir
        holder = events_mod.page_pid(d)
        if holder is not None and (holder == os.getpid() or self._following):
            return
        if holder is not None:
            self._following = True  # another page's server keeps the marker: share it
            return
        try:
            d.mkdir(parents=True, exist_ok=True)
            if not self._following:  # the first page on this Datafile: a new events file
                with contextlib.suppress(FileNotFoundError):
                    os.truncate(d / events_mod.EVENTS, 0)
            tmp = d / f".{events_mod.MARKER}.{os.getpid()}.tmp"
            tmp.write_text(str(os.getpid()))
            os.replace(tmp, d / events_mod.MARKER)
        except OSError:
            return
        self._following = True

    def unfollow(self) -> None:
        d = self.state_dir
        try:
            if (d / events_mod.MARKER).read_text().strip() == str(os.getpid()):
                os.unlink(d / events_mod.MARKER)
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(d / events_mod.EVENTS)
        except (OSError, ValueError):
            pass
        self._following = False

    def events(self, cursor: Any) -> tuple[list[dict[str, Any]], Any]:
        path = self.state_dir / events_mod.EVENTS
        if cursor is None:
            try:
                st = os.stat(path)
            except OSError:
                return [], (0, None)
            return [], (st.st_size, st.st_ino)
        found, pos, ino = events_mod.tail(path, *cursor)
        if pos > MAX_EVENTS:
            pos = events_mod.truncate_read(path, pos, ino)
        return found, (pos, ino)


# -- helpers ------------------------------------------------------------------------------


def _node(id: str, kind: str, status: str, *, label: str | None = None,
          reasons: list[str] | None = None, outputs: list[str] | None = None,
          partitions: dict[str, int] | None = None, pattern: bool = False,
          description: str | None = None, detail: str | None = None) -> dict[str, Any]:
    ns = id.rpartition(".")[0]
    return {"id": id, "kind": kind, "label": label or id, "ns": ns, "status": status,
            "reasons": reasons or [], "outputs": outputs or [], "partitions": partitions,
            "pattern": pattern, "description": description, "detail": detail}


def _panel(id: str, kind: str, node: dict[str, Any]) -> dict[str, Any]:
    return {"id": id, "kind": kind, "label": node["label"], "status": node["status"],
            "reasons": node["reasons"], "description": node["description"],
            "target": None, "code": None, "helpers": [], "inputs": [], "outputs": [],
            "params": [], "explain": [], "failure": None, "partitions": None,
            "history": [], "readers": [], "value": None}


def _step_status(o: "Outcome", last: tuple[str, float] | None) -> tuple[str, list[str]]:
    """A step's status on the page: the dry run's verdict, told apart by its last run
    (a stale step whose last run failed is `failed`; a fresh one restored from a cache
    by its last run is `cached`)."""
    codes = list(dict.fromkeys(r.code for r in o.reasons))
    if o.status == "fresh":
        return ("cached" if last and last[0] == "cached" else "fresh"), []
    if o.status == "planned":
        return ("failed" if last and last[0] == "failed" else "stale"), codes
    if o.status == "failed":
        return "failed", codes
    return "stale", codes or ["upstream"]  # skipped: after a failure upstream


def _alias_statuses(nodes: dict[str, dict[str, Any]], edges: list[dict[str, Any]]) -> None:
    """An alias is stale when anything it names is not up to date."""
    into: dict[str, list[str]] = {}
    for e in edges:
        into.setdefault(e["to"], []).append(e["from"])
    done: dict[str, str] = {}

    def status(n: str, depth: int = 0) -> str:
        node = nodes[n]
        if node["kind"] != "alias":
            return node["status"]
        if n not in done:
            done[n] = "fresh"  # a guard: aliases have no cycles, the graph checked
            ups = [status(u, depth + 1) for u in into.get(n, [])]
            done[n] = "stale" if any(s in ("stale", "failed", "missing") for s in ups) else "fresh"
        return done[n]

    for n, node in nodes.items():
        if node["kind"] == "alias":
            node["status"] = status(n)
            if node["status"] == "stale":
                node["reasons"] = ["upstream"]


def _aliases_reached(g: Any, targets: list[str]) -> list[str]:
    from ..steps import split_step

    out, stack = [], [split_step(t)[0] for t in targets]
    while stack:
        n = stack.pop()
        if n in g.aliases and n not in out:
            out.append(n)
            stack.extend(g.aliases[n])
    return out


def _readers(g: Any, names: tuple[str, ...]) -> list[str]:
    return [r for r, n in g.rules.items() if any(x in n.inputs for x in names)] + [
        a for a, ins in g.aliases.items() if any(x in ins for x in names)]


def _explained(steps: list[str], result: "BuildResult",
               details: dict[str, list[str]]) -> list[dict[str, Any]]:
    """--explain's lines for the stale steps (a pattern rule's partitions grouped by
    identical explanations)."""
    groups: dict[tuple[str, ...], list[str]] = {}
    for s in steps:
        if result.outcomes[s].status in ("planned", "failed", "skipped") and s in details:
            groups.setdefault(tuple(details[s]), []).append(s)
    out = []
    for lines, members in groups.items():
        step = members[0] if len(members) == 1 else f"{members[0]} and {len(members) - 1} more"
        out.append({"step": step, "lines": list(lines)})
    return out


class _Capture:
    """A reporter that keeps the one document `explain_build` hands it."""

    json = True

    def __init__(self) -> None:
        self.doc: dict[str, Any] | None = None

    def document(self, doc: dict[str, Any]) -> None:
        self.doc = doc

    def print(self, text: str) -> None:
        pass


def _error_text(e: Exception) -> str:
    from ..diagnostics import render
    from ..errors import DatafileError

    if isinstance(e, DatafileError):
        return "".join(render(d) for d in e.diagnostics)
    help_ = getattr(e, "help", None)
    return f"datamake: error: {e}" + (f"\nhelp: {help_}" if help_ else "")


def _none(message: str) -> dict[str, Any]:
    return {"kind": "none", "text": message, "truncated": False}


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
