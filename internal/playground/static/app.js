// runhost playground. Plain JavaScript, no dependencies: the page is served
// with "Content-Security-Policy: default-src 'self'", so everything lives in
// this file and output is only ever written with textContent.
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
const INDENT = { python: "    " };

const state = {
  runtimes: [],
  code: new Map(), // what the user wrote, per runtime, kept when switching
  current: "",
  abort: null,
  escapeTab: false,
};

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
  const usable = state.runtimes.filter((rt) => rt.plugin.state === "healthy").map((rt) => rt.name);
  const want = [stored("runhost.runtime"), "python", usable[0]].find((n) => usable.includes(n));
  sel.disabled = !want;
  if (want) selectRuntime(want);
  status(want ? "Ready." : "No runtime is available.");
  setState("ready");
}

function selectRuntime(name) {
  if (state.current) state.code.set(state.current, $("code").value);
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
  $("code").value = state.code.get(name) ?? STARTERS[name] ?? `# ${name}: write your program here\n`;
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

function append(stream, text) {
  if (!text) return;
  const out = $("output");
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
    if (!streamed[s] && res[s]) append(s, decodeChunk(res[s + "_encoding"] === "base64" ? { base64: res[s] } : { text: res[s] }));
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
  $("error").hidden = true;
  $("result").hidden = true;
  for (const li of $("flags").children) li.hidden = true;
}

async function run() {
  if (state.abort || !state.current) return;
  resetOutput();
  const rt = state.current;
  state.abort = new AbortController();
  $("run").disabled = true;
  $("stop").hidden = false;
  setState("running");
  status(`Running ${rt}…`);
  let finished = "failed";
  try {
    const resp = await fetch(`/runtimes/${encodeURIComponent(rt)}/run`, {
      method: "POST",
      headers: headers({ "Content-Type": "application/json", Accept: "text/event-stream" }),
      body: JSON.stringify(requestBody()),
      signal: state.abort.signal,
    });
    if (!resp.ok) {
      showError(await apiError(resp));
      status(`Refused (HTTP ${resp.status}).`);
    } else if (!(resp.headers.get("Content-Type") || "").startsWith("text/event-stream")) {
      showResult(await resp.json(), {}); // a proxy or host that does not stream
      finished = "done";
    } else {
      const streamed = { stdout: false, stderr: false };
      let ended = false;
      await readEvents(resp.body, (event, data) => {
        if (event === "stdout" || event === "stderr") {
          streamed[event] = true;
          append(event, decodeChunk(data));
        } else if (event === "result") {
          showResult(data, streamed);
          ended = true;
          finished = "done";
        } else if (event === "error") {
          showError(data.error || { code: "error", message: JSON.stringify(data) });
          status("The run failed.");
          ended = true;
        }
      });
      if (!ended) {
        showError({ code: "stream_ended", message: "the connection closed before the run's result" });
        status("The run failed.");
      }
    }
  } catch (e) {
    if (e.name === "AbortError") {
      status("Stopped.");
    } else {
      showError({ code: "network", message: String(e) });
      status("The run failed.");
    }
  } finally {
    state.abort = null;
    $("run").disabled = false;
    $("stop").hidden = true;
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
  $("code").addEventListener("keydown", onCodeKey);
  $("form").addEventListener("submit", (e) => { e.preventDefault(); run(); });
  $("stop").addEventListener("click", () => state.abort && state.abort.abort());
  document.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); run(); }
  });
  loadRuntimes();
}

document.addEventListener("DOMContentLoaded", init);
