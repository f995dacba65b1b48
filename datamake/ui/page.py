"""The page's HTML: served (its script and style fetched from the server, the token in
each URL) or self-contained (script, style, layout engine and data inlined, for the
static export)."""
from __future__ import annotations

import base64
import hashlib
import html
import json
from importlib import resources
from typing import Any

VENDOR = ("vendor/dagre.min.js",)  # classic scripts, before app.js

_BODY = """<header id="bar">
<span class="brand">datamake</span><span id="title"></span>
<span class="spacer"></span>
<input id="search" type="search" placeholder="Find a node (/)" list="names" autocomplete="off" aria-label="find a node">
<datalist id="names"></datalist>
<button id="zoom-out" title="Zoom out">&minus;</button><button id="zoom-in" title="Zoom in">+</button>
<button id="fit" title="Fit the graph">Fit</button>
<button id="build-all" class="primary live-only" title="Build the default target">Build</button>
<span id="conn" class="live-only">connecting…</span>
</header>
<div id="snapshot" hidden></div>
<div id="legend"></div>
<main id="main"><div id="canvas">
<svg id="graph" xmlns="http://www.w3.org/2000/svg"><defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path class="arrow" d="M0,0L10,5L0,10z"/></marker></defs><g id="viewport"></g></svg>
<pre id="error" hidden></pre>
</div><aside id="panel" hidden></aside></main>
<div id="toasts"></div>"""

# The served page: everything from this server, nothing inline but styles that
# reports shown in a frame carry (a frame's document inherits the page's policy).
CSP = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data:; connect-src 'self'; frame-src 'self'; base-uri 'none'; "
       "form-action 'none'")


def asset(name: str) -> bytes:
    """A file of the page (`app.js`, `style.css`, `vendor/...`) from the package."""
    return resources.files("datamake.ui").joinpath("static", name).read_bytes()


def served(title: str, token: str) -> str:
    """The live page: its files fetched from the server with the token."""
    t = html.escape(token, quote=True)
    scripts = "".join(f'<script src="static/{v}?token={t}"></script>\n' for v in VENDOR)
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f'<meta name="referrer" content="no-referrer">\n<link rel="icon" href="data:,">\n'
            f'<title>{html.escape(title)} — datamake</title>\n'
            f'<link rel="stylesheet" href="static/style.css?token={t}">\n</head><body>\n'
            f'{_BODY}\n{scripts}<script src="static/app.js?token={t}"></script>\n'
            f'</body></html>\n')


def _script_text(name: str) -> str:
    text = asset(name).decode("utf-8")
    # The map is not shipped; and no inlined script may close its own tag.
    text = "\n".join(ln for ln in text.split("\n") if not ln.startswith("//# sourceMappingURL="))
    assert "</script" not in text.lower()
    return text


def embed_json(data: Any) -> str:
    """JSON safe inside a <script> element: no `<`, `>` or `&` left to end it."""
    return (json.dumps(data, separators=(",", ":"), ensure_ascii=False)
            .replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def _sha(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode() + "'"


def standalone(title: str, data: dict[str, Any]) -> str:
    """The static page: one file, no network. Its policy lets run only its own two
    scripts (by their hashes), so nothing in the embedded data can become a script."""
    scripts = [_script_text(v) for v in VENDOR] + [_script_text("app.js")]
    style = asset("style.css").decode("utf-8")
    csp = ("default-src 'none'; script-src " + " ".join(_sha(s) for s in scripts) +
           "; style-src 'unsafe-inline'; img-src data:; frame-src 'self'; base-uri 'none'; "
           "form-action 'none'")
    inline = "".join(f"<script>{s}</script>\n" for s in scripts[:-1])
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">\n'
            f'<meta http-equiv="Content-Security-Policy" content="{html.escape(csp)}">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f'<link rel="icon" href="data:,">\n<title>{html.escape(title)} — datamake</title>\n'
            f'<style>{style}</style>\n</head><body>\n{_BODY}\n'
            f'<script type="application/json" id="datamake-data">{embed_json(data)}</script>\n'
            f'{inline}<script>{scripts[-1]}</script>\n</body></html>\n')
