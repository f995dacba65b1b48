"""Checks that a page datamake writes is self-contained: nothing in it points outside,
and opened in Chromium with the network off it makes no request but to itself."""
from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

# Attributes that make a browser fetch or navigate.
_URL_ATTRS = {"src", "href", "srcset", "action", "formaction", "poster", "data", "background",
              "xlink:href", "manifest", "ping"}
_CSS_FETCH = re.compile(r"@import|url\(\s*['\"]?(?!data:|#)", re.I)


def _outside(url: str) -> bool:
    """A URL that leaves the page's folder: `//host/...` or any scheme but data:."""
    scheme = re.match(r"^([a-zA-Z][a-zA-Z0-9+.-]*):", url)
    return url.startswith("//") or (scheme is not None and scheme.group(1).lower() != "data")


class _Scan(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list) -> None:
        for name, value in attrs:
            value = value or ""
            urls = [u.strip().split(" ")[0] for u in value.split(",")] if name == "srcset" \
                else [value.strip()]
            if name in _URL_ATTRS and any(_outside(u) for u in urls):
                self.found.append(f"<{tag} {name}={value[:80]!r}>")
            if name == "style" and _CSS_FETCH.search(value):
                self.found.append(f"<{tag} style={value[:80]!r}>")
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            for m in _CSS_FETCH.finditer(data):
                self.found.append(f"CSS {data[max(0, m.start() - 30):m.end() + 50]!r}")


def external_refs(page: str) -> list[str]:
    """What in `page` would fetch from elsewhere: URLs with a scheme (but data:) or
    starting with `//` in src/href-like attributes, `@import` and `url(...)` (other
    than data: and #fragments) in CSS. Relative links (to files beside) are not."""
    scan = _Scan()
    scan.feed(page)
    scan.close()
    return scan.found


def open_offline(driver, path: Path) -> list[str]:
    """Open `path` in `driver` with the network off; return the URLs it requested
    other than the page itself and data: URLs (so: what it needs beside itself)."""
    driver.get("about:blank")
    driver.get_log("performance")  # drop what the new tab and earlier pages logged
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd("Network.emulateNetworkConditions", {
        "offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})
    driver.get(path.as_uri())
    driver.execute_async_script("const done = arguments[arguments.length - 1];"
                                "requestAnimationFrame(() => setTimeout(done, 50));")
    urls = []
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg["method"] == "Network.requestWillBeSent":
            urls.append(msg["params"]["request"]["url"])
    return [u for u in urls if not u.startswith("data:") and u != path.as_uri()]
