// vision-stats dashboard: plain JS, inline SVG charts, no dependency, no CDN.
// Every value from the server is written with textContent (never as HTML).
"use strict";

(function () {
  const API = "/api/v1/stats";
  const SVG = "http://www.w3.org/2000/svg";
  const W = 600, H = 240, PAD = { l: 48, r: 12, t: 12, b: 28 };
  const MAX_CLASSES = 6; // more are drawn as "other"
  const refreshSec = Math.max(1, Number(document.body.dataset.refreshSec) || 5);
  let timer = null;

  const $ = (id) => document.getElementById(id);
  const fmtInt = (n) => Number(n).toLocaleString("en-US");
  const fmtMs = (v) => (v === null || v === undefined ? "–" : `${Number(v).toFixed(1)} ms`);
  const fmtTime = (iso) => (iso ? iso.replace("T", " ").replace(/\.\d+/, "").replace(/(\+00:00|Z)$/, "") : "–");

  function fmtAgo(sec) {
    if (sec < 0) return "in the future";
    if (sec < 90) return `${Math.round(sec)} s ago`;
    if (sec < 5400) return `${Math.round(sec / 60)} min ago`;
    if (sec < 129600) return `${Math.round(sec / 3600)} h ago`;
    return `${Math.round(sec / 86400)} d ago`;
  }

  function el(tag, attrs, text) {
    const node = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    if (text !== undefined) node.textContent = String(text);
    return node;
  }

  async function getJSON(path) {
    const res = await fetch(API + path, { headers: { Accept: "application/json" } });
    if (!res.ok) throw new Error(`${path}: HTTP ${res.status}`);
    return res.json();
  }

  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }

  function emptyChart(svg, message) {
    clear(svg);
    svg.appendChild(el("svg:text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "empty" }, message));
  }

  function niceMax(v) {
    if (!(v > 0)) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p; // /5 stays round
    return 10 * p;
  }

  function yAxis(svg, max, fmt) {
    const plotH = H - PAD.t - PAD.b;
    for (let i = 0; i <= 5; i++) {
      const y = PAD.t + plotH - (plotH * i) / 5;
      svg.appendChild(el("svg:line", { x1: PAD.l, x2: W - PAD.r, y1: y, y2: y, class: "axis" }));
      svg.appendChild(el("svg:text", { x: PAD.l - 6, y: y + 4, "text-anchor": "end" }, fmt((max * i) / 5)));
    }
  }

  function xLabels(svg, buckets, bucket) {
    const plotW = W - PAD.l - PAD.r;
    const step = Math.max(1, Math.ceil(buckets.length / 6));
    buckets.forEach((b, i) => {
      if (i % step !== 0) return;
      const x = PAD.l + (plotW * (i + 0.5)) / buckets.length;
      const t = b.ts_utc.slice(bucket === "hour" ? 5 : 11, 16).replace("T", " ");
      svg.appendChild(el("svg:text", { x, y: H - 8, "text-anchor": "middle" }, t));
    });
  }

  function classColor(i) { return `c${Math.min(i, MAX_CLASSES)}`; }

  // the tbody of table `id`, emptied
  function emptyBody(id) {
    const body = $(id).tBodies[0];
    clear(body);
    return body;
  }

  // a muted line across the table: nothing to show, or how many rows were left out
  function mutedRow(body, cols, text) {
    body.appendChild(el("tr")).appendChild(el("td", { colspan: cols, class: "muted" }, text));
  }

  // the bar of bucket i (of width bw), from y down h pixels, with its hover title
  function bucketBar(svg, i, bw, y, h, cls, title) {
    const rect = el("svg:rect", { x: PAD.l + i * bw + bw * 0.1, y, width: Math.max(1, bw * 0.8), height: h, class: cls });
    rect.appendChild(el("svg:title", {}, title));
    svg.appendChild(rect);
  }

  function drawClasses(totals) {
    const svg = $("chart-classes");
    if (!totals.length) return emptyChart(svg, "no detections yet");
    clear(svg);
    const rows = totals.slice(0, 8);
    const max = niceMax(Math.max(...rows.map((r) => r.detections)));
    const left = 110, plotW = W - left - 60, rowH = (H - 10) / rows.length;
    rows.forEach((r, i) => {
      const y = 5 + i * rowH;
      const w = Math.max(1, (plotW * r.detections) / max);
      svg.appendChild(el("svg:text", { x: left - 8, y: y + rowH / 2 + 4, "text-anchor": "end" }, r.class_name));
      const bar = el("svg:rect", { x: left, y: y + rowH * 0.15, width: w, height: rowH * 0.7, rx: 3, class: `bar ${classColor(i)}` });
      bar.appendChild(el("svg:title", {}, `${r.class_name}: ${fmtInt(r.detections)}`));
      svg.appendChild(bar);
      svg.appendChild(el("svg:text", { x: left + w + 6, y: y + rowH / 2 + 4 }, fmtInt(r.detections)));
    });
  }

  function drawDetections(series) {
    const svg = $("chart-detections");
    const legend = $("legend-detections");
    clear(legend);
    const buckets = series.buckets;
    const total = buckets.reduce((s, b) => s + b.detections, 0);
    if (!total) return emptyChart(svg, "no detections in this window");
    clear(svg);
    const shown = series.classes.slice(0, MAX_CLASSES);
    const hasOther = series.classes.length > MAX_CLASSES;
    const stackTotals = buckets.map((b) => Object.values(b.by_class).reduce((s, n) => s + n, 0));
    const max = niceMax(Math.max(...stackTotals));
    yAxis(svg, max, (v) => fmtInt(Math.round(v)));
    const plotW = W - PAD.l - PAD.r, plotH = H - PAD.t - PAD.b;
    const bw = plotW / buckets.length;
    buckets.forEach((b, i) => {
      let y = PAD.t + plotH;
      const parts = shown.map((name, k) => [name, b.by_class[name] || 0, classColor(k)]);
      if (hasOther) {
        const other = Object.entries(b.by_class).filter(([n]) => !shown.includes(n)).reduce((s, [, n]) => s + n, 0);
        parts.push(["other", other, classColor(MAX_CLASSES)]);
      }
      for (const [name, n, color] of parts) {
        if (!n) continue;
        const h = (plotH * n) / max;
        y -= h;
        bucketBar(svg, i, bw, y, h, `bar ${color}`, `${fmtTime(b.ts_utc)} ${name}: ${fmtInt(n)}`);
      }
    });
    xLabels(svg, buckets, series.bucket);
    legendOf(legend, hasOther ? [...shown, "other"] : shown);
  }

  function drawLatency(series) {
    const svg = $("chart-latency");
    const buckets = series.buckets;
    if (!buckets.some((b) => b.events > 0)) return emptyChart(svg, "no events in this window");
    clear(svg);
    const plotW = W - PAD.l - PAD.r, plotH = H - PAD.t - PAD.b;
    const bw = plotW / buckets.length;
    const maxEvents = Math.max(...buckets.map((b) => b.events));
    buckets.forEach((b, i) => { // events as light bars behind the lines, scaled to the plot
      if (!b.events) return;
      const h = (plotH * b.events) / maxEvents;
      bucketBar(svg, i, bw, PAD.t + plotH - h, h, "bar-events", `${fmtTime(b.ts_utc)}: ${fmtInt(b.events)} events`);
    });
    const max = niceMax(Math.max(...buckets.map((b) => b.p95_latency_ms || 0)));
    yAxis(svg, max, (v) => v.toFixed(v < 10 ? 1 : 0));
    for (const key of ["p50", "p95"]) {
      let d = "";
      let pen = "M";
      buckets.forEach((b, i) => {
        const v = b[`${key}_latency_ms`];
        if (v === null || v === undefined) { pen = "M"; return; }
        const x = PAD.l + (i + 0.5) * bw, y = PAD.t + plotH - (plotH * v) / max;
        d += `${pen}${x.toFixed(1)},${y.toFixed(1)} `;
        pen = "L";
      });
      if (d) svg.appendChild(el("svg:path", { d, class: `line line-${key}` }));
    }
    xLabels(svg, buckets, series.bucket);
  }

  const BUCKET_MS = { minute: 60e3, hour: 3600e3, day: 86400e3 };
  const MAX_ZONE_ROWS = 25;

  function legendOf(node, names) {
    clear(node);
    names.forEach((name, k) => {
      const item = el("span");
      item.appendChild(el("i", { class: `swatch ${classColor(k)}` }));
      item.appendChild(document.createTextNode(name));
      node.appendChild(item);
    });
  }

  // crossings per bucket, stacked by "line / class" (in + out); the totals below
  function drawCrossings(counts) {
    const svg = $("chart-crossings");
    const body = emptyBody("crossing-totals");
    for (const t of counts.totals) {
      const tr = el("tr", { "data-line": t.line, "data-class": t.class_name });
      tr.appendChild(el("td", {}, t.line));
      tr.appendChild(el("td", {}, t.class_name));
      tr.appendChild(el("td", { class: "num in" }, fmtInt(t.in)));
      tr.appendChild(el("td", { class: "num out" }, fmtInt(t.out)));
      tr.appendChild(el("td", { class: "num" }, fmtInt(t.in + t.out)));
      body.appendChild(tr);
    }
    if (!counts.rows.length) {
      legendOf($("legend-crossings"), []);
      return emptyChart(svg, "no line crossings in this window");
    }
    clear(svg);
    const width = BUCKET_MS[counts.bucket];
    const start = Date.parse(counts.since_utc);
    const n = Math.max(1, Math.round((Date.parse(counts.until_utc) - start) / width));
    const keyTotal = new Map();
    for (const r of counts.rows) {
      const key = `${r.line} / ${r.class_name}`;
      keyTotal.set(key, (keyTotal.get(key) || 0) + r.in + r.out);
    }
    const keys = [...keyTotal.keys()].sort((a, b) => keyTotal.get(b) - keyTotal.get(a) || (a < b ? -1 : 1));
    const shown = keys.slice(0, MAX_CLASSES);
    const cells = Array.from({ length: n }, () => new Map());
    for (const r of counts.rows) {
      const i = Math.floor((Date.parse(r.ts_utc) - start) / width);
      if (i < 0 || i >= n) continue;
      const key = `${r.line} / ${r.class_name}`;
      const name = shown.includes(key) ? key : "other";
      cells[i].set(name, (cells[i].get(name) || 0) + r.in + r.out);
    }
    // whole objects: at least 5 on the axis, so its five steps stay whole numbers
    const max = Math.max(5, niceMax(Math.max(...cells.map((c) => [...c.values()].reduce((s, v) => s + v, 0)))));
    yAxis(svg, max, (v) => fmtInt(Math.round(v)));
    const plotW = W - PAD.l - PAD.r, plotH = H - PAD.t - PAD.b;
    const bw = plotW / n;
    const names = keys.length > MAX_CLASSES ? [...shown, "other"] : shown;
    cells.forEach((cell, i) => {
      let y = PAD.t + plotH;
      names.forEach((name, k) => {
        const v = cell.get(name) || 0;
        if (!v) return;
        const h = (plotH * v) / max;
        y -= h;
        const title = `${fmtTime(new Date(start + i * width).toISOString())} ${name}: ${fmtInt(v)}`;
        bucketBar(svg, i, bw, y, h, `bar ${classColor(k)}`, title);
      });
    });
    const buckets = Array.from({ length: n }, (_, i) => ({ ts_utc: new Date(start + i * width).toISOString() }));
    xLabels(svg, buckets, counts.bucket === "minute" ? "minute" : "hour");
    legendOf($("legend-crossings"), names);
  }

  // one line per zone: its occupancy (all classes) at the end of each bucket
  function drawOccupancySeries(series) {
    const svg = $("chart-occupancy");
    const perZone = new Map();
    for (const z of series.zones) {
      const sum = perZone.get(z.zone) || new Array(series.buckets.length).fill(0);
      z.occupancy.forEach((v, i) => { sum[i] += v; });
      perZone.set(z.zone, sum);
    }
    // the fullest zones (highest peak in the window) get a line each
    const peak = (z) => Math.max(...perZone.get(z));
    const zones = [...perZone.keys()].sort((a, b) => peak(b) - peak(a) || (a < b ? -1 : 1)).slice(0, MAX_CLASSES);
    legendOf($("legend-occupancy"), zones);
    if (!zones.length) return emptyChart(svg, "no zone events yet");
    clear(svg);
    const max = Math.max(5, niceMax(Math.max(...zones.flatMap((z) => perZone.get(z)))));
    yAxis(svg, max, (v) => fmtInt(Math.round(v)));
    const plotW = W - PAD.l - PAD.r, plotH = H - PAD.t - PAD.b;
    const bw = plotW / series.buckets.length;
    zones.forEach((zone, k) => {
      const d = perZone.get(zone).map((v, i) => `${i ? "L" : "M"}${(PAD.l + (i + 0.5) * bw).toFixed(1)},${(PAD.t + plotH - (plotH * v) / max).toFixed(1)}`).join(" ");
      const path = el("svg:path", { d, class: `line line-zone s${Math.min(k, MAX_CLASSES)}`, "data-zone": zone });
      path.appendChild(el("svg:title", {}, `${zone}: ${fmtInt(perZone.get(zone).at(-1))} now`));
      svg.appendChild(path);
    });
    xLabels(svg, series.buckets.map((ts) => ({ ts_utc: ts })), series.bucket === "minute" ? "minute" : "hour");
  }

  function drawZonesNow(zones) {
    const body = emptyBody("zones");
    if (!zones.length) {
      mutedRow(body, 9, "no zone events yet");
      return;
    }
    // a fleet has thousands: the fullest first, at most MAX_ZONE_ROWS
    const rows = [...zones].sort((a, b) => b.occupancy - a.occupancy).slice(0, MAX_ZONE_ROWS);
    for (const z of rows) {
      const tr = el("tr", { "data-source": z.source_id, "data-zone": z.zone });
      const byClass = Object.entries(z.by_class).map(([k, n]) => `${k} ${n}`).join(", ");
      tr.appendChild(el("td", {}, z.source_id));
      tr.appendChild(el("td", {}, z.zone));
      tr.appendChild(el("td", { class: "num inside" }, fmtInt(z.occupancy)));
      tr.appendChild(el("td", {}, byClass || "–"));
      tr.appendChild(el("td", { class: "num" }, fmtInt(z.enters)));
      tr.appendChild(el("td", { class: "num" }, fmtInt(z.exits)));
      tr.appendChild(el("td", { class: "num" }, fmtInt(z.lost_exits)));
      tr.appendChild(el("td", { class: "num" }, fmtInt(z.reported_occupancy)));
      tr.appendChild(el("td", {}, fmtTime(z.last_event_utc)));
      body.appendChild(tr);
    }
    if (zones.length > rows.length) {
      const more = `${fmtInt(zones.length - rows.length)} more zones (vision-stats zones, or GET ${API}/track/occupancy)`;
      mutedRow(body, 9, more);
    }
  }

  function drawOverview(o) {
    $("ov-events").textContent = fmtInt(o.events_total);
    $("ov-detections").textContent = fmtInt(o.detections_total);
    $("ov-latency").textContent = fmtMs(o.avg_latency_ms);
    $("ov-sources").textContent = fmtInt(o.source_count);
    $("ov-last").textContent = fmtTime(o.last_event_ts_utc);
  }

  function status(sec) {
    if (sec > 600) return ["silent", "silent"];
    if (sec > Math.max(60, 3 * refreshSec)) return ["quiet", "quiet"];
    return ["ok", "ok"];
  }

  function drawSources(sources) {
    const body = emptyBody("sources");
    if (!sources.length) {
      mutedRow(body, 6, "no source yet");
      return;
    }
    for (const s of sources) {
      const tr = el("tr", { "data-source": s.source_id });
      const [label, cls] = status(s.seconds_since_last);
      tr.appendChild(el("td", {}, s.source_id));
      tr.appendChild(el("td")).appendChild(el("span", { class: `badge ${cls}` }, label));
      const seen = el("td", {}, fmtAgo(s.seconds_since_last));
      seen.title = fmtTime(s.last_seen_utc);
      tr.appendChild(seen);
      tr.appendChild(el("td", { class: "num" }, fmtInt(s.events)));
      tr.appendChild(el("td", { class: "num" }, fmtInt(s.detections)));
      tr.appendChild(el("td", { class: "num" }, fmtMs(s.avg_latency_ms)));
      body.appendChild(tr);
    }
  }

  function drawRecent(events) {
    const body = emptyBody("recent");
    for (const e of events) {
      const tr = el("tr");
      const classes = Object.entries(e.counts_by_class || {}).filter(([, n]) => n > 0).map(([k, n]) => `${k} ${n}`).join(", ");
      tr.appendChild(el("td", {}, fmtTime(e.ts_utc)));
      tr.appendChild(el("td", {}, e.source_id));
      tr.appendChild(el("td", {}, e.mode));
      tr.appendChild(el("td", { class: "num" }, fmtInt(e.frame_index)));
      tr.appendChild(el("td", { class: "num" }, fmtMs(e.latency_ms)));
      tr.appendChild(el("td", { class: "num" }, fmtInt(e.detections_total)));
      tr.appendChild(el("td", {}, classes || "–"));
      body.appendChild(tr);
    }
  }

  async function refresh() {
    const [bucket, since] = $("window").value.split("|");
    try {
      const [overview, classes, series, sources, recent, counts, zonesNow, occupancy] = await Promise.all([
        getJSON("/overview"),
        getJSON("/classes?limit=20"),
        getJSON(`/series?bucket=${bucket}&since=${since}`),
        getJSON("/sources"),
        getJSON("/recent?limit=20"),
        getJSON(`/track/counts?bucket=${bucket}&since=${since}`),
        getJSON("/track/occupancy"),
        getJSON(`/track/occupancy/series?bucket=${bucket}&since=${since}`),
      ]);
      drawOverview(overview);
      drawClasses(classes);
      drawDetections(series);
      drawLatency(series);
      drawSources(sources);
      drawRecent(recent);
      drawCrossings(counts);
      drawOccupancySeries(occupancy);
      drawZonesNow(zonesNow);
      $("error").hidden = true;
      $("updated").textContent = `updated ${new Date().toISOString().slice(11, 19)} UTC, every ${refreshSec} s`;
      document.body.dataset.state = "ready";
    } catch (err) {
      $("error").hidden = false;
      $("error").textContent = `cannot load statistics: ${err.message} (retrying every ${refreshSec} s)`;
      document.body.dataset.state = "error";
    }
  }

  function schedule() {
    if (timer) clearInterval(timer);
    timer = setInterval(refresh, refreshSec * 1000);
  }

  $("window").addEventListener("change", () => { refresh(); schedule(); });
  refresh();
  schedule();
})();
