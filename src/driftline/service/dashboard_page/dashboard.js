/* driftline live dashboard.
 *
 * Starts from GET /dashboard/state, then follows WS /ws: prediction events update the live
 * counters, the feed and the live charts at once (charts redraw at most once a second);
 * model_updated, report, alert and loop events (gate, rollout, promotion, rollback) make it
 * ask /dashboard/state again.
 * No framework, no build step; Plotly comes from the app itself (/dashboard/plotly.min.js).
 *
 * Access control: when the server has a DRIFTLINE_READ_TOKEN, the page asks for it (or takes it
 * from the address, /dashboard#token=..., a fragment the browser never sends), keeps it in this
 * tab's sessionStorage, sends it as "Authorization: Bearer" to /dashboard/state and as the
 * WebSocket subprotocol "driftline.bearer.<base64url token>" to /ws.
 */
(() => {
  "use strict";

  const BASE = location.pathname.replace(/\/dashboard\/?$/, "");
  const WS_URL = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + BASE + "/ws";
  const STATE_URL = BASE + "/dashboard/state";
  const LIVE_BIN_S = 5;            // live traffic and latency per 5 s
  const LIVE_WINDOW_S = 15 * 60;   // keep 15 minutes of live bins
  const REFRESH_EVERY_MS = 15000;  // the slow parts (history, rollout) even without events
  const FEED_ROWS = 12;
  const TOKEN_KEY = "driftline.token";
  const WS_SUBPROTOCOL = "driftline";
  const WS_TOKEN_PREFIX = "driftline.bearer.";
  const VISIBLE_ASCII = /^[\x21-\x7e]+$/;  // what a token may hold (as the server checks)

  const C = {
    text: "#c9d4e0", muted: "#8b98a9", grid: "#222b38", line: "#273142",
    accent: "#58a6ff", ok: "#3fb950", warn: "#d29922", crit: "#f85149", violet: "#bc8cff",
    ref: "#6e7681", none: "#1c4a2c", untested: "#2d3644",
  };
  const CONFIG = { displayModeBar: false, responsive: true };

  const live = {
    count: 0,              // predictions the feed told us about (delivered + dropped)
    bins: new Map(),       // bin start (s) -> {n, lat: []}
    latencies: [],         // last 300 latencies (ms)
    confidences: [],       // last 1000 confidences
    classes: {},           // class -> count (delivered events)
    arrivals: [],          // [ts, n] of the last seconds, for req/s
    dirty: false,
  };
  let state = null;
  let seenAudit = null;
  let refreshTimer = null;
  let token = takeToken();
  let socketStarted = false;

  // --- small helpers -----------------------------------------------------------------------

  const $ = (id) => document.getElementById(id);

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "title") node.title = v;
      else node.setAttribute(k, v);
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function setText(id, text) {
    const node = $(id);
    if (node && node.textContent !== String(text)) node.textContent = String(text);
  }

  const pad = (n) => String(n).padStart(2, "0");
  function clock(ts) {
    const d = new Date(ts * 1000);
    return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }
  function ago(ts) {
    const s = Math.max(0, Date.now() / 1000 - ts);
    if (s < 60) return `${Math.round(s)} s ago`;
    if (s < 3600) return `${Math.round(s / 60)} min ago`;
    if (s < 86400) return `${Math.round(s / 3600)} h ago`;
    return `${Math.round(s / 86400)} d ago`;
  }
  const pct = (x) => (x === null || x === undefined ? "—" : `${(100 * x).toFixed(1)}%`);
  const num = (x, digits = 1) => (x === null || x === undefined ? "—" : Number(x).toFixed(digits));
  const toDate = (ts) => new Date(ts * 1000);

  function quantile(values, q) {
    if (!values.length) return null;
    const sorted = [...values].sort((a, b) => a - b);
    const pos = (sorted.length - 1) * q;
    const lo = Math.floor(pos);
    const hi = Math.ceil(pos);
    return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
  }

  function flash(id) {
    const node = $(id);
    if (!node) return;
    node.classList.add("flash");
    setTimeout(() => node.classList.remove("flash"), 1500);
  }

  function setClass(node, prefix, value) {
    for (const cls of [...node.classList]) if (cls.startsWith(prefix)) node.classList.remove(cls);
    if (value) node.classList.add(prefix + String(value).replace(/[^a-z0-9_-]/gi, "_"));
  }

  // --- Plotly ------------------------------------------------------------------------------

  function layout(extra) {
    const axis = { gridcolor: C.grid, zerolinecolor: C.line, linecolor: C.line, tickfont: { size: 10 } };
    return Object.assign(
      {
        paper_bgcolor: "rgba(0,0,0,0)",
        plot_bgcolor: "rgba(0,0,0,0)",
        font: { color: C.text, size: 11, family: "system-ui, -apple-system, Segoe UI, Roboto, sans-serif" },
        margin: { l: 46, r: 12, t: 10, b: 34 },
        xaxis: Object.assign({}, axis),
        yaxis: Object.assign({}, axis),
        legend: { orientation: "h", x: 0, y: 1.14, font: { size: 11 }, bgcolor: "rgba(0,0,0,0)" },
        hoverlabel: { bgcolor: "#1b2330", bordercolor: C.line, font: { color: "#e6edf3" } },
        showlegend: true,
        bargap: 0.15,
      },
      extra || {},
    );
  }

  function emptyLayout(message) {
    return layout({
      xaxis: { visible: false },
      yaxis: { visible: false },
      showlegend: false,
      annotations: [{ text: message, showarrow: false, font: { color: C.muted, size: 13 }, xref: "paper", yref: "paper", x: 0.5, y: 0.5 }],
    });
  }

  let revision = 0;
  function draw(id, traces, lay) {
    if (typeof Plotly === "undefined") return;
    revision += 1;
    Plotly.react($(id), traces, Object.assign(lay, { datarevision: revision }), CONFIG);
  }

  // --- live events -------------------------------------------------------------------------

  function onPrediction(ev) {
    const n = 1 + (Number(ev.dropped) || 0);
    const ts = Number(ev.ts) || Date.now() / 1000;
    live.count += n;
    live.arrivals.push([ts, n]);
    const start = Math.floor(ts / LIVE_BIN_S) * LIVE_BIN_S;
    let bin = live.bins.get(start);
    if (!bin) live.bins.set(start, (bin = { n: 0, lat: [] }));
    bin.n += n;
    if (typeof ev.latency_ms === "number") {
      bin.lat.push(ev.latency_ms);
      live.latencies.push(ev.latency_ms);
      if (live.latencies.length > 300) live.latencies.shift();
    }
    if (typeof ev.confidence === "number") {
      live.confidences.push(ev.confidence);
      if (live.confidences.length > 1000) live.confidences.shift();
    }
    const cls = String(ev.prediction);
    live.classes[cls] = (live.classes[cls] || 0) + 1;
    addFeedRow(ev);
    live.dirty = true;
    renderLiveCards();
  }

  function addFeedRow(ev) {
    const body = $("feed");
    const variant = ev.variant && ev.variant !== "champion" ? ev.variant : null;
    const row = el(
      "tr",
      { class: "new" },
      el("td", {}, clock(ev.ts)),
      el("td", { class: "rid", title: ev.request_id }, ev.request_id),
      el("td", {}, String(ev.prediction)),
      el("td", {}, num(ev.confidence, 2)),
      el("td", {}, num(ev.latency_ms, 1)),
      el("td", { class: variant ? "canary" : null }, `v${ev.model_version}${variant ? " " + variant : ""}`),
    );
    body.prepend(row);
    while (body.rows.length > FEED_ROWS) body.deleteRow(body.rows.length - 1);
  }

  function renderLiveCards() {
    setText("live-count", live.count.toLocaleString("en-US"));
    const now = Date.now() / 1000;
    while (live.arrivals.length && live.arrivals[0][0] < now - 10) live.arrivals.shift();
    const recent = live.arrivals.reduce((sum, [, n]) => sum + n, 0);
    setText("rps", (recent / 10).toFixed(1));
    setText("lat-p50", num(quantile(live.latencies, 0.5), 1));
    setText("lat-p95", num(quantile(live.latencies, 0.95), 1));
    const conf = live.confidences;
    setText("conf-mean", conf.length ? num(conf.reduce((a, b) => a + b, 0) / conf.length, 3) : "—");
  }

  function onEvent(ev) {
    switch (ev.type) {
      case "hello":
        setText("serving", ev.model_version ? `this worker serves v${ev.model_version}` : "this worker serves nothing yet");
        if (state && state.models && state.models.serving_version !== ev.model_version) scheduleRefresh(0);
        break;
      case "prediction":
        onPrediction(ev);
        break;
      case "model_updated":
        flash("card-champion");
        scheduleRefresh(0);
        break;
      case "report":
        flash("card-report");
        scheduleRefresh(0);
        break;
      case "alert":
        flash("card-alerts");
        scheduleRefresh(0);
        break;
      case "rollout":
      case "gate":
      case "promotion":
      case "rollback":
        flash("card-rollout");
        scheduleRefresh(0);
        break;
      default:
        break;
    }
  }

  // --- access control ----------------------------------------------------------------------

  function saveToken(value) {
    try {
      sessionStorage.setItem(TOKEN_KEY, value);
    } catch (err) {
      /* no storage: the token lives in this page only */
    }
  }

  function takeToken() {
    const match = /(?:^#|&)token=([^&]*)/.exec(location.hash);
    if (match) {
      history.replaceState(null, "", location.pathname + location.search);  // out of sight
      let value = match[1];
      try {
        value = decodeURIComponent(value);
      } catch (err) {
        /* not percent-encoded: take it as it is */
      }
      saveToken(value);
      return value;
    }
    try {
      return sessionStorage.getItem(TOKEN_KEY);
    } catch (err) {
      return null;
    }
  }

  function usable() {  // a token no server can hold is not sent at all (it would not encode)
    return Boolean(token) && VISIBLE_ASCII.test(token);
  }

  function authHeaders() {
    return usable() ? { authorization: `Bearer ${token}` } : {};
  }

  function wsProtocols() {
    if (!usable()) return undefined;
    const b64url = btoa(token).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
    return [WS_SUBPROTOCOL, WS_TOKEN_PREFIX + b64url];
  }

  function askForToken(status) {
    const form = $("auth");
    $("auth-why").textContent = status === 403
      ? "this token may not read (HTTP 403)"
      : token ? "wrong read token (HTTP 401)" : "read token needed";
    form.hidden = false;
    $("auth-token").focus();
  }

  $("auth").addEventListener("submit", (event) => {
    event.preventDefault();
    const value = $("auth-token").value.trim();
    if (!value) return;
    if (!VISIBLE_ASCII.test(value)) {
      $("auth-why").textContent = "a token is visible ASCII only";
      return;
    }
    token = value;
    saveToken(token);
    $("auth-token").value = "";
    refresh();
  });

  // --- live events -------------------------------------------------------------------------

  let attempts = 0;
  function setConn(kind, text) {
    const node = $("conn");
    node.className = `pill pill-${kind}`;
    node.textContent = text;
  }

  function connect() {
    setConn("wait", attempts ? "reconnecting…" : "connecting…");
    let socket;
    try {
      socket = new WebSocket(WS_URL, wsProtocols());
    } catch (err) {
      setConn("down", "no WebSocket");
      return;
    }
    socket.onopen = () => {
      attempts = 0;
      setConn("live", "live");
    };
    socket.onmessage = (msg) => {
      let ev;
      try {
        ev = JSON.parse(msg.data);
      } catch (err) {
        return;
      }
      onEvent(ev);
    };
    socket.onclose = () => {
      attempts += 1;
      setConn("down", "offline");
      if (attempts > 1) scheduleRefresh(0);  // a refused token shows up as a 401 there
      setTimeout(connect, Math.min(10000, 500 * 2 ** Math.min(attempts, 5)));
    };
  }

  // --- state -------------------------------------------------------------------------------

  function scheduleRefresh(delay) {
    if (refreshTimer !== null) return;
    refreshTimer = setTimeout(() => {
      refreshTimer = null;
      refresh();
    }, delay);
  }

  async function refresh() {
    try {
      const response = await fetch(STATE_URL, {
        cache: "no-store",
        headers: { accept: "application/json", ...authHeaders() },
      });
      if (response.status === 401 || response.status === 403) {
        setText("updated", `token needed (HTTP ${response.status})`);
        askForToken(response.status);
        return;
      }
      startSocket();
      if (!response.ok) {
        setText("updated", `state unavailable (HTTP ${response.status})`);
        return;
      }
      state = await response.json();
    } catch (err) {
      setText("updated", "state unavailable (server unreachable)");
      startSocket();
      return;
    }
    $("auth").hidden = true;
    setText("updated", `updated ${clock(state.ts)}`);
    renderState();
  }

  function startSocket() {  // once the server did not refuse the token (it reconnects itself)
    if (socketStarted) return;
    socketStarted = true;
    connect();
  }

  function renderState() {
    setText("model-name", state.model_name);
    renderModels(state.models);
    renderRollout(state.rollout);
    renderReportCard(state.latest_report);
    renderAlerts(state.alerts);
    renderAudit(state.audit);
    drawTraffic();
    drawLatency();
    drawClasses();
    drawConfidence();
    drawAccuracy(state.accuracy);
    drawHeatmap(state.heatmap);
  }

  function renderModels(models) {
    const champ = models.champion;
    setText("champion-version", champ ? `v${champ.version}` : "none");
    setText("champion-kind", champ ? champ.kind || "model" : "no model");
    setText("champion-acc", champ ? pct(champ.metrics && champ.metrics.accuracy) : "—");
    setText(
      "serving",
      models.serving_version ? `this worker serves v${models.serving_version}` : "this worker serves nothing yet",
    );
    const chall = models.challenger;
    setText("challenger-version", chall ? `v${chall.version}` : "none");
    setText("challenger-kind", chall ? chall.kind || "model" : "no candidate");
    setText("challenger-acc", chall ? pct(chall.metrics && chall.metrics.accuracy) : "—");
  }

  function renderRollout(rollout) {
    const stage = $("rollout-stage");
    if (!rollout) {
      stage.textContent = "no rollout";
      setClass(stage, "stage-", null);
      setText("rollout-detail", "nothing in flight");
      return;
    }
    if (rollout.error) {
      stage.textContent = "unavailable";
      setClass(stage, "stage-", "error");
      setText("rollout-detail", rollout.error);
      return;
    }
    const name = rollout.stage || "unknown";
    stage.textContent = String(name).replace(/_/g, " ");
    setClass(stage, "stage-", name);
    const parts = [];
    if (rollout.champion !== undefined || rollout.challenger !== undefined) {
      parts.push(`v${rollout.champion ?? "?"} → v${rollout.challenger ?? "?"}`);
    }
    const share = rollout.share ?? rollout.canary_share ?? rollout.traffic_share;
    if (typeof share === "number") parts.push(`canary share ${pct(share)}`);
    if (typeof rollout.started_at === "number") parts.push(`since ${clock(rollout.started_at)}`);
    if (rollout.reason) parts.push(String(rollout.reason));
    setText("rollout-detail", parts.join(" · ") || "in flight");
  }

  function renderReportCard(report) {
    const badge = $("report-status");
    if (!report) {
      badge.textContent = "none yet";
      setClass(badge, "sev-", null);
      const every = state.settings ? Math.round(state.settings.monitor_interval_seconds) : null;
      setText("report-detail", every ? `the monitor runs every ${every} s` : "the monitor has not run");
      return;
    }
    badge.textContent = report.status.replace(/_/g, " ");
    setClass(badge, "sev-", report.status);
    const drifted = report.drifted_features.length ? `drift: ${report.drifted_features.join(", ")}` : "no feature drifted";
    setText("report-detail", `#${report.id} · ${ago(report.ts)} · ${drifted}`);
  }

  function renderAlerts(alerts) {
    setText("alert-count", alerts.length);
    const order = { critical: 3, warning: 2, info: 1 };
    const worst = alerts.reduce((w, a) => ((order[a.severity] || 0) > (order[w] || 0) ? a.severity : w), null);
    setText("alert-worst", worst ? `worst: ${worst}` : "all quiet");
    const list = $("alerts");
    list.replaceChildren();
    if (!alerts.length) {
      list.append(el("li", { class: "placeholder" }, "No alert is firing."));
      return;
    }
    for (const a of alerts) {
      list.append(
        el(
          "li",
          {},
          el("span", { class: `sev sev-${a.severity}` }, a.severity),
          el("span", { class: "title" }, a.name),
          el("span", { class: "detail" }, `${a.summary || a.description || ""} · since ${clock(a.starts_at)}`),
        ),
      );
    }
  }

  function renderAudit(entries) {
    const list = $("audit");
    const first = seenAudit === null;
    const seen = seenAudit || new Set();
    list.replaceChildren();
    if (!entries.length) {
      list.append(el("li", { class: "placeholder" }, "Nothing recorded yet."));
    }
    for (const e of entries) {
      const cls = [`kind-${String(e.kind).replace(/[^a-z0-9_-]/gi, "_")}`];
      if (!e.success) cls.push("fail");
      if (!first && !seen.has(e.id)) cls.push("new");
      list.append(
        el(
          "li",
          { class: cls.join(" ") },
          el(
            "div",
            { class: "meta" },
            el("span", {}, clock(e.ts)),
            el("span", { class: "kind" }, String(e.kind).replace(/_/g, " ")),
            el("span", {}, e.actor),
            e.model_version ? el("span", {}, `v${e.model_version}`) : null,
          ),
          el("div", { class: "message" }, e.message),
        ),
      );
    }
    seenAudit = new Set(entries.map((e) => e.id));
  }

  // --- charts ------------------------------------------------------------------------------

  function liveSeries() {
    const now = Date.now() / 1000;
    for (const start of [...live.bins.keys()]) if (start < now - LIVE_WINDOW_S) live.bins.delete(start);
    const starts = [...live.bins.keys()].sort((a, b) => a - b);
    // The bin still filling up counts over the seconds it has had so far.
    return starts.map((s) => ({
      ts: s + LIVE_BIN_S / 2,
      seconds: Math.min(LIVE_BIN_S, Math.max(1, now - s)),
      bin: live.bins.get(s),
    }));
  }

  function drawTraffic() {
    const hist = (state && state.traffic) || { ts: [], rps: [] };
    const points = liveSeries();
    if (!hist.ts.length && !points.length) {
      draw("chart-traffic", [], emptyLayout("Waiting for traffic…"));
      return;
    }
    const traces = [
      {
        type: "bar", name: "per minute", x: hist.ts.map(toDate), y: hist.rps,
        width: hist.ts.map((_, i) => ((hist.width_seconds || [])[i] || hist.bucket_seconds || 60) * 1000 * 0.9),
        marker: { color: "rgba(88,166,255,0.35)", line: { color: C.accent, width: 1 } },
        hovertemplate: "%{x|%H:%M}<br>%{y:.2f} req/s<extra>per minute</extra>",
      },
      {
        type: "scatter", mode: "lines+markers", name: "live (5 s)",
        x: points.map((p) => toDate(p.ts)), y: points.map((p) => p.bin.n / p.seconds),
        line: { color: C.ok, width: 2 }, marker: { size: 4 },
        hovertemplate: "%{x|%H:%M:%S}<br>%{y:.1f} req/s<extra>live</extra>",
      },
    ];
    draw("chart-traffic", traces, layout({ yaxis: { title: { text: "req/s" }, gridcolor: C.grid, rangemode: "tozero" }, xaxis: { type: "date", gridcolor: C.grid } }));
  }

  function drawLatency() {
    const hist = (state && state.traffic) || { ts: [], p50_ms: [], p95_ms: [] };
    const points = liveSeries().filter((p) => p.bin.lat.length);
    if (!hist.ts.length && !points.length) {
      draw("chart-latency", [], emptyLayout("Waiting for traffic…"));
      return;
    }
    const x = points.map((p) => toDate(p.ts));
    const traces = [
      {
        type: "scatter", mode: "lines+markers", name: "p95 / min", x: hist.ts.map(toDate), y: hist.p95_ms,
        line: { color: C.violet, width: 1.5, dash: "dot", shape: "hv" }, marker: { size: 5 },
        hovertemplate: "%{x|%H:%M}<br>p95 ≤ %{y} ms<extra>per minute</extra>",
      },
      {
        type: "scatter", mode: "lines+markers", name: "p50 live", x,
        y: points.map((p) => quantile(p.bin.lat, 0.5)), line: { color: C.accent, width: 2 }, marker: { size: 4 },
        hovertemplate: "%{x|%H:%M:%S}<br>p50 %{y:.2f} ms<extra>live</extra>",
      },
      {
        type: "scatter", mode: "lines+markers", name: "p95 live", x,
        y: points.map((p) => quantile(p.bin.lat, 0.95)), line: { color: C.warn, width: 2 }, marker: { size: 4 },
        hovertemplate: "%{x|%H:%M:%S}<br>p95 %{y:.2f} ms<extra>live</extra>",
      },
    ];
    draw("chart-latency", traces, layout({ yaxis: { title: { text: "ms" }, gridcolor: C.grid, rangemode: "tozero" }, xaxis: { type: "date", gridcolor: C.grid } }));
  }

  function shares(counts) {
    const total = Object.values(counts).reduce((a, b) => a + b, 0);
    const out = {};
    for (const [k, v] of Object.entries(counts)) out[k] = total ? v / total : 0;
    return [out, total];
  }

  function drawClasses() {
    const reference = (state && state.classes && state.classes.reference) || {};
    const [recent, recentN] = shares((state && state.classes && state.classes.recent) || {});
    const [livePart, liveN] = shares(live.classes);
    const names = [...new Set([...Object.keys(reference), ...Object.keys(recent), ...Object.keys(livePart)])].sort();
    if (!names.length) {
      draw("chart-classes", [], emptyLayout("No predictions yet"));
      return;
    }
    const bar = (name, values, color, n) => ({
      type: "bar", name: n === null ? name : `${name} (${n.toLocaleString("en-US")})`, x: names,
      y: names.map((k) => values[k] || 0), marker: { color },
      hovertemplate: `class %{x}<br>%{y:.1%}<extra>${name}</extra>`,
    });
    const traces = [bar("reference", reference, C.ref, null), bar("last hour", recent, C.accent, recentN), bar("live", livePart, C.ok, liveN)];
    draw("chart-classes", traces, layout({ barmode: "group", yaxis: { tickformat: ".0%", gridcolor: C.grid, range: [0, 1] }, xaxis: { type: "category", title: { text: "predicted class" } } }));
  }

  function drawConfidence() {
    const values = live.confidences;
    if (!values.length) {
      draw("chart-confidence", [], emptyLayout("Waiting for live predictions…"));
      return;
    }
    const trace = {
      type: "histogram", x: [...values], name: "confidence", xbins: { start: 0, end: 1.0001, size: 0.025 },
      marker: { color: "rgba(188,140,255,0.55)", line: { color: C.violet, width: 1 } },
      hovertemplate: "%{x}<br>%{y} predictions<extra></extra>",
    };
    const lo = Math.max(0, Math.floor(Math.min(...values) * 20) / 20 - 0.05);
    draw("chart-confidence", [trace], layout({ showlegend: false, xaxis: { range: [lo, 1.0], gridcolor: C.grid, title: { text: `confidence · last ${values.length}` } }, yaxis: { gridcolor: C.grid, rangemode: "tozero", title: { text: "predictions" } } }));
  }

  function drawAccuracy(acc) {
    if (!acc || !acc.ts.length) {
      draw("chart-accuracy", [], emptyLayout("No report yet: accuracy appears with the first monitor run"));
      return;
    }
    const x = acc.ts.map(toDate);
    const named = (e) => (e === "doubly_robust" ? "doubly robust" : e ? e.toUpperCase() : "CBPE");
    // Which estimator produced the latest estimate, and why (the reason as the hint's tooltip).
    const last = (acc.estimator || []).length - 1;
    const hint = document.getElementById("accuracy-hint");
    if (hint && last >= 0 && acc.estimator[last]) {
      hint.textContent = `estimated (no labels, ${named(acc.estimator[last])}) vs realized (labels)`;
      hint.title = (acc.estimator_reason || [])[last] || "";
    }
    const traces = [
      {
        type: "scatter", mode: "lines+markers", name: "estimated", x, y: acc.estimated, connectgaps: true,
        customdata: (acc.estimator || []).map(named),
        line: { color: C.accent, width: 2 }, hovertemplate: "%{x|%H:%M:%S}<br>%{y:.1%} (%{customdata})<extra>estimated</extra>",
      },
      {
        type: "scatter", mode: "lines+markers", name: "realized", x, y: acc.realized, connectgaps: true,
        customdata: acc.labeled, line: { color: C.ok, width: 2 },
        hovertemplate: "%{x|%H:%M:%S}<br>%{y:.1%} on %{customdata} labels<extra>realized</extra>",
      },
    ];
    if (acc.reference !== null && acc.reference !== undefined) {
      traces.push({
        type: "scatter", mode: "lines", name: "reference", x: [x[0], x[x.length - 1]], y: [acc.reference, acc.reference],
        line: { color: C.ref, width: 1.5, dash: "dash" }, hovertemplate: "%{y:.1%}<extra>reference (holdout)</extra>",
      });
    }
    const values = [...acc.estimated, ...acc.realized, acc.reference].filter((v) => typeof v === "number");
    const low = values.length ? Math.max(0, Math.min(...values) - 0.05) : 0;
    draw("chart-accuracy", traces, layout({ yaxis: { tickformat: ".0%", range: [low, 1.0], gridcolor: C.grid }, xaxis: { type: "date", gridcolor: C.grid } }));
  }

  function drawHeatmap(heat) {
    if (!heat || !heat.reports.length || !heat.features.length) {
      draw("chart-heatmap", [], emptyLayout("No report yet: each monitor run adds a column (POST /reports/run, or wait for the schedule)"));
      return;
    }
    const n = heat.reports.length;
    const labels = heat.ts.map((ts, j) => `${clock(ts)} #${heat.reports[j]}`);
    const verdict = { "-1": "too little data to test", 0: "no drift", 1: "warning", 2: "critical" };
    const customdata = heat.features.map((_, i) =>
      heat.reports.map((id, j) => [
        heat.z[i][j] === null ? "not in this report" : verdict[heat.z[i][j]],
        heat.effect[i][j] === null ? "—" : Number(heat.effect[i][j]).toFixed(4),
        heat.effect_name[i][j] || "effect",
        heat.p_adjusted[i][j] === null ? "—" : Number(heat.p_adjusted[i][j]).toExponential(2),
        labels[j],
      ]),
    );
    const step = Math.max(1, Math.ceil(n / 10));
    const tickvals = [];
    for (let j = n - 1; j >= 0; j -= step) tickvals.unshift(j);
    const trace = {
      type: "heatmap",
      x: heat.reports.map((_, j) => j),
      y: heat.features,
      z: heat.z,
      zmin: -1,
      zmax: 2,
      xgap: 2,
      ygap: 2,
      customdata,
      colorscale: [
        [0, C.untested], [1 / 6, C.untested], [1 / 6, C.none], [0.5, C.none],
        [0.5, C.warn], [5 / 6, C.warn], [5 / 6, C.crit], [1, C.crit],
      ],
      colorbar: {
        tickvals: [-0.75, 0, 1, 1.75], ticktext: ["too few rows", "none", "warning", "critical"],
        thickness: 10, outlinewidth: 0, tickfont: { size: 10 },
      },
      hovertemplate: "<b>%{y}</b> · %{customdata[4]}<br>%{customdata[0]}<br>%{customdata[2]} %{customdata[1]}<br>p (BH) %{customdata[3]}<extra></extra>",
    };
    draw("chart-heatmap", [trace], layout({
      showlegend: false,
      margin: { l: 130, r: 12, t: 10, b: 40 },
      xaxis: { tickvals, ticktext: tickvals.map((j) => labels[j]), showgrid: false, zeroline: false, range: [-0.5, n - 0.5] },
      yaxis: { autorange: "reversed", showgrid: false, automargin: true },
    }));
  }

  // --- start -------------------------------------------------------------------------------

  function tick() {
    renderLiveCards();
    if (live.dirty && state) {
      live.dirty = false;
      drawTraffic();
      drawLatency();
      drawClasses();
      drawConfidence();
    }
  }

  refresh();
  setInterval(tick, 1000);
  setInterval(() => scheduleRefresh(0), REFRESH_EVERY_MS);
})();
