// The routing page: polls ./state once a second and redraws. Every value from the gateway
// (service names, check output: whoever registers in Consul writes them) goes into the page
// as text, never as HTML.
"use strict";

(() => {
  const POLL_MS = 1000;
  const TOKEN_KEY = "gateway-admin-token";
  const REASONS = {
    connect_refused: "connection refused",
    connect_timeout: "connect timed out",
    connect_failed: "connect failed",
    timeout: "answer timed out",
    bad_response: "invalid answer",
    connection_broken: "connection broke",
  };
  const EXCLUDED = {
    service_not_routed: "service not routed",
    outside_upstream_cidrs: "outside GATEWAY_UPSTREAM_CIDRS",
    maintenance: "in maintenance",
    ejected: "ejected",
  };

  let token = takeToken();
  let workerCount = 1; // how many workers the last state added up

  // A token in the fragment (#token=...) moves to this tab's sessionStorage and leaves the
  // address bar, so it is neither bookmarked nor shown; fragments are never sent to a server.
  function takeToken() {
    const match = /(?:^#|&)token=([^&]*)/.exec(location.hash);
    if (match) {
      history.replaceState(null, "", location.pathname + location.search);
      let given;
      try {
        given = decodeURIComponent(match[1]);
      } catch (err) {
        return null;  // a malformed %-escape: the page asks for the token in its form instead
      }
      sessionStorage.setItem(TOKEN_KEY, given);
      return given;
    }
    return sessionStorage.getItem(TOKEN_KEY);
  }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value !== null && value !== undefined) node.setAttribute(key, value);
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function seconds(value) {
    if (value === null || value === undefined) return "never";
    if (value < 10) return `${value.toFixed(1)} s`;
    if (value < 120) return `${Math.round(value)} s`;
    return `${Math.round(value / 60)} min`;
  }

  function reason(code) {
    if (code.startsWith("status_")) return `answered ${code.slice(7)}`;
    if (code.startsWith("consul_")) return `${code.slice(7)} in Consul`;
    return REASONS[code] || EXCLUDED[code] || code;
  }

  function setStatus(text, kind) {
    const node = document.getElementById("status");
    node.textContent = text;
    node.className = `status ${kind || ""}`;
  }

  function renderFacts(state) {
    const consul = state.consul;
    const sync = document.getElementById("sync");
    const age = consul.last_sync_age_seconds;
    let text = age === null ? "no answer from Consul yet" : `last answer ${seconds(age)} ago`;
    if (consul.failing_for_seconds !== null) {
      text += `; failing for ${seconds(consul.failing_for_seconds)}`;
    }
    if (consul.from_snapshot_file) text += "; routing from the snapshot file";
    if (consul.last_error) text += ` (${consul.last_error})`;
    sync.textContent = text;
    const late = age === null || age > consul.watch_wait_seconds + 5;
    sync.className = `value ${consul.failing_for_seconds !== null || late ? "bad" : "good"}`;
    sync.title = `Consul's blocking queries answer at least every ${consul.watch_wait_seconds} s`;

    const budget = state.retry_budget;
    document.getElementById("budget").textContent =
      `${budget.retries} of ${budget.allowed} retries used in the last ${budget.window_seconds} s ` +
      `(${budget.requests} requests); ${budget.granted_total} granted, ` +
      `${budget.denied_total} denied since start`;
    const workers = document.getElementById("worker");
    workers.textContent = workersText(state.worker);
    const short = state.worker.not_answering.length || state.worker.missing;
    workers.className = `value ${short ? "bad" : ""}`;
  }

  function workersText(worker) {
    if (!worker.merged) return `worker pid ${worker.pid} only, one of ${worker.workers}`;
    const counted = worker.answered.length;
    if (worker.workers === 1 && counted === 1) return `the only worker, pid ${worker.pid}`;
    let text =
      counted === worker.workers
        ? `all ${counted} workers added up`
        : `${counted} of ${worker.workers} workers added up`;
    for (const silent of worker.not_answering) text += `; pid ${silent.pid}: ${silent.why}`;
    if (worker.missing) text += `; ${worker.missing} not sharing yet`;
    return `${text} (answered by pid ${worker.pid})`;
  }

  // "ejected by 1 of 2 workers": each worker ejects on its own.
  function ejectedBy(row) {
    const counted = workerCount;
    if (counted < 2 || !row.ejected_by_workers) return "";
    return `ejected by ${row.ejected_by_workers} of ${counted} workers`;
  }

  function sparkline(series) {
    const peak = Math.max(1, ...series);
    const line = el("span", { class: "spark", "aria-hidden": "true" });
    for (const count of series) {
      const bar = el("span", { class: "bar" });
      bar.style.height = `${Math.round((count / peak) * 100)}%`;
      line.append(bar);
    }
    return line;
  }

  function trafficCell(row) {
    const share = row.share === null ? 0 : row.share;
    const meter = el("span", { class: "meter" }, el("span", { class: "fill" }));
    meter.firstChild.style.width = `${Math.round(share * 100)}%`;
    const label = row.share === null ? "no traffic" : `${Math.round(share * 100)}%`;
    return el(
      "td",
      { class: "traffic", "data-share": row.share },
      meter,
      el("span", { class: "num" }, `${label} · ${row.requests_last_minute} req`),
      sparkline(row.requests_per_second),
    );
  }

  function ejectionCell(row) {
    const ejection = row.ejection;
    if (!ejection) return el("td", { class: "muted" }, "never");
    const why =
      ejection.failures > 1
        ? `${ejection.failures} failures in a row, the last: ${reason(ejection.reason)}`
        : reason(ejection.reason);
    if (!ejection.active) {
      return el("td", { class: "muted" }, `last ${seconds(ejection.since_seconds_ago)} ago: ${why}`);
    }
    const until = ejection.until_consul_reports_it_back
      ? `until Consul reports it back (at most ${seconds(ejection.ends_in_seconds)})`
      : `for ${seconds(ejection.ends_in_seconds)} more`;
    const note = row.ejection_ignored_by_panic_threshold ? " (panic threshold: used anyway)" : "";
    const by = ejectedBy(row);
    return el(
      "td",
      { class: "ejected", "data-ejected": "true", "data-ejected-by": row.ejected_by_workers },
      `${by ? `${by}: ` : ""}${why}; since ${seconds(ejection.since_seconds_ago)} ago, ${until}${note}`,
    );
  }

  function failuresCell(row) {
    if (!row.failures_last_minute && !row.consecutive_failures) return el("td", { class: "muted" }, "0");
    const last = row.last_failure
      ? `; last: ${reason(row.last_failure.reason)}, ${seconds(row.last_failure.seconds_ago)} ago`
      : "";
    return el("td", {}, `${row.failures_last_minute} in the last min${last}`);
  }

  function instanceRow(row) {
    const checks = (row.checks || []).map((c) => `${c.name}: ${c.status} ${c.output}`.trim());
    return el(
      "tr",
      { "data-instance": row.instance, "data-status": row.status, "data-routed": String(row.routed) },
      el(
        "th",
        { scope: "row" },
        row.instance,
        row.address ? el("span", { class: "sub" }, row.address) : null,
      ),
      el("td", {}, el("span", { class: `badge ${row.status}`, title: checks.join("\n") }, row.status)),
      el(
        "td",
        { class: row.routed ? "good" : "bad" },
        row.routed
          ? `yes${ejectedBy(row) ? ` (${ejectedBy(row)})` : ""}`
          : `no: ${row.excluded.map(reason).join(", ")}`,
      ),
      el("td", { class: "num" }, row.in_flight),
      trafficCell(row),
      el("td", { class: "num" }, row.latency_ewma_ms === null ? "–" : `${row.latency_ewma_ms} ms`),
      failuresCell(row),
      ejectionCell(row),
    );
  }

  function serviceSection(service) {
    const where = service.prefix
      ? `${service.prefix} · ${service.balancer}`
      : "not routed";
    const head = el(
      "tr",
      {},
      ...["instance", "Consul", "routed", "in flight", "traffic, last minute", "latency",
        "failures", "ejection"].map((name) => el("th", { scope: "col" }, name)),
    );
    return el(
      "section",
      { class: "service", "data-service": service.service },
      el("h2", {}, service.service, el("span", { class: "sub" }, where)),
      service.route_note ? el("p", { class: "note" }, service.route_note) : null,
      el(
        "table",
        {},
        el("thead", {}, head),
        el("tbody", {}, ...service.instances.map(instanceRow)),
      ),
    );
  }

  function render(state) {
    workerCount = state.worker.answered.length;
    renderFacts(state);
    const main = document.getElementById("services");
    const sections = state.services.map(serviceSection);
    if (!sections.length) sections.push(el("p", { class: "note" }, "Consul lists no service."));
    main.replaceChildren(...sections);
    setStatus(`live, updated ${new Date().toLocaleTimeString()}`, "live");
  }

  function askForToken(message) {
    const form = document.getElementById("login");
    form.hidden = false;
    setStatus(message, "bad");
  }

  async function poll() {
    try {
      const headers = token ? { Authorization: `Bearer ${token}` } : {};
      const response = await fetch("state", { headers, cache: "no-store" });
      if (response.status === 401) {
        sessionStorage.removeItem(TOKEN_KEY);
        token = null;
        askForToken("This gateway's admin API needs its token.");
        return; // polling resumes when a token is given
      }
      const body = await response.json();
      if (!response.ok) throw new Error(`${response.status} ${body.error}: ${body.detail}`);
      render(body);
    } catch (error) {
      setStatus(`cannot reach the gateway (${error.message}); retrying`, "bad");
    }
    setTimeout(poll, POLL_MS);
  }

  document.getElementById("login").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = document.getElementById("token");
    token = input.value;
    input.value = "";
    sessionStorage.setItem(TOKEN_KEY, token);
    event.target.hidden = true;
    setStatus("loading…");
    poll();
  });

  poll();
})();
