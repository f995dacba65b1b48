"""The page's web server: Starlette on uvicorn (the `ui` extra), on 127.0.0.1 only.

Who may use it: whoever has the URL it prints, whose random token every request must
carry (the page sends it in a header, its event stream in the query). A request with
another Host than 127.0.0.1 or localhost is refused too, so that a web page that gets a
name of its own to resolve to 127.0.0.1 (DNS rebinding) cannot read the answers.

What it serves: the page, its files, and the answers of a `Source` (see `api.py`) as
JSON; builds' events are pushed to open pages as server-sent events, tailed from the
source ten times a second.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import socket
import sys
import threading
import time
from typing import Any, Callable
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from . import page
from .api import Busy, NotFound, Source, Unavailable
from .events import alive
from .live import Live

HOSTS = ("127.0.0.1", "localhost")
POLL = 0.1  # seconds between two looks at the events file
PING = 15.0  # seconds of silence before the event stream says it is still there
_ASSETS = {"app.js": "text/javascript; charset=utf-8", "style.css": "text/css; charset=utf-8",
           "vendor/dagre.min.js": "text/javascript; charset=utf-8"}
_HEADERS = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"),
            (b"x-frame-options", b"DENY"), (b"cache-control", b"no-store"),
            (b"content-security-policy", page.CSP.encode())]


def host_allowed(host: str) -> bool:
    """Whether a Host header names this machine's loopback as the page does."""
    if host.startswith("["):
        name = host[: host.find("]") + 1]
    else:
        name = host.rsplit(":", 1)[0] if ":" in host else host
    return name.lower() in HOSTS


class Guard:
    """Refuses (403) requests with another Host, or without the token; adds the
    page's security headers to every answer."""

    def __init__(self, app: Any, token: str):
        self.app = app
        self.token = token.encode()

    def refused(self, scope: dict[str, Any]) -> str | None:
        headers = dict(scope.get("headers") or [])
        if not host_allowed(headers.get(b"host", b"").decode("latin-1")):
            return "datamake: this page answers to 127.0.0.1 and localhost only"
        given = headers.get(b"x-datamake-token")
        if given is None:
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            given = (query.get("token") or [""])[0].encode()
        if not secrets.compare_digest(given, self.token):
            return "datamake: this page needs the token of the URL `datamake --ui` printed"
        return None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        reason = self.refused(scope)

        async def send_with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message = dict(message, headers=list(message.get("headers", [])) + _HEADERS)
            await send(message)

        if reason is not None:
            await PlainTextResponse(reason, status_code=403)(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)


class ListenError(Exception):
    """The port cannot be had (in use, or not allowed): told as `port-unavailable`."""

    def __init__(self, port: int, reason: str):
        super().__init__(f"127.0.0.1:{port}: {reason}")
        self.port = port
        self.reason = reason


class PageServer:
    """The server of one Source, on 127.0.0.1:`port` (0: a free port), in a thread."""

    def __init__(self, source: Source, port: int = 0, token: str | None = None):
        import uvicorn

        self.source = source
        self.token = token or secrets.token_urlsafe(24)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.sock.bind(("127.0.0.1", port))  # loopback only, never another interface
            self.sock.listen(64)
        except OSError as e:
            self.sock.close()
            raise ListenError(port, e.strerror) from None
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/?token={self.token}"
        self.live = Live()
        self.cursor: Any = None
        self.subscribers: set[asyncio.Queue] = set()
        self.stopping = threading.Event()
        config = uvicorn.Config(self.app(), log_level="warning", access_log=False,
                                lifespan="on", timeout_graceful_shutdown=2)
        self.server = uvicorn.Server(config)
        self.thread: threading.Thread | None = None

    # -- the application ----------------------------------------------------------------

    def app(self) -> Any:
        routes = [
            Route("/", self.index),
            Route("/static/{name:path}", self.asset),
            Route("/api/graph", self.graph),
            Route("/api/panel", self.panel),
            Route("/api/preview", self.preview),
            Route("/api/build", self.build, methods=["POST"]),
            Route("/api/events", self.events),
        ]
        app = Starlette(routes=routes, lifespan=self.lifespan)
        return Guard(app, self.token)

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Any) -> Any:
        await run_in_threadpool(self.source.follow)
        _, self.cursor = await run_in_threadpool(self.source.events, None)
        task = asyncio.create_task(self.tail())
        try:
            yield
        finally:
            task.cancel()

    async def index(self, request: Request) -> Response:
        return Response(page.served(self.source.title, self.token),
                        media_type="text/html; charset=utf-8")

    async def asset(self, request: Request) -> Response:
        name = request.path_params["name"]
        kind = _ASSETS.get(name)
        if kind is None:
            return PlainTextResponse("not found", status_code=404)
        return Response(page.asset(name), media_type=kind)

    async def graph(self, request: Request) -> Response:
        doc = await self.ask(self.source.graph)
        if isinstance(doc, dict):
            doc.update(live=self.live.replay(), generation=self.live.generation, now=time.time())
        return _json(doc)

    async def panel(self, request: Request) -> Response:
        return _json(await self.ask(self.source.panel, _param(request, "id")))

    async def preview(self, request: Request) -> Response:
        q = request.query_params
        return _json(await self.ask(self.source.preview, _param(request, "name"),
                                    q.get("key"), q.get("version")))

    async def build(self, request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("target"), (str, type(None))):
            return _error(400, 'send {"target": NAME or null}')
        return _json(await self.ask(self.source.build, body["target"]), status=202)

    async def ask(self, fn: Callable[..., Any], *args: Any) -> Any:
        """A Source's answer, asked in a worker thread; its refusals as HTTP errors."""
        try:
            return await run_in_threadpool(fn, *args)
        except NotFound as e:
            return _Err(404, str(e))
        except Busy as e:
            return _Err(409, str(e))
        except Unavailable as e:
            return _Err(503, str(e))
        except _BadRequest as e:
            return _Err(400, str(e))
        except Exception as e:  # noqa: BLE001 - one line for the terminal, none for the page
            print(f"datamake: the page's question failed: {type(e).__name__}: {e}",
                  file=sys.stderr)
            return _Err(500, f"{type(e).__name__}: {e}")

    # -- live events --------------------------------------------------------------------

    async def tail(self) -> None:
        last_check = time.monotonic()
        while True:
            try:
                found, self.cursor = await run_in_threadpool(self.source.events, self.cursor)
                for ev in found:
                    self.live.apply(ev)
                    self.broadcast(ev)
                if time.monotonic() - last_check >= 1.0:
                    last_check = time.monotonic()
                    await run_in_threadpool(self.source.follow)
                    for ev in self.live.reap(alive):
                        self.broadcast(ev)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - the page keeps working without events
                print(f"datamake: reading builds' events failed: {e}", file=sys.stderr)
            await asyncio.sleep(POLL)

    def broadcast(self, ev: dict[str, Any]) -> None:
        for q in list(self.subscribers):
            try:
                q.put_nowait(ev)
            except asyncio.QueueFull:
                self.subscribers.discard(q)  # a page that stopped reading

    async def events(self, request: Request) -> Response:
        q: asyncio.Queue = asyncio.Queue(maxsize=100_000)
        self.subscribers.add(q)

        async def stream() -> Any:
            try:
                yield _sse({"event": "hello", "generation": self.live.generation})
                for ev in self.live.replay():
                    yield _sse(ev)
                quiet = 0.0
                while not self.stopping.is_set():
                    try:
                        ev = await asyncio.wait_for(q.get(), timeout=0.5)
                    except asyncio.TimeoutError:
                        quiet += 0.5
                        if quiet >= PING:
                            quiet = 0.0
                            yield ": still here\n\n"
                        continue
                    quiet = 0.0
                    yield _sse(ev)
            finally:
                self.subscribers.discard(q)

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"X-Accel-Buffering": "no"})

    # -- running ----------------------------------------------------------------------

    def start(self) -> None:
        """Serve in a thread; returns once the server accepts connections."""
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]},
                                       name="datamake-ui", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the page's server did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self.stopping.set()
        self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(timeout=15)
        self.sock.close()
        self.source.unfollow()


class _BadRequest(Exception):
    pass


class _Err:
    def __init__(self, status: int, message: str):
        self.status = status
        self.message = message


def _param(request: Request, name: str) -> str:
    value = request.query_params.get(name)
    if value is None:
        raise _BadRequest(f"missing `{name}`")
    return value


def _json(doc: Any, status: int = 200) -> Response:
    if isinstance(doc, _Err):
        return _error(doc.status, doc.message)
    try:
        text = json.dumps(doc, default=str, allow_nan=False)
    except ValueError:  # a NaN or infinity (a metric): JSON has none, the page shows null
        text = json.dumps(_finite(doc), default=str, allow_nan=False)
    return Response(text, status_code=status, media_type="application/json")


def _finite(x: Any) -> Any:
    if isinstance(x, float) and (x != x or x in (float("inf"), float("-inf"))):
        return None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite(v) for v in x]
    return x


def _error(status: int, message: str) -> Response:
    return JSONResponse({"error": message}, status_code=status)


def _sse(ev: dict[str, Any]) -> str:
    return "data: " + json.dumps(ev, separators=(",", ":"), default=str) + "\n\n"


def serve(source: Source, port: int, say: Callable[[str], None],
          wait: Callable[[], int] | None = None) -> int:
    """Serve the page until Ctrl-C (or until `wait()`, e.g. a watch loop, returns).
    Raises ListenError when the port cannot be had. Returns the exit code."""
    import signal

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    server = PageServer(source, port)
    previous = signal.signal(signal.SIGTERM, stop)
    code = 0
    try:  # from here on, Ctrl-C (even while starting) stops the server cleanly
        server.start()
        say(f"the pipeline page is at {server.url}")
        say("(serving on 127.0.0.1 only; Ctrl-C stops)")
        if wait is not None:
            code = wait()
        else:
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        code = 0
    finally:
        server.stop()
        signal.signal(signal.SIGTERM, previous)
    return code
