// runhost playground. Plain JavaScript, no dependencies: the page is served
// with "Content-Security-Policy: default-src 'self'" (images may also be data:
// URLs), so everything lives in this file and output is only ever written
// with textContent. The one exception is a cell's text/html result: it is
// untrusted, so it is rewritten as plain markup (cleanHTML) and goes into an
// iframe sandboxed without any permission (no scripts, its own opaque
// origin), never into this page's DOM.
"use strict";

const $ = (id) => document.getElementById(id);

const STARTERS = {
  python: `import sys

name = sys.stdin.read().strip() or "world"
print(f"Hello, {name}!")
print("args:", sys.argv[1:])
print("this line goes to stderr", file=sys.stderr)
`,
  node: `const name = require("fs").readFileSync(0, "utf8").trim() || "world";
console.log(\`Hello, \${name}!\`);
console.log("args:", process.argv.slice(2));
console.error("this line goes to stderr");
`,
  shell: `name=$(cat)
echo "Hello, \${name:-world}!"
echo "args: $*"
echo "this line goes to stderr" >&2
`,
  dockerfile: `FROM runhost/python:3.11
CMD ["python3", "-c", "print('built, then run')"]
`,
};
const CELL_STARTERS = {
  python: `x = 41
x + 1
`,
  node: `const x = await Promise.resolve(41);
x + 1
`,
};
const INDENT = { python: "    " };

// The MIME types a cell's result is shown as, richest first: one per result.
const RICH_ORDER = ["image/png", "image/jpeg", "image/svg+xml", "text/html", "text/markdown",
  "text/latex", "application/json", "text/plain"];

const state = {
  runtimes: [],
  code: new Map(), // what the user wrote, per mode and runtime, kept when switching
  current: "",
  mode: "run", // or "interpreter": cells in one session
  session: null, // the interpreter session: {id, key, runtime, version}
  cells: 0, // cells run in the session
  abort: null,
  escapeTab: false,
};

const interpreted = (rt) => rt.plugin.state === "healthy" && rt.capabilities.includes("interpreter");

function setState(s) { document.body.dataset.state = s; }
function status(text) { $("status").textContent = text; }

function stored(name, value) {
  try {
    if (value === undefined) return localStorage.getItem(name) || "";
    if (value) localStorage.setItem(name, value); else localStorage.removeItem(name);
  } catch { /* storage disabled: the field still works for this page */ }
  return value;
}

function headers(extra) {
  const h = new Headers(extra);
  const key = $("key").value.trim();
  if (key) h.set("Authorization", "Bearer " + key);
  return h;
}

// apiError turns a failed response into {code, message}, whatever its body.
async function apiError(resp) {
  const text = await resp.text();
  try {
    const e = JSON.parse(text).error;
    if (e && e.code) return { code: e.code, message: e.message || "" };
  } catch { /* not the JSON error shape */ }
  return { code: "http_" + resp.status, message: text.trim() || resp.statusText };
}

function showError(err) {
  $("error-code").textContent = err.code;
  $("error-message").textContent = err.message;
  $("error").hidden = false;
}

async function loadRuntimes() {
  setState("loading");
  $("error").hidden = true;
  let resp;
  try {
    resp = await fetch("/runtimes", { headers: headers({ Accept: "application/json" }) });
  } catch (e) {
    showError({ code: "network", message: String(e) });
    setState("failed");
    return;
  }
  if (!resp.ok) {
    const err = await apiError(resp);
    showError(err);
    status(resp.status === 401 ? "Enter an API key to list the runtimes." : "Could not list the runtimes.");
    setState("failed");
    return;
  }
  state.runtimes = await resp.json();
  const sel = $("runtime");
  sel.replaceChildren();
  for (const rt of state.runtimes) {
    const healthy = rt.plugin.state === "healthy";
    const opt = new Option(healthy ? rt.name : `${rt.name} (${rt.plugin.state})`, rt.name);
    opt.disabled = !healthy;
    if (!healthy && rt.plugin.reason) opt.title = rt.plugin.reason;
    sel.add(opt);
  }
  const mode = stored("runhost.mode") === "interpreter" && state.runtimes.some(interpreted) ? "interpreter" : "run";
  $("mode").value = mode;
  $("mode").querySelector('[value="interpreter"]').disabled = !state.runtimes.some(interpreted);
  applyMode(mode);
  const usable = usableRuntimes().map((rt) => rt.name);
  const want = [stored("runhost.runtime"), "python", usable[0]].find((n) => usable.includes(n));
  sel.disabled = !want;
  if (want) selectRuntime(want);
  status(want ? "Ready." : "No runtime is available.");
  setState("ready");
}

// usableRuntimes are those the mode can run; the others are greyed out.
function usableRuntimes() {
  const usable = state.runtimes.filter((rt) =>
    state.mode === "interpreter" ? interpreted(rt) : rt.plugin.state === "healthy");
  for (const opt of $("runtime").options) opt.disabled = !usable.some((rt) => rt.name === opt.value);
  return usable;
}

// applyMode shows the controls of a mode: stdin, arguments and the one
// output of a program, or the cells of an interpreter.
function applyMode(mode) {
  state.mode = mode;
  const cells = mode === "interpreter";
  $("program-inputs").hidden = cells;
  $("output").hidden = cells;
  $("cells").hidden = !cells;
  $("result").hidden = true;
  $("flags").hidden = cells;
  $("code-label").textContent = cells ? "Cell" : "Code";
  $("cell-hint").hidden = !cells;
  $("run").textContent = cells ? "Run cell" : "Run";
  $("stop").textContent = cells ? "Interrupt" : "Stop";
  $("restart").hidden = !cells;
}

function selectMode(mode) {
  if (state.abort || mode === state.mode) return;
  saveCode();
  endSession();
  const was = state.current;
  state.current = ""; // the editor's text is saved: selectRuntime loads the new mode's
  stored("runhost.mode", mode);
  applyMode(mode);
  resetOutput();
  const usable = usableRuntimes();
  const next = usable.find((rt) => rt.name === was) || usable.find((rt) => rt.name === "python") || usable[0];
  if (next) selectRuntime(next.name);
  status("Ready.");
}

function saveCode() {
  if (state.current) state.code.set(`${state.mode}:${state.current}`, $("code").value);
}

function selectRuntime(name) {
  saveCode();
  if (name !== state.current) endSession();
  state.current = name;
  stored("runhost.runtime", name);
  const rt = state.runtimes.find((r) => r.name === name);
  $("runtime").value = name;
  $("description").textContent = rt.description;
  const ver = $("version");
  ver.replaceChildren();
  for (const v of rt.versions) {
    let label = v.version + (v.default ? " (default)" : "");
    if (!v.installed) label += " — image missing";
    const opt = new Option(label, v.version, v.default, v.default);
    ver.add(opt);
  }
  ver.disabled = rt.versions.length < 2;
  const caps = new Set(rt.capabilities);
  $("stdin").disabled = !caps.has("stdin");
  $("args").disabled = !caps.has("args");
  const starters = state.mode === "interpreter" ? CELL_STARTERS : STARTERS;
  $("code").value = state.code.get(`${state.mode}:${name}`) ?? starters[name] ?? `# ${name}: write your program here\n`;
}

function lines(text) {
  if (!text) return [];
  const out = text.replace(/\r/g, "").split("\n");
  if (out[out.length - 1] === "") out.pop(); // the newline after the last argument
  return out;
}

function requestBody() {
  const body = { code: $("code").value };
  if ($("version").value) body.version = $("version").value;
  if (!$("stdin").disabled && $("stdin").value) body.stdin = $("stdin").value;
  const args = $("args").disabled ? [] : lines($("args").value);
  if (args.length) body.args = args;
  const timeout = parseInt($("timeout").value, 10);
  if (timeout > 0) body.timeout_ms = timeout;
  return body;
}

// Output: consecutive chunks of one stream share a span, stderr is coloured.
function decodeChunk(chunk) {
  if (typeof chunk.text === "string") return chunk.text;
  const bytes = Uint8Array.from(atob(chunk.base64 || ""), (c) => c.charCodeAt(0));
  return new TextDecoder().decode(bytes); // invalid UTF-8 shows as U+FFFD
}

function append(out, stream, text) {
  if (!text) return;
  const atBottom = out.scrollHeight - out.scrollTop - out.clientHeight < 4;
  const last = out.lastElementChild;
  if (last && last.className === stream) {
    last.textContent += text;
  } else {
    const span = document.createElement("span");
    span.className = stream;
    span.textContent = text;
    out.append(span);
  }
  if (atBottom) out.scrollTop = out.scrollHeight;
}

function showResult(res, streamed) {
  // Output that was not streamed (a failed install or build) is in the result.
  for (const s of ["stdout", "stderr"]) {
    if (!streamed[s] && res[s]) append($("output"), s, decodeChunk(res[s + "_encoding"] === "base64" ? { base64: res[s] } : { text: res[s] }));
  }
  const code = $("exit-code");
  code.textContent = String(res.exit_code);
  code.className = res.exit_code === 0 ? "ok" : "bad";
  $("duration").textContent = `${res.duration_ms} ms`;
  $("ran").textContent = `${res.runtime} ${res.version}`;
  $("result").hidden = false;
  $("flag-timeout").hidden = !res.timed_out;
  $("flag-oom").hidden = !res.oom_killed;
  $("flag-stdout-truncated").hidden = !res.stdout_truncated;
  $("flag-stderr-truncated").hidden = !res.stderr_truncated;
  const failedStage = res.stage && res.stage !== "run";
  $("flag-stage").textContent = failedStage ? `${res.stage} failed` : "";
  $("flag-stage").hidden = !failedStage;
  status(res.timed_out ? "Timed out." : res.oom_killed ? "Ran out of memory." : `Finished in ${res.duration_ms} ms.`);
}

// readEvents parses a text/event-stream body as it arrives.
async function readEvents(body, onEvent) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += value;
    let i;
    while ((i = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      let event = "message";
      const data = [];
      for (const line of block.split("\n")) {
        const c = line.indexOf(":");
        if (c === 0) continue; // a comment
        const field = c < 0 ? line : line.slice(0, c);
        let v = c < 0 ? "" : line.slice(c + 1);
        if (v.startsWith(" ")) v = v.slice(1);
        if (field === "event") event = v;
        else if (field === "data") data.push(v.replace(/\r$/, ""));
      }
      if (data.length) onEvent(event, JSON.parse(data.join("\n")));
    }
  }
}

function resetOutput() {
  $("output").replaceChildren();
  $("cells").replaceChildren();
  $("error").hidden = true;
  $("result").hidden = true;
  for (const li of $("flags").children) li.hidden = true;
}

// post sends a run (or a cell) and reads its answer, streamed when the host
// streams: on.output(stream, text) and on.rich(bundle) as they come, then
// on.result(result, streamed). It returns "done" once there is a result,
// "refused" for an API error ({status, error} in on.refused) and "failed"
// when the stream broke; the error is shown.
async function post(url, body, on) {
  const resp = await fetch(url, {
    method: "POST",
    headers: headers({ "Content-Type": "application/json", Accept: "text/event-stream" }),
    body: JSON.stringify(body),
    signal: state.abort.signal,
  });
  if (!resp.ok) {
    const err = await apiError(resp);
    showError(err);
    on.refused(resp.status, err);
    return "refused";
  }
  if (!(resp.headers.get("Content-Type") || "").startsWith("text/event-stream")) {
    on.result(await resp.json(), {}); // a proxy or host that does not stream
    return "done";
  }
  const streamed = { stdout: false, stderr: false, rich: 0 };
  let outcome = "";
  await readEvents(resp.body, (event, data) => {
    if (event === "stdout" || event === "stderr") {
      streamed[event] = true;
      on.output(event, decodeChunk(data));
    } else if (event === "rich_result") {
      streamed.rich++;
      on.rich(data);
    } else if (event === "result") {
      on.result(data, streamed);
      outcome = "done";
    } else if (event === "error") {
      showError(data.error || { code: "error", message: JSON.stringify(data) });
      outcome = "failed";
    }
  });
  if (!outcome) {
    showError({ code: "stream_ended", message: "the connection closed before the result" });
    outcome = "failed";
  }
  return outcome;
}

// busy marks the page as working on something that Stop can abort.
function busy(on) {
  state.abort = on ? new AbortController() : null;
  $("run").disabled = on;
  $("restart").disabled = on;
  $("mode").disabled = on;
  $("stop").hidden = !on;
  // A cell's runtime and version are its session's: fixed while it runs.
  const rt = state.runtimes.find((r) => r.name === state.current);
  $("runtime").disabled = on && state.mode === "interpreter";
  $("version").disabled = (on && state.mode === "interpreter") || !rt || rt.versions.length < 2;
}

function run() {
  if (state.abort || !state.current) return;
  if (state.mode === "interpreter") runCell(); else runProgram();
}

async function runProgram() {
  resetOutput();
  const rt = state.current;
  busy(true);
  setState("running");
  status(`Running ${rt}…`);
  let finished = "failed";
  try {
    const outcome = await post(`/runtimes/${encodeURIComponent(rt)}/run`, requestBody(), {
      output: (stream, text) => append($("output"), stream, text),
      rich: () => {},
      result: (res, streamed) => showResult(res, streamed),
      refused: (code) => status(`Refused (HTTP ${code}).`),
    });
    if (outcome === "done") finished = "done";
    else if (outcome === "failed") status("The run failed.");
  } catch (e) {
    if (e.name === "AbortError") {
      status("Stopped.");
    } else {
      showError({ code: "network", message: String(e) });
      status("The run failed.");
    }
  } finally {
    busy(false);
    setState(finished);
  }
}

// Interpreter sessions: the page starts one with the first cell, ends it
// when the runtime, version or mode changes, on Restart and when the page
// goes away. Every call about it uses the key it was made with.
function sessionFetch(method, path, init) {
  const s = state.session;
  const h = new Headers(init && init.headers);
  if (s.key) h.set("Authorization", "Bearer " + s.key);
  return fetch(`/sessions/${encodeURIComponent(s.id)}${path}`, { ...init, method, headers: h });
}

async function startSession() {
  const rt = state.current;
  const version = $("version").value;
  status(`Starting the ${rt} interpreter…`);
  const body = { runtime: rt, mode: "interpreter" };
  if (version) body.version = version;
  const resp = await fetch("/sessions", {
    method: "POST",
    headers: headers({ "Content-Type": "application/json" }),
    body: JSON.stringify(body),
    signal: state.abort.signal,
  });
  if (!resp.ok) {
    showError(await apiError(resp));
    status(`The interpreter did not start (HTTP ${resp.status}).`);
    return false;
  }
  const info = await resp.json();
  state.session = { id: info.id, key: $("key").value.trim(), runtime: info.runtime, version: info.version };
  state.cells = 0;
  const line = $("session");
  line.dataset.id = info.id;
  line.textContent = `Interpreter ${info.runtime} ${info.version} (session ${info.id}): its variables last ` +
    "until you restart it, change the runtime or leave the page.";
  line.hidden = false;
  return true;
}

// endSession deletes the session, if any, without waiting for the answer
// unless asked to (Restart waits, so that the key's session slot is free).
function endSession() {
  if (!state.session) return Promise.resolve();
  const done = sessionFetch("DELETE", "", { keepalive: true }).catch(() => {});
  state.session = null;
  $("session").hidden = true;
  delete $("session").dataset.id;
  return done;
}

// idle waits until the session has stopped the cell its client left
// (an interrupt), so that the next cell is not refused as busy.
async function idle() {
  for (let i = 0; i < 150 && state.session; i++) {
    try {
      const resp = await sessionFetch("GET", "");
      if (!resp.ok || !(await resp.json()).busy) return;
    } catch { return; }
    await new Promise((r) => setTimeout(r, 200));
  }
}

function cellBody() {
  const body = { code: $("code").value };
  const timeout = parseInt($("timeout").value, 10);
  if (timeout > 0) body.timeout_ms = timeout;
  return body;
}

function newCell(code) {
  const li = document.createElement("li");
  li.className = "cell";
  li.dataset.state = "running";
  const head = document.createElement("div");
  head.className = "cell-head";
  const n = document.createElement("span");
  n.className = "cell-n";
  n.textContent = `[${++state.cells}]`;
  const meta = document.createElement("span");
  meta.className = "cell-meta";
  meta.textContent = "running…";
  head.append(n, meta);
  const src = document.createElement("pre");
  src.className = "cell-code mono";
  src.textContent = code;
  const out = document.createElement("pre");
  out.className = "cell-output mono";
  const results = document.createElement("div");
  results.className = "cell-results";
  const flags = document.createElement("ul");
  flags.className = "flags";
  flags.setAttribute("aria-label", "flags");
  li.append(head, src, out, results, flags);
  $("cells").append(li);
  li.scrollIntoView({ block: "nearest" });
  return li;
}

function cellFlag(li, text, kind) {
  const f = document.createElement("li");
  f.className = `flag ${kind}`;
  f.textContent = text;
  li.querySelector(".flags").append(f);
}

function cellError(li, text) {
  const pre = document.createElement("pre");
  pre.className = "traceback mono";
  pre.textContent = text;
  li.querySelector(".cell-results").after(pre);
}

function finishCell(li, res, streamed) {
  const out = li.querySelector(".cell-output");
  for (const s of ["stdout", "stderr"]) {
    if (!streamed[s] && res[s]) append(out, s, decodeChunk(res[s + "_encoding"] === "base64" ? { base64: res[s] } : { text: res[s] }));
  }
  for (const bundle of (res.results || []).slice(streamed.rich || 0)) showRich(li, bundle);
  if (res.error) {
    const tb = (res.error.traceback || []).join("\n");
    cellError(li, tb || `${res.error.name}: ${res.error.value}`);
  }
  li.dataset.state = res.error || res.timed_out || res.oom_killed ? "failed" : "done";
  li.querySelector(".cell-meta").textContent = `${res.duration_ms} ms`;
  if (res.timed_out) cellFlag(li, "timed out", "bad");
  if (res.oom_killed) cellFlag(li, "out of memory", "bad");
  if (res.restarted) cellFlag(li, "interpreter restarted: variables lost", "warn");
  if (res.stdout_truncated) cellFlag(li, "stdout truncated", "warn");
  if (res.stderr_truncated) cellFlag(li, "stderr truncated", "warn");
}

// showRich renders one result of a cell in its richest form.
function showRich(li, bundle) {
  const mime = RICH_ORDER.find((m) => bundle[m] !== undefined && (m === "application/json" || typeof bundle[m] === "string"));
  if (!mime) return;
  const value = bundle[mime];
  const plain = typeof bundle["text/plain"] === "string" ? bundle["text/plain"] : "";
  const n = li.querySelector(".cell-n").textContent;
  const box = document.createElement("div");
  box.className = "rich";
  box.dataset.mime = mime;
  if (mime.startsWith("image/")) {
    const img = document.createElement("img");
    img.alt = plain || `${mime} result of cell ${n}`;
    // An image, even SVG, runs no script and loads nothing in an <img>.
    img.src = mime === "image/svg+xml"
      ? "data:image/svg+xml;charset=utf-8," + encodeURIComponent(value)
      : `data:${mime};base64,` + value.replace(/[^A-Za-z0-9+/=]/g, "");
    box.append(img);
  } else if (mime === "text/html") {
    box.append(htmlFrame(value, `HTML result of cell ${n}`));
  } else {
    const pre = document.createElement("pre");
    pre.className = "mono";
    pre.textContent = mime === "application/json" ? JSON.stringify(value, null, 2) : value;
    box.append(pre);
  }
  const results = li.querySelector(".cell-results");
  const list = $("cells");
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 4;
  results.append(box);
  if (atBottom) list.scrollTop = list.scrollHeight;
}

// Untrusted HTML is first cut down to plain markup, then shown in a frame.
// A sandboxed frame alone runs no script and loads nothing the CSP refuses,
// but Chromium still opens connections for <link rel="preconnect"> and for
// an <iframe src> it then refuses: a way for code that has no network to
// signal out through the viewer's browser. So cleanHTML writes the markup
// anew: these elements with these attributes (no URL but a data: image),
// text with every other "<" escaped. Whatever it makes of odd input, what
// it writes can only hold what it lists. (It does not parse the HTML in
// this page: a parser here would report the content's inline styles and
// handlers as violations of this page's CSP.)
const HTML_KEEP = new Set(("a abbr article aside b bdi bdo big blockquote br caption center cite code col colgroup " +
  "dd del details dfn div dl dt em figcaption figure font footer h1 h2 h3 h4 h5 h6 header hr i img ins kbd label " +
  "li main mark nav ol p pre q s samp section small span strike strong sub summary sup table tbody td tfoot th " +
  "thead time tr tt u ul var wbr").split(" "));
// Dropped with what they hold; any other tag is dropped, its content kept.
const HTML_DROP = new Set(("iframe math noembed noframes noscript object script select style svg template textarea " +
  "title xmp").split(" "));
const HTML_ATTRS = new Set(("abbr align alt border class colspan dir headers height lang reversed rowspan scope " +
  "span start title valign width").split(" "));
const HTML_BLOCKS = new Set(["tr", "br", "p", "li", "h1", "h2", "h3", "h4", "h5", "h6", "div", "pre"]);
const DATA_IMAGE = /^data:image\/(?:png|jpeg|gif|webp);base64,[A-Za-z0-9+/=]*$/;

// escapeHTML escapes text or an attribute value; character references stay.
const escapeHTML = (s) => !/[&<>"]/.test(s) ? s : s.replace(/&(?![a-zA-Z][a-zA-Z0-9]*;|#[0-9]+;|#[xX][0-9a-fA-F]+;)/g, "&amp;")
  .replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

// tagEnd is the index of the ">" that ends the tag whose attributes start
// at i (quotes after "=" hide ">"), or -1: a tag the input never ends,
// which (as in a browser) takes the rest of it.
function tagEnd(html, i) {
  let quote = "";
  let afterEq = false;
  for (; i < html.length; i++) {
    const c = html[i];
    if (quote) {
      if (c === quote) quote = "";
    } else if (c === ">") {
      return i;
    } else if (afterEq && (c === '"' || c === "'")) {
      quote = c;
      afterEq = false;
    } else if (c === "=") {
      afterEq = true;
    } else if (c.trim()) {
      afterEq = false;
    }
  }
  return -1;
}

// cleanHTML reads the input once, left to right (no backtracking: a huge
// or hostile result cannot make it slow).
function cleanHTML(html) {
  const open = /<(\/?)([a-zA-Z][a-zA-Z0-9-]*)/y;
  const attr = /([^\s"'>/=]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+)))?/g;
  const lower = html.toLowerCase();
  let out = "";
  let blocks = 0;
  let i = 0;
  while (i < html.length) {
    const lt = html.indexOf("<", i);
    if (lt < 0) { out += escapeHTML(html.slice(i)); break; }
    out += escapeHTML(html.slice(i, lt));
    i = lt;
    if (html.startsWith("<!--", i)) { // a comment
      const e = html.indexOf("-->", i + 4);
      i = e < 0 ? html.length : e + 3;
      continue;
    }
    if (html[i + 1] === "!" || html[i + 1] === "?") { // a doctype, CDATA, processing instruction
      const e = html.indexOf(">", i);
      i = e < 0 ? html.length : e + 1;
      continue;
    }
    open.lastIndex = i;
    const m = open.exec(html);
    if (!m) { out += "&lt;"; i++; continue; }
    const end = tagEnd(html, open.lastIndex);
    if (end < 0) break;
    const rest = html.slice(open.lastIndex, end);
    i = end + 1;
    const close = m[1] === "/";
    const name = m[2].toLowerCase();
    if (HTML_DROP.has(name)) {
      if (!close) { // skip to its end tag
        const e = lower.indexOf("</" + name, i);
        const gt = e < 0 ? -1 : html.indexOf(">", e);
        i = gt < 0 ? html.length : gt + 1;
      }
      continue;
    }
    if (!HTML_KEEP.has(name)) continue;
    if (close) { out += `</${name}>`; continue; }
    out += "<" + name;
    for (const a of rest.trim() ? rest.matchAll(attr) : []) {
      const key = a[1].toLowerCase();
      const value = a[2] ?? a[3] ?? a[4] ?? "";
      if (HTML_ATTRS.has(key) || (name === "img" && key === "src" && DATA_IMAGE.test(value))) {
        out += ` ${key}="${escapeHTML(value)}"`;
      }
    }
    out += ">";
    if (HTML_BLOCKS.has(name)) blocks++;
  }
  return { markup: out, blocks };
}

// htmlFrame shows cleaned HTML in a frame whose sandbox="" (set before its
// content) gives it no permission at all: no script, no form, no pop-up, no
// navigation of this page, and an opaque origin that cannot reach this
// page's DOM or storage. It keeps this page's CSP and gets the
// playground's result.css (inline styles are dropped).
function htmlFrame(html, title) {
  const { markup, blocks } = cleanHTML(html);
  const frame = document.createElement("iframe");
  frame.setAttribute("sandbox", "");
  frame.setAttribute("referrerpolicy", "no-referrer");
  frame.title = title;
  frame.srcdoc = '<!doctype html><meta charset="utf-8"><link rel="stylesheet" href="/playground/result.css">' + markup;
  // No script in the frame can say how tall it is: a guess from its rows
  // and blocks; the frame can be resized.
  frame.style.height = `${Math.min(400, Math.max(48, 32 + 24 * blocks))}px`;
  return frame;
}

async function runCell() {
  const code = $("code").value;
  $("error").hidden = true;
  busy(true);
  setState("running");
  let finished = "failed";
  let li = null;
  try {
    if (!state.session && !(await startSession())) return;
    li = newCell(code);
    status(`Running cell ${state.cells}…`);
    const cell = li;
    const outcome = await post(`/sessions/${encodeURIComponent(state.session.id)}/run`, cellBody(), {
      output: (stream, text) => append(cell.querySelector(".cell-output"), stream, text),
      rich: (bundle) => showRich(cell, bundle),
      result: (res, streamed) => finishCell(cell, res, streamed),
      refused: (httpStatus, err) => {
        cell.dataset.state = "failed";
        cellError(cell, `${err.code}: ${err.message}`);
        if (httpStatus === 404 || httpStatus === 410) endSession(); // expired: the next cell starts anew
      },
    });
    if (outcome === "done") {
      finished = "done";
      const res = cell.dataset.state === "done" ? "Done" : "The cell failed";
      status(`${res}; the interpreter keeps its state.`);
      if (cell.dataset.state === "done" && $("code").value === code) $("code").value = "";
    } else if (outcome === "refused") {
      status(state.session ? "The cell was refused." : "The session ended; the next cell starts a new one.");
    } else {
      status("The cell failed.");
    }
  } catch (e) {
    if (e.name === "AbortError") {
      if (li) {
        li.dataset.state = "failed";
        li.querySelector(".cell-meta").textContent = "";
        cellFlag(li, "interrupted", "bad");
        status("Interrupting…");
        await idle();
      }
      status("Interrupted; the interpreter keeps its state.");
      finished = "done";
    } else {
      showError({ code: "network", message: String(e) });
      status("The cell failed.");
    }
  } finally {
    busy(false);
    setState(finished);
  }
}

async function restart() {
  if (state.abort) return;
  busy(true);
  setState("running");
  let finished = "failed";
  try {
    await endSession();
    resetOutput();
    if (await startSession()) {
      status("Restarted: a new interpreter, no variables.");
      finished = "done";
    }
  } catch (e) {
    showError({ code: e.name === "AbortError" ? "stopped" : "network", message: String(e) });
    status("The interpreter did not start.");
  } finally {
    busy(false);
    setState(finished);
  }
}

// The editor: Tab indents (Shift+Tab outdents) unless Esc was just pressed,
// so keyboard users can still leave the textarea.
function onCodeKey(e) {
  if (e.key === "Escape") { state.escapeTab = true; return; }
  if (e.key !== "Tab" || state.escapeTab || e.ctrlKey || e.metaKey || e.altKey) {
    state.escapeTab = false;
    return;
  }
  e.preventDefault();
  const ta = e.target;
  const indent = INDENT[state.current] || "  ";
  if (e.shiftKey) {
    const start = ta.value.lastIndexOf("\n", ta.selectionStart - 1) + 1;
    const lead = ta.value.slice(start, start + indent.length).match(/^ */)[0].length;
    if (lead) ta.setRangeText("", start, start + lead, "end");
  } else {
    ta.setRangeText(indent, ta.selectionStart, ta.selectionEnd, "end");
  }
}

function init() {
  $("key").value = stored("runhost.apiKey");
  // The key applies when the field is left or Enter is pressed in it.
  $("key").addEventListener("change", () => {
    stored("runhost.apiKey", $("key").value.trim());
    loadRuntimes();
  });
  $("key-form").addEventListener("submit", (e) => { e.preventDefault(); $("key").blur(); });
  $("runtime").addEventListener("change", (e) => selectRuntime(e.target.value));
  $("version").addEventListener("change", () => endSession());
  $("mode").addEventListener("change", (e) => selectMode(e.target.value));
  $("restart").addEventListener("click", restart);
  // Leaving the page ends its interpreter (keepalive: the request outlives it).
  window.addEventListener("pagehide", () => endSession());
  $("code").addEventListener("keydown", onCodeKey);
  $("form").addEventListener("submit", (e) => { e.preventDefault(); run(); });
  $("stop").addEventListener("click", () => state.abort && state.abort.abort());
  document.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); run(); }
  });
  loadRuntimes();
}

document.addEventListener("DOMContentLoaded", init);
