"""The pipeline page: `datamake --ui` (a live local page) and the static export of
`--dag --format html|svg`.

Layout of this package, and the one rule it keeps: only `source.py` uses datamake's
internals (Project, graph, catalog, state, executor, explain). Everything else (the
server, the page's files, the export) talks to a `Source`, the interface written down in
`api.py` with the JSON documents it returns, so that a new core needs a new `source.py`
and nothing more.

- `api.py`: the `Source` protocol and its documents
- `source.py`: `LocalSource`, the Source of a Datafile on this machine
- `events.py`: what builds append to `.datamake/events` for an open page (imports
  nothing of datamake: the executor loads it only while a page is open)
- `live.py`: the events of the builds under way, for a page that opens mid-build
- `page.py`: the page's HTML, served or self-contained
- `server.py`: the web server (Starlette on uvicorn: the `ui` extra)
- `export.py`: the static page and the SVG picture (no server, no browser)
- `static/`: the page's JavaScript and CSS, and the vendored layout engine
"""
