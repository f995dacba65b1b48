/* The pipeline page: the graph laid out by dagre, statuses kept live by the server's
   events, a panel per node. Served by `datamake --ui`, or inlined with its data by
   `datamake --dag --format html` (a static snapshot: no server, no build button).

   Everything shown comes from the user's files: it is always set as text
   (textContent, createTextNode, attribute values), never parsed as HTML. The one
   exception is an HTML dataset's preview, shown in an iframe sandboxed without scripts. */
(function () {
  "use strict";

  const SVGNS = "http://www.w3.org/2000/svg";
  const embedded = document.getElementById("datamake-data");
  const STATIC = embedded !== null;
  const DATA = STATIC ? JSON.parse(embedded.textContent) : null;
  const TOKEN = new URLSearchParams(location.search).get("token") || "";
  const SIZES = { rule: [196, 46], dataset: [176, 42], param: [156, 40], alias: [150, 40],
                  ns: [196, 46] };
  const HUB = 5;  // a parameter read by more rules than this is a hub (see show)
  const STATUSES = ["fresh", "cached", "stale", "running", "failed", "missing", "source",
                    "param", "alias"];
  const WORDS = { fresh: "fresh", cached: "cached (restored)", stale: "stale",
                  running: "running", failed: "failed", missing: "missing source",
                  source: "source dataset", param: "parameter", alias: "alias" };

  // -- DOM helpers: text only ------------------------------------------------------------

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") e.className = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v);
    }
    for (const c of children.flat(Infinity)) {
      if (c === null || c === undefined || c === false) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }

  function sv(tag, attrs, ...children) {
    const e = document.createElementNS(SVGNS, tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v !== null && v !== undefined) e.setAttribute(k, String(v));
    }
    for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return e;
  }

  const $ = (id) => document.getElementById(id);

  function toast(text, bad) {
    const t = el("div", { class: "toast" + (bad ? " bad" : "") }, text);
    $("toasts").append(t);
    setTimeout(() => t.remove(), bad ? 9000 : 5000);
  }

  function fmtBytes(n) {
    if (n === null || n === undefined) return "";
    const u = ["B", "KB", "MB", "GB", "TB"];
    let i = 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return (i ? n.toFixed(1) : String(n)) + " " + u[i];
  }

  function fmtTime(t) {
    if (!t) return "";
    const d = new Date(t * 1000);
    return d.toLocaleString();
  }

  function fmtSeconds(s) {
    if (s === null || s === undefined) return "";
    return s < 10 ? s.toFixed(2) + " s" : s < 120 ? s.toFixed(1) + " s" : (s / 60).toFixed(1) + " min";
  }

  function short(text, n) {
    text = String(text);
    return text.length <= n ? text : text.slice(0, n - 1) + "…";
  }

  // -- talking to the server -------------------------------------------------------------

  async function api(path, options) {
    const opts = Object.assign({ headers: {} }, options || {});
    opts.headers["X-Datamake-Token"] = TOKEN;
    const r = await fetch(path, opts);
    let body = null;
    try { body = await r.json(); } catch (e) { body = null; }
    if (!r.ok) {
      const err = new Error((body && body.error) || r.status + " " + r.statusText);
      err.status = r.status;
      throw err;
    }
    return body;
  }

  const q = encodeURIComponent;
  const getGraph = () => STATIC ? Promise.resolve(DATA.graph) : api("api/graph");
  function getPanel(id) {
    if (!STATIC) return api("api/panel?id=" + q(id));
    const p = DATA.panels[id];
    return p ? Promise.resolve(p) : Promise.reject(new Error("no panel for " + id));
  }
  function getPreview(name, key) {
    if (!STATIC) return api("api/preview?name=" + q(name) + (key !== null && key !== undefined ? "&key=" + q(key) : ""));
    const p = DATA.previews[name];
    return p ? Promise.resolve(p) : Promise.reject(new Error("not in this snapshot"));
  }

  // -- state ----------------------------------------------------------------------------

  let G = null;                   // the graph document
  let hubs = new Map();           // parameter read by many rules -> its readers (drawn on demand)
  let byId = new Map();           // node id -> node
  let structure = "";             // what the layout depends on
  const folded = new Set();       // folded namespaces
  let drawn = new Map();          // visible id -> {g, sub, rect, edges: []}
  let box = null;                 // the laid-out graph's size
  const view = { x: 0, y: 0, k: 1 };
  let selected = null;
  let clockOffset = 0;            // server clock minus this page's (seconds)
  const live = {
    running: new Map(),            // node -> Map(step -> start time)
    done: new Map(),               // node -> status a build gave it since the last refresh
    progress: new Map(),           // node -> [done, total] (partitions)
    errors: new Map(),             // node -> {step, text}
    builds: new Set(),             // pids of builds under way
  };

  const nodeOf = (step) => {
    const i = step.indexOf("[");
    return i > 0 && step.endsWith("]") ? step.slice(0, i) : step;
  };

  function statusOf(n) {
    if (live.running.has(n.id) && live.running.get(n.id).size) return "running";
    const p = live.progress.get(n.id);
    if (p && p[0] < p[1] && live.running.has(n.id)) return "running";
    return live.done.get(n.id) || n.status;
  }

  function subText(n, status) {
    if (n.kind === "ns") return n.sub;
    if (status === "running") {
      let t = "running";
      const steps = live.running.get(n.id);
      if (steps && steps.size) {
        const start = Math.min(...steps.values());
        t += " " + Math.max(0, Date.now() / 1000 + clockOffset - start).toFixed(1) + "s";
      }
      const p = live.progress.get(n.id);
      if (p && p[1] > 1) t += " · " + p[0] + "/" + p[1];
      return t;
    }
    if (n.kind === "param") return (n.detail || "") + (hubs.has(n.id) ? " · read by " + hubs.get(n.id).length + " rules" : "");
    if (n.kind === "dataset") return status === "missing" ? "missing · " + (n.detail || "") : (n.detail || "");
    if (status === "stale") return "stale · " + (n.reasons.join(", ") || "upstream");
    if (status === "failed") return "failed" + (n.reasons.length ? " · " + n.reasons.join(", ") : "");
    let t = WORDS[status] || status;
    if (n.kind === "rule" && n.outputs.length > 1) t += " · +" + (n.outputs.length - 1) + " outputs";
    return t;
  }

  // -- layout and drawing ---------------------------------------------------------------

  function foldedAncestor(ns) {
    let found = null;
    for (let cur = ns; cur; cur = cur.includes(".") ? cur.slice(0, cur.lastIndexOf(".")) : "") {
      if (folded.has(cur)) found = cur;
    }
    return found;
  }

  function visible(id) {
    const n = byId.get(id);
    const f = n && n.ns ? foldedAncestor(n.ns) : null;
    return f ? "ns:" + f : id;
  }

  function layout() {
    const g = new dagre.graphlib.Graph({ compound: true });
    // network-simplex gives the tidiest ranks; past a few hundred nodes tight-tree is
    // about twice as fast for a picture as readable (bench/ui.py).
    g.setGraph({ rankdir: "LR", nodesep: 14, ranksep: 54, edgesep: 8, marginx: 24, marginy: 30,
                 ranker: G.nodes.length > 150 ? "tight-tree" : "network-simplex" });
    g.setDefaultEdgeLabel(() => ({}));
    const members = new Map();
    for (const n of G.nodes) {
      if (n.ns) for (let c = n.ns; c; c = c.includes(".") ? c.slice(0, c.lastIndexOf(".")) : "") {
        members.set(c, (members.get(c) || 0) + 1);
      }
    }
    for (const ns of G.namespaces) {
      const up = foldedAncestor(ns.parent || "");
      if (up) continue;  // inside a folded namespace
      const id = "ns:" + ns.id;
      if (folded.has(ns.id)) {
        g.setNode(id, { width: SIZES.ns[0], height: SIZES.ns[1], folded: ns, count: members.get(ns.id) || 0 });
      } else {
        g.setNode(id, { cluster: ns });
      }
      if (ns.parent) g.setParent(id, "ns:" + ns.parent);
    }
    for (const n of G.nodes) {
      if (visible(n.id) !== n.id) continue;
      const [w, h] = SIZES[n.kind] || SIZES.rule;
      g.setNode(n.id, { width: w, height: h, node: n });
      if (n.ns) g.setParent(n.id, "ns:" + n.ns);
    }
    for (const e of G.edges) {
      if (hubs.has(e.from)) continue;
      const a = visible(e.from), b = visible(e.to);
      if (a !== b && g.hasNode(a) && g.hasNode(b) && !g.hasEdge(a, b)) g.setEdge(a, b, { pinned: e.pinned });
    }
    performance.mark("datamake-layout-start");
    dagre.layout(g);
    performance.measure("datamake-layout", "datamake-layout-start");
    return g;
  }

  function curve(points) {
    // A B-spline through dagre's points (as d3's curveBasis): smooth, and it starts and
    // ends at the boxes.
    if (points.length < 3) return "M" + points.map((p) => p.x + "," + p.y).join("L");
    let d = "M" + points[0].x + "," + points[0].y;
    const p = points;
    d += "L" + ((5 * p[0].x + p[1].x) / 6) + "," + ((5 * p[0].y + p[1].y) / 6);
    for (let i = 1; i < p.length - 1; i++) {
      const a = p[i - 1], b = p[i], c = p[i + 1];
      d += "C" + ((2 * a.x + b.x) / 3) + "," + ((2 * a.y + b.y) / 3) + " " +
           ((a.x + 2 * b.x) / 3) + "," + ((a.y + 2 * b.y) / 3) + " " +
           ((a.x + 4 * b.x + c.x) / 6) + "," + ((a.y + 4 * b.y + c.y) / 6);
    }
    const a = p[p.length - 2], b = p[p.length - 1];
    d += "C" + ((2 * a.x + b.x) / 3) + "," + ((2 * a.y + b.y) / 3) + " " +
         ((a.x + 2 * b.x) / 3) + "," + ((a.y + 2 * b.y) / 3) + " " + b.x + "," + b.y;
    return d;
  }

  function draw() {
    const g = layout();
    const vp = $("viewport");
    vp.replaceChildren();
    drawn = new Map();
    const clusters = sv("g", { class: "clusters" }), edges = sv("g", { class: "edges" }),
          nodes = sv("g", { class: "nodes" });
    const frag = document.createDocumentFragment();
    frag.append(clusters, edges, nodes);
    for (const id of g.nodes()) {
      const d = g.node(id);
      if (d.cluster) {
        const ns = d.cluster;
        const c = sv("g", { class: "cluster", "data-ns": ns.id });
        c.append(sv("rect", { x: d.x - d.width / 2, y: d.y - d.height / 2 - 18, width: d.width,
                              height: d.height + 18, rx: 8 }));
        const t = sv("text", { x: d.x - d.width / 2 + 8, y: d.y - d.height / 2 - 4 }, "▾ " + ns.id);
        t.append(sv("title", {}, "fold " + ns.id));
        t.addEventListener("click", (ev) => { ev.stopPropagation(); folded.add(ns.id); draw(); });
        c.append(t);
        clusters.append(c);
      }
    }
    for (const e of g.edges()) {
      const d = g.edge(e);
      const path = sv("path", { class: "edge" + (d.pinned ? " pinned" : ""), d: curve(d.points),
                                "marker-end": "url(#arrow)" });
      path.dataset.from = e.v;
      path.dataset.to = e.w;
      edges.append(path);
      for (const end of [e.v, e.w]) {
        if (!drawn.has(end)) drawn.set(end, { edges: [] });
        drawn.get(end).edges.push(path);
      }
    }
    for (const id of g.nodes()) {
      const d = g.node(id);
      if (d.cluster) continue;
      let n = d.node;
      if (d.folded) {
        n = { id, kind: "ns", label: "▸ " + d.folded.id, sub: d.count + " nodes (folded)", status: "" };
      }
      const x = d.x - d.width / 2, y = d.y - d.height / 2;
      const rx = { rule: 4, dataset: 16, param: 2, alias: 4, ns: 8 }[n.kind];
      const grp = sv("g", { class: "node kind-" + n.kind + (n.kind === "ns" ? " ns-folded" : ""),
                            "data-id": id });
      const rect = sv("rect", { x, y, width: d.width, height: d.height, rx });
      const chars = Math.floor((d.width - 16) / 7.4);
      const title = sv("text", { class: "title", x: x + 9, y: y + 17 }, short(n.label, chars));
      const sub = sv("text", { class: "sub", x: x + 9, y: y + d.height - 8 }, "");
      const tip = sv("title", {}, n.kind === "ns" ? "namespace " + d.folded.id + ": click to unfold"
        : n.id + (n.outputs && n.outputs.length > 1 ? "\noutputs: " + n.outputs.join(", ") : "") +
          (n.description ? "\n" + n.description : ""));
      grp.append(rect, title, sub, tip);
      grp.addEventListener("click", (ev) => {
        ev.stopPropagation();
        if (n.kind === "ns") { folded.delete(d.folded.id); draw(); return; }
        openPanel(id);
      });
      nodes.append(grp);
      const entry = drawn.get(id) || { edges: [] };
      Object.assign(entry, { g: grp, sub, node: n });
      drawn.set(id, entry);
    }
    vp.append(frag);
    box = { w: g.graph().width || 100, h: g.graph().height || 100 };
    updateStatuses();
    if (selected) markSelected(selected);
  }

  function updateStatuses() {
    for (const [id, d] of drawn) {
      if (!d.g || !d.node || d.node.kind === "ns") continue;
      const n = byId.get(id) || d.node;  // the latest document's node (drawn: an older one)
      d.node = n;
      const status = statusOf(n);
      const cls = "node kind-" + n.kind + " s-" + status +
                  (id === selected ? " selected" : "") + (d.g.classList.contains("hit") ? " hit" : "");
      if (d.g.getAttribute("class") !== cls) d.g.setAttribute("class", cls);
      d.g.dataset.status = status;
      const text = subText(n, status);
      if (d.sub.textContent !== text) d.sub.textContent = text;
    }
    const building = live.builds.size > 0;
    const conn = $("conn");
    if (!STATIC && conn.dataset.state === "live") {
      conn.className = building ? "building" : "live";
      conn.textContent = building ? "building…" : "live";
    }
  }

  // -- pan and zoom -----------------------------------------------------------------------

  function apply() {
    $("viewport").setAttribute("transform", `translate(${view.x},${view.y}) scale(${view.k})`);
    $("graph").classList.toggle("far", view.k < 0.45);
  }

  function zoomAt(k, cx, cy) {
    k = Math.min(3, Math.max(0.08, k));
    view.x = cx - (cx - view.x) * (k / view.k);
    view.y = cy - (cy - view.y) * (k / view.k);
    view.k = k;
    apply();
  }

  function fit() {
    const r = $("graph").getBoundingClientRect();
    if (!box || !r.width) return;
    let k = Math.min(r.width / box.w, r.height / box.h, 1.1);
    if (k < 0.4) {  // too small to read: show the start, readable, and let the user pan
      k = 0.55;
      view.k = k;
      view.x = 10;
      view.y = Math.min(10, (r.height - box.h * k) / 2);
    } else {
      view.k = k;
      view.x = (r.width - box.w * k) / 2;
      view.y = (r.height - box.h * k) / 2;
    }
    apply();
  }

  function center(id) {
    const d = drawn.get(id);
    if (!d || !d.g) return;
    const b = d.g.getBBox();
    const r = $("graph").getBoundingClientRect();
    view.k = Math.max(view.k, 0.9);
    view.x = r.width / 2 - (b.x + b.width / 2) * view.k;
    view.y = r.height / 2 - (b.y + b.height / 2) * view.k;
    apply();
  }

  function setupPanZoom() {
    const s = $("graph");
    let drag = null;
    s.addEventListener("pointerdown", (ev) => {
      if (ev.button !== 0) return;
      drag = { x: ev.clientX, y: ev.clientY, vx: view.x, vy: view.y, moved: false };
    });
    s.addEventListener("pointermove", (ev) => {
      if (!drag) return;
      const dx = ev.clientX - drag.x, dy = ev.clientY - drag.y;
      if (!drag.moved && Math.abs(dx) + Math.abs(dy) > 3) {
        // A drag from here on (captured only now: a capture at pointerdown would take
        // the click away from the node under the pointer).
        drag.moved = true;
        s.classList.add("dragging");
        s.setPointerCapture(ev.pointerId);
      }
      if (!drag.moved) return;
      view.x = drag.vx + dx;
      view.y = drag.vy + dy;
      apply();
    });
    const end = (ev) => {
      if (drag && drag.moved) {
        // A drag is not a click on whatever it ended over.
        const stop = (e) => { e.stopPropagation(); s.removeEventListener("click", stop, true); };
        s.addEventListener("click", stop, true);
        setTimeout(() => s.removeEventListener("click", stop, true), 0);
      }
      drag = null;
      s.classList.remove("dragging");
    };
    s.addEventListener("pointerup", end);
    s.addEventListener("pointercancel", end);
    s.addEventListener("wheel", (ev) => {
      ev.preventDefault();
      const r = s.getBoundingClientRect();
      zoomAt(view.k * Math.exp(-ev.deltaY * 0.0015), ev.clientX - r.left, ev.clientY - r.top);
    }, { passive: false });
    const mid = () => { const r = s.getBoundingClientRect(); return [r.width / 2, r.height / 2]; };
    $("zoom-in").addEventListener("click", () => zoomAt(view.k * 1.25, ...mid()));
    $("zoom-out").addEventListener("click", () => zoomAt(view.k / 1.25, ...mid()));
    $("fit").addEventListener("click", fit);
  }

  // -- search -----------------------------------------------------------------------------

  function search(text) {
    text = text.trim();
    if (!text || !G) return null;
    const lower = text.toLowerCase();
    let n = byId.get(text) || G.nodes.find((x) => x.label === text) ||
            G.nodes.find((x) => x.id.toLowerCase() === lower) ||
            G.nodes.find((x) => x.id.toLowerCase().includes(lower));
    if (!n) { toast("no node matches “" + text + "”"); return null; }
    if (n.ns && foldedAncestor(n.ns)) {
      for (let c = n.ns; c; c = c.includes(".") ? c.slice(0, c.lastIndexOf(".")) : "") folded.delete(c);
      draw();
    }
    center(n.id);
    const d = drawn.get(n.id);
    for (const x of document.querySelectorAll(".node.hit")) x.classList.remove("hit");
    d.g.classList.add("hit");
    setTimeout(() => d.g.classList.remove("hit"), 2500);
    return n.id;
  }

  function setupSearch() {
    const box = $("search");
    box.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter") { ev.preventDefault(); search(box.value); }
    });
    box.addEventListener("change", () => search(box.value));
    document.addEventListener("keydown", (ev) => {
      if (ev.key === "/" && document.activeElement !== box) { ev.preventDefault(); box.focus(); }
      if (ev.key === "Escape") closePanel();
    });
  }

  // -- the panel -------------------------------------------------------------------------

  function markSelected(id) {
    for (const x of document.querySelectorAll(".node.selected")) x.classList.remove("selected");
    for (const x of document.querySelectorAll(".edge.near")) x.classList.remove("near");
    for (const x of document.querySelectorAll(".edge.hub")) x.remove();
    const d = drawn.get(id);
    if (!d || !d.g) return;
    d.g.classList.add("selected");
    for (const e of d.edges) e.classList.add("near");
    // A hub's edges, drawn now: from the hub to its readers, or to this reader.
    const pairs = [];
    if (hubs.has(id)) for (const r of hubs.get(id)) pairs.push([id, r]);
    for (const [h, rs] of hubs) if (rs.includes(id)) pairs.push([h, id]);
    const layer = document.querySelector("#viewport .edges");
    for (const [a, b] of pairs) {
      const da = drawn.get(visible(a)), db = drawn.get(visible(b));
      if (!da || !db || !da.g || !db.g || da === db) continue;
      const p = da.g.getBBox(), q = db.g.getBBox();
      const x1 = p.x + p.width, y1 = p.y + p.height / 2, x2 = q.x, y2 = q.y + q.height / 2;
      const mx = (x1 + x2) / 2;
      layer.append(sv("path", { class: "edge near hub", d: `M${x1},${y1}C${mx},${y1} ${mx},${y2} ${x2},${y2}`,
                                "marker-end": "url(#arrow)" }));
    }
  }

  function closePanel() {
    selected = null;
    markSelected(null);
    $("panel").hidden = true;
  }

  function jump(id) {
    return el("a", { class: "jump", onclick: () => { search(id); openPanel(id); } }, id);
  }

  async function openPanel(id) {
    selected = id;
    markSelected(id);
    const panel = $("panel");
    panel.hidden = false;
    panel.replaceChildren(el("p", { class: "muted" }, "Loading " + id + "…"));
    let doc;
    try {
      doc = await getPanel(id);
    } catch (e) {
      if (selected === id) panel.replaceChildren(el("p", { class: "message" }, String(e.message)));
      return;
    }
    if (selected !== id) return;
    renderPanel(doc);
  }

  function codeBox(c) {
    const pre = el("pre", { class: "code" });
    for (const line of c.lines) {
      const row = el("span", { class: "line" }, el("span", { class: "n" }, line.n === null ? "" : String(line.n)));
      for (const [cls, text] of line.tokens) row.append(cls ? el("span", { class: "tk-" + cls }, text) : document.createTextNode(text));
      pre.append(row);
    }
    return el("div", { class: "codebox" }, el("div", { class: "ctitle" }, c.title), pre);
  }

  function failureBox(text, file) {
    const pre = el("pre", { class: "failure" });
    for (const line of String(text).split("\n")) {
      const here = file && line.includes('"' + file + '", line ');
      pre.append(here ? el("span", { class: "here" }, line) : document.createTextNode(line), "\n");
    }
    return pre;
  }

  function dataTable(rows, showPreview) {
    const t = el("table", { class: "data" });
    t.append(el("thead", {}, el("tr", {}, ["name", "location", "format", "size", "built", "took", ""].map((h) => el("th", {}, h)))));
    const body = el("tbody");
    for (const d of rows) {
      const size = d.partitions !== null ? d.partitions + " partitions" : fmtBytes(d.size);
      const where = d.location === null ? "" : d.location;
      const name = byId.has(d.name) ? jump(d.name) : (byId.has(producerOf(d.name)) ? jump(producerOf(d.name)) : d.name);
      const nameCell = el("td", {}, name, d.name !== (name.textContent || name) ? " (" + d.name + ")" : "",
                          d.pinned ? " @" + d.pinned : "", d.exists ? "" : el("span", { class: "badge s-missing" }, "missing"));
      const btn = d.preview ? el("button", { onclick: () => showPreview(d.name) }, "preview") : "";
      body.append(el("tr", {}, nameCell, el("td", {}, where), el("td", {}, d.format || ""),
        el("td", {}, size), el("td", {}, fmtTime(d.built_at || d.modified)), el("td", {}, fmtSeconds(d.seconds)),
        el("td", {}, btn)));
    }
    t.append(body);
    return el("div", { class: "tablewrap" }, t);
  }

  function producerOf(name) {
    for (const n of G.nodes) if (n.kind === "rule" && n.outputs.includes(name)) return n.id;
    return null;
  }

  function renderPanel(doc) {
    const panel = $("panel");
    const node = byId.get(doc.id);
    const status = node ? statusOf(node) : doc.status;
    const parts = [
      el("button", { class: "close", title: "Close (Esc)", onclick: closePanel }, "×"),
      el("h2", {}, doc.label || doc.id),
      el("div", {}, el("span", { class: "badge kind" }, doc.kind),
        el("span", { class: "badge s-" + status }, WORDS[status] || status),
        (status === "stale" || status === "failed") && doc.reasons.length ? el("span", { class: "muted" }, doc.reasons.join(", ")) : ""),
    ];
    if (doc.description) parts.push(el("p", { class: "desc" }, doc.description));
    if (!STATIC && doc.target) {
      const msg = el("div");
      const b = el("button", { class: "primary", id: "build-node", onclick: () => startBuild(doc.target, msg) }, "Build " + doc.target);
      parts.push(el("p", {}, b), msg);
    }
    const err = live.errors.get(doc.id);
    const failure = doc.failure || (err && status === "failed" ? err : null);
    if (failure) {
      parts.push(el("h3", {}, "Last failure (" + failure.step + ")"),
                 failureBox(failure.text, doc.code ? doc.code.file : null));
    }
    if (doc.explain && doc.explain.length) {
      parts.push(el("h3", {}, "Why it is stale"));
      for (const x of doc.explain) {
        parts.push(el("div", { class: "muted" }, x.step), el("pre", { class: "block explain" }, x.lines.join("\n")));
      }
    }
    if (doc.value !== null && doc.value !== undefined) {
      parts.push(el("h3", {}, "Value"), el("pre", { class: "block value" }, doc.value));
    }
    if (doc.code) parts.push(el("h3", {}, doc.kind === "rule" ? "Recipe" : "Declared at"), codeBox(doc.code));
    if (doc.helpers && doc.helpers.length) {
      parts.push(el("h3", {}, "Code its fingerprint follows"));
      for (const h of doc.helpers) parts.push(codeBox(h));
    }
    const previewArea = el("div", { class: "preview" });
    const showPreview = (name, key) => loadPreview(previewArea, name, key);
    if (doc.inputs && doc.inputs.length) parts.push(el("h3", {}, "Inputs"), dataTable(doc.inputs, showPreview));
    if (doc.params && doc.params.length) {
      parts.push(el("h3", {}, "Parameters"), el("table", { class: "data" }, el("tbody", {},
        doc.params.map((p) => el("tr", {}, el("td", {}, jump(p.name)), el("td", {}, el("pre", {}, p.value)))))));
    }
    if (doc.outputs && doc.outputs.length) parts.push(el("h3", {}, doc.kind === "rule" ? "Outputs" : "Data"), dataTable(doc.outputs, showPreview));
    parts.push(previewArea);
    if (doc.partitions && doc.partitions.length) {
      parts.push(el("h3", {}, "Partitions (" + doc.partitions.length + ")"),
        el("div", {}, doc.partitions.slice(0, 200).map((p) => el("span", { class: "badge s-" + p.status, title: p.status }, p.key))));
    }
    if (doc.readers && doc.readers.length) parts.push(el("h3", {}, "Read by"), el("div", {}, doc.readers.map((r) => [jump(r), " "])));
    if (doc.history && doc.history.length) {
      parts.push(el("h3", {}, "Recent runs"), el("table", { class: "data" }, el("tbody", {},
        doc.history.map((h) => el("tr", {}, el("td", {}, fmtTime(h.started)), el("td", {}, h.status), el("td", {}, fmtSeconds(h.seconds)),
          el("td", { title: "peak memory of the process that ran it" }, h.peak_mb == null ? "" : h.peak_mb.toFixed(1) + " MB"))))));
    }
    panel.replaceChildren(...parts);
    const first = (doc.outputs || []).find((d) => d.preview);
    if (first) showPreview(first.name);
  }

  async function loadPreview(area, name, key) {
    area.replaceChildren(el("h3", {}, "Preview of " + name), el("p", { class: "muted" }, "Loading…"));
    let p;
    try {
      p = await getPreview(name, key);
    } catch (e) {
      area.replaceChildren(el("h3", {}, "Preview of " + name), el("p", { class: "muted" }, String(e.message)));
      return;
    }
    const parts = [el("h3", {}, "Preview of " + name + (p.key !== null && p.key !== undefined ? "[" + p.key + "]" : ""))];
    if (p.location) parts.push(el("div", { class: "muted" }, p.location + (p.format ? " · " + p.format : "")));
    if (p.keys && p.keys.length) {
      const sel = el("select", { "aria-label": "partition" });
      for (const k of p.keys) {
        const o = el("option", { value: k }, k);
        if (k === p.key) o.selected = true;
        sel.append(o);
      }
      if (STATIC) sel.disabled = true;
      sel.addEventListener("change", () => loadPreview(area, name, sel.value));
      parts.push(el("div", {}, "partition ", sel, p.total_keys > p.keys.length ? " (first " + p.keys.length + " of " + p.total_keys + ")" : ""));
    }
    parts.push(previewBody(p));
    if (p.versions && p.versions.length) parts.push(versionsBox(p.versions));
    area.replaceChildren(...parts);
  }

  function previewBody(p) {
    if (p.kind === "table") {
      const t = el("table", { class: "data" });
      t.append(el("thead", {}, el("tr", {}, p.columns.map((c) => el("th", {}, c.name, el("span", { class: "dtype" }, c.dtype))))));
      t.append(el("tbody", {}, p.rows.map((r) => el("tr", {}, r.map((v) => el("td", {}, v))))));
      const n = p.rows.length;
      return el("div", {}, el("div", { class: "muted" }, n + " rows shown" + (p.total_rows ? " of " + p.total_rows.toLocaleString() : "")),
                el("div", { class: "tablewrap" }, t));
    }
    if (p.kind === "value") return el("pre", { class: "block value" }, p.text);
    if (p.kind === "image") return el("img", { class: "preview", src: p.src, alt: p.name });
    if (p.kind === "html") {
      const f = el("iframe", { class: "report", sandbox: "", referrerpolicy: "no-referrer", title: p.name });
      f.srcdoc = p.html;
      return f;
    }
    if (p.kind === "files") {
      return el("ul", {}, p.files.map((f) => el("li", {}, f.name + "  ", el("span", { class: "muted" }, fmtBytes(f.size)))),
                p.truncated ? el("li", { class: "muted" }, "…") : "");
    }
    return el("p", { class: "muted" }, p.text || "no preview");
  }

  function versionsBox(versions) {
    const names = [...new Set(versions.flatMap((v) => Object.keys(v.metrics)))];
    const t = el("table", { class: "data versions" });
    t.append(el("thead", {}, el("tr", {}, ["version", "content", "size", ...names].map((h) => el("th", {}, h)))));
    t.append(el("tbody", {}, versions.slice().reverse().map((v) => el("tr", {},
      el("td", {}, fmtTime(Date.parse(v.time) / 1000)), el("td", {}, v.digest), el("td", {}, fmtBytes(v.size)),
      names.map((m) => el("td", {}, v.metrics[m] === undefined ? "" : fmtNumber(v.metrics[m])))))));
    const charts = el("div", {}, names.map((m) => chart(m, versions)));
    return el("div", {}, el("h3", {}, "Versions (" + versions.length + ")"), names.length ? charts : "", el("div", { class: "tablewrap" }, t));
  }

  function fmtNumber(v) {
    if (typeof v !== "number") return String(v);
    if (Number.isInteger(v)) return String(v);
    return Math.abs(v) >= 1e5 || Math.abs(v) < 1e-3 ? v.toExponential(3) : String(Number(v.toPrecision(5)));
  }

  function chart(name, versions) {
    // One metric across versions, oldest left: a hand-drawn line chart.
    const W = 250, H = 110, L = 58, R = 8, T = 18, B = 18;
    const pts = versions.map((v, i) => [i, v.metrics[name]]).filter((p) => typeof p[1] === "number");
    const s = sv("svg", { class: "chart", width: W, height: H, viewBox: `0 0 ${W} ${H}`, "data-metric": name });
    s.append(sv("text", { class: "cname", x: 2, y: 12 }, name));
    if (!pts.length) return s;
    const ys = pts.map((p) => p[1]);
    let lo = Math.min(...ys), hi = Math.max(...ys);
    if (lo === hi) { lo -= Math.abs(lo) * 0.1 || 1; hi += Math.abs(hi) * 0.1 || 1; }
    const n = versions.length;
    const X = (i) => L + (n === 1 ? (W - L - R) / 2 : i * (W - L - R) / (n - 1));
    const Y = (v) => T + (hi - v) * (H - T - B) / (hi - lo);
    s.append(sv("line", { class: "axis", x1: L, y1: T, x2: L, y2: H - B }),
             sv("line", { class: "axis", x1: L, y1: H - B, x2: W - R, y2: H - B }),
             sv("text", { x: L - 4, y: T + 4, "text-anchor": "end" }, fmtNumber(hi)),
             sv("text", { x: L - 4, y: H - B, "text-anchor": "end" }, fmtNumber(lo)),
             sv("text", { x: L, y: H - 4 }, "oldest"),
             sv("text", { x: W - R, y: H - 4, "text-anchor": "end" }, "latest"));
    s.append(sv("polyline", { class: "lineplot", points: pts.map((p) => X(p[0]) + "," + Y(p[1])).join(" ") }));
    for (const [i, v] of pts) {
      const c = sv("circle", { class: "dot", cx: X(i), cy: Y(v), r: 3 });
      c.append(sv("title", {}, versions[i].id + ": " + fmtNumber(v)));
      s.append(c);
    }
    return s;
  }

  async function startBuild(target, msgArea) {
    try {
      const r = await api("api/build", { method: "POST", headers: { "Content-Type": "application/json" },
                                        body: JSON.stringify({ target }) });
      toast("build of " + (r.target || "the default target") + " started (pid " + r.pid + ")");
      if (msgArea) msgArea.replaceChildren(el("p", { class: "muted" }, "build started (pid " + r.pid + ")"));
    } catch (e) {
      toast(String(e.message), true);
      if (msgArea) msgArea.replaceChildren(el("p", { class: "message refused" }, String(e.message)));
    }
  }

  // -- live events -------------------------------------------------------------------------

  let pending = null;  // events received while the graph reloads

  function handle(ev) {
    if (pending) pending.push(ev);
    const id = ev.step ? nodeOf(ev.step) : ev.rule;
    switch (ev.event) {
      case "hello":
        if (G && ev.generation !== G.generation) refresh();
        return;
      case "waiting":
        toast("a build (pid " + ev.pid + ") waits for another datamake" + (ev.holder ? " (pid " + ev.holder + ")" : ""));
        break;
      case "start":
        if (!live.builds.has(ev.pid)) toast("build started (pid " + ev.pid + "): " + (ev.targets || []).join(" "));
        live.builds.add(ev.pid);
        break;
      case "step-start": {
        if (!live.running.has(id)) live.running.set(id, new Map());
        live.running.get(id).set(ev.step, ev.t);
        live.done.delete(id);
        break;
      }
      case "rule-progress":
        live.progress.set(id, [ev.done, ev.total]);
        if (ev.done >= ev.total && live.running.has(id) && !live.running.get(id).size) settle(id);
        break;
      case "step-progress":
        if (!live.progress.has(id) || byId.get(id) && !byId.get(id).pattern) live.progress.set(id, [ev.done, ev.total || ev.done + 1]);
        break;
      case "step-done":
      case "step-failed": {
        const steps = live.running.get(id);
        if (steps) steps.delete(ev.step);
        if (ev.event === "step-failed") {
          live.errors.set(id, { step: ev.step, text: ev.error });
          live.done.set(id, "failed");
        } else if (live.done.get(id) !== "failed") {
          live.done.set(id, ev.status === "cached" ? "cached" : "fresh");
        }
        const p = live.progress.get(id);
        const n = byId.get(id);
        if ((!steps || !steps.size) && (!n || !n.pattern || !p || p[0] >= p[1])) settle(id);
        break;
      }
      case "end":
        live.builds.delete(ev.pid);
        toast("build " + (ev.status === "ok" ? "done" : ev.status) + (ev.seconds ? " in " + fmtSeconds(ev.seconds) : ""), ev.status !== "ok");
        refresh();
        break;
    }
    updateStatuses();
    if (selected && (id === selected) && (ev.event === "step-failed" || ev.event === "step-done")) openPanel(selected);
  }

  function settle(id) {
    live.running.delete(id);
  }

  function connect() {
    const conn = $("conn");
    const es = new EventSource("api/events?token=" + q(TOKEN));
    es.onopen = () => { conn.dataset.state = "live"; conn.className = "live"; conn.textContent = "live"; updateStatuses(); };
    es.onerror = () => { conn.dataset.state = "down"; conn.className = ""; conn.textContent = "reconnecting…"; };
    es.onmessage = (m) => {
      let ev;
      try { ev = JSON.parse(m.data); } catch (e) { return; }
      handle(ev);
    };
  }

  // -- loading -------------------------------------------------------------------------------

  function shapeOf(g) {
    return JSON.stringify([g.nodes.map((n) => [n.id, n.kind, n.ns, n.label, n.description]), g.edges.map((e) => [e.from, e.to]), g.namespaces.map((n) => n.id)]);
  }

  function show(g, first) {
    G = g;
    byId = new Map(g.nodes.map((n) => [n.id, n]));
    // A parameter that many rules read would tie the whole layout to itself: it is laid
    // out alone, and its edges are drawn only while it or a reader is selected.
    const readers = new Map();
    for (const e of g.edges) {
      const n = byId.get(e.from);
      if (n && n.kind === "param") readers.set(e.from, (readers.get(e.from) || []).concat([e.to]));
    }
    hubs = new Map([...readers].filter(([, r]) => r.length > HUB));
    if (g.now) clockOffset = g.now - Date.now() / 1000;
    $("title").textContent = g.title;
    document.title = g.title + " — datamake";
    const err = $("error");
    if (g.error) {
      err.hidden = false;
      err.textContent = g.error;
    } else {
      err.hidden = true;
    }
    const names = $("names");
    names.replaceChildren(...g.nodes.map((n) => el("option", { value: n.id })));
    const shape = shapeOf(g);
    if (shape !== structure) {
      structure = shape;
      draw();
      if (first) fit();
    } else {
      updateStatuses();
    }
  }

  let reloading = null;
  async function refresh() {
    if (STATIC) return;
    if (reloading) { reloading.again = true; return; }
    reloading = { again: false };
    pending = [];
    try {
      const g = await getGraph();
      live.running.clear(); live.done.clear(); live.progress.clear();
      live.builds.clear();
      const later = pending;
      pending = null;
      show(g, false);
      for (const ev of g.live || []) handle(ev);
      for (const ev of later) if (ev.event !== "end" && ev.event !== "hello") handle(ev);
      updateStatuses();
      if (selected) openPanel(selected);
    } catch (e) {
      pending = null;
      toast("cannot reload the graph: " + e.message, true);
    }
    const again = reloading.again;
    reloading = null;
    if (again) refresh();
  }

  function legend() {
    $("legend").replaceChildren(...STATUSES.map((s) => el("span", { class: "item" },
      el("span", { class: "swatch", style: null, "data-s": s }), WORDS[s])));
    for (const sw of document.querySelectorAll("#legend .swatch")) {
      const s = sw.dataset.s;
      sw.style.background = `var(--${s})`;
      sw.style.borderColor = `var(--${s}-b)`;
    }
  }

  async function start() {
    legend();
    setupPanZoom();
    setupSearch();
    if (STATIC) {
      for (const x of document.querySelectorAll(".live-only")) x.remove();
      const snap = $("snapshot");
      snap.hidden = false;
      snap.textContent = "A snapshot of " + DATA.graph.title + ", status as of " + fmtTime(DATA.taken) +
        ": no live updates, no builds. `datamake --ui` shows it live.";
    } else {
      $("build-all").addEventListener("click", () => startBuild(null, null));
    }
    let g;
    try {
      g = await getGraph();
    } catch (e) {
      $("error").hidden = false;
      $("error").textContent = "cannot load the graph: " + e.message;
      return;
    }
    show(g, true);
    for (const ev of g.live || []) handle(ev);
    performance.mark("datamake-interactive");
    document.body.dataset.ready = "1";
    if (!STATIC) {
      connect();
      setInterval(() => { if (live.running.size) updateStatuses(); }, 250);
      document.addEventListener("visibilitychange", () => { if (!document.hidden) refresh(); });
    }
  }

  window.datamakePage = { search, openPanel, fit, view, get graph() { return G; } };
  start();
})();
