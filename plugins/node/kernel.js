'use strict';
// runhost kernel driver for Node.js, protocol runhost-kernel/1.
//
// runhost-init starts this file once per interpreter session (`node kernel.js`)
// with fd 0 = /dev/null, fd 1 and fd 2 = the current cell's stdout and stderr,
// fd 3 = requests (read here), fd 4 = events (written here). Every message on
// fd 3 and fd 4 is a 4-byte big-endian length and that many bytes of UTF-8
// JSON:
//
//   -> {"type": "ready", "language": "javascript", "version": "20.19.2", "features": [...]}
//   <- {"id": 1, "code": "let x = 1\nx + 1"}
//   -> {"id": 1, "type": "result", "data": {"text/plain": "2"}, "metadata": {}}
//   -> {"id": 1, "type": "done", "error": null}
//
// Cells are evaluated the way the Chrome DevTools console does it (V8's REPL
// mode, through the in-process inspector): `let`, `const` and `class`
// declarations persist between cells and may be declared again, top-level
// `await` works, and the cell's completion value is its result (text/plain
// from util.inspect; undefined is no result). An object whose
// [Symbol.for('runhost.mimebundle')]() method returns {mime: data} gives rich
// data. display(value) and display.html(), .markdown(), .svg(), .png(),
// .jpeg(), .json(), .latex(), .raw() send rich results while a cell runs.
// `require` resolves from the working directory; `import()` is not available
// to evaluated code, `await importModule('name')` does its job.
//
// SIGINT interrupts the running cell, which ends with the error
// "Interrupted": a cell without `await` is stopped even in a synchronous
// endless loop (V8 terminates it, as `vm` does with breakOnSigint); a cell
// with `await` stops waiting for its promise (timers and callbacks it
// started keep running). Synchronous code that cannot be stopped: an endless
// loop in a cell that also awaits, or in a callback or after an `await`
// (it runs from the event loop, outside the cell); init restarts the driver
// then. Between cells SIGINT is ignored.

const fs = require('fs');
const net = require('net');
const path = require('path');
const url = require('url');
const util = require('util');
const vm = require('vm');
const inspector = require('inspector');
const Module = require('module');
const { Console } = require('console');
const { Writable } = require('stream');

const PROTOCOL = 'runhost-kernel/1';
const MIME_TYPES = ['text/plain', 'text/html', 'text/markdown', 'text/latex', 'image/png', 'image/jpeg', 'image/svg+xml', 'application/json'];
const BINARY_MIME = new Set(['image/png', 'image/jpeg']);
const MIMEBUNDLE = Symbol.for('runhost.mimebundle');
const TAKE = Symbol.for('runhost.kernel.take');
const POST = Symbol.for('runhost.kernel.post');
const OBJECT_GROUP = 'runhost-cell';
const { O_RDONLY, O_WRONLY, O_NONBLOCK } = fs.constants;

// ---------------------------------------------------------------------------
// File descriptors. Node cannot dup(2), but opening /proc/self/fd/N gives a
// new descriptor of the same pipe, close-on-exec like every descriptor Node
// opens; fd 3 and fd 4 are then closed, so that neither user code nor a child
// process can reach the protocol by its well-known numbers.

// reopen returns a new descriptor of what fd is, or -1.
function reopen(fd, flags) {
  try {
    return fs.openSync(`/proc/self/fd/${fd}`, flags);
  } catch (e) {
    return -1;
  }
}

for (const fd of [3, 4]) {
  try {
    fs.fstatSync(fd);
  } catch (e) {
    fs.writeSync(2, `runhost kernel: fd 3 and fd 4 must be the protocol pipes (${e.message})\n`);
    process.exit(2);
  }
}
// Every copy is made before fd 3 and fd 4 are closed, so that none of them
// takes those numbers. The copies of fd 1 and fd 2 put the cell output pipes
// back after a cell closed them.
let REQ = reopen(3, O_RDONLY | O_NONBLOCK);
let EVT = reopen(4, O_WRONLY | O_NONBLOCK);
const SAVED = { 1: reopen(1, O_WRONLY), 2: reopen(2, O_WRONLY) };
if (REQ < 0 || EVT < 0) {
  // /proc is not there or does not let us: serve on fd 3 and fd 4 as they are.
  if (REQ >= 0) fs.closeSync(REQ);
  if (EVT >= 0) fs.closeSync(EVT);
  REQ = 3;
  EVT = 4;
} else {
  fs.closeSync(3);
  fs.closeSync(4);
}
const savedStat = {};
for (const fd of [1, 2]) {
  try {
    savedStat[fd] = fs.fstatSync(SAVED[fd] >= 0 ? SAVED[fd] : fd);
  } catch (e) { /* fd closed at start: nothing to restore later */ }
}

const sleeper = new Int32Array(new SharedArrayBuffer(4));

// writeAll writes buf to fd, waiting while a non-blocking pipe is full.
function writeAll(fd, buf) {
  let off = 0;
  while (off < buf.length) {
    try {
      off += fs.writeSync(fd, buf, off, buf.length - off);
    } catch (e) {
      if (e.code !== 'EAGAIN') throw e;
      Atomics.wait(sleeper, 0, 0, 2);
    }
  }
}

// ---------------------------------------------------------------------------
// stdout and stderr: synchronous streams on fd 1 and fd 2, so that what a
// cell printed is in the pipe before its "done" is sent, and fd 1 never
// becomes non-blocking (a child process would inherit that).

class FdStream extends Writable {
  constructor(fd) {
    super({ decodeStrings: true });
    this.fd = fd;
    this.isTTY = false;
    this._isStdio = true;
    this.on('error', () => {});
  }

  // write goes straight to the descriptor, past Writable's bookkeeping: a
  // cell stopped by SIGINT in the middle of a write leaves no stream state
  // behind that would hold later writes back.
  write(chunk, encoding, callback) {
    if (typeof encoding === 'function') {
      callback = encoding;
      encoding = undefined;
    }
    let err = null;
    if (this.destroyed || this.writableEnded) {
      err = new Error('write after end');
    } else {
      try {
        writeAll(this.fd, typeof chunk === 'string' ? Buffer.from(chunk, encoding || 'utf8') : chunk);
      } catch (e) {
        err = e;
      }
    }
    if (typeof callback === 'function') process.nextTick(callback, err);
    return true;
  }

  _write(chunk, encoding, callback) {
    try {
      writeAll(this.fd, chunk);
      callback();
    } catch (e) {
      callback(e);
    }
  }

  _destroy(err, callback) {
    callback(err); // never closes the descriptor
  }
}

let stdout;
let stderr;
let ourConsole;
const streamGetters = {
  stdout: () => stdout,
  stderr: () => stderr,
};

function installStreams() {
  stdout = new FdStream(1);
  stderr = new FdStream(2);
  for (const name of ['stdout', 'stderr']) {
    Object.defineProperty(process, name, { configurable: true, enumerable: true, get: streamGetters[name] });
  }
  const replaceConsole = globalThis.console === ourConsole || ourConsole === undefined;
  ourConsole = new Console({ stdout, stderr });
  if (replaceConsole) {
    Object.defineProperty(globalThis, 'console', { configurable: true, writable: true, enumerable: false, value: ourConsole });
  }
}

function streamBroken(s) {
  return s.destroyed || s.writableEnded || s.errored || s.writableCorked > 0 || Object.prototype.hasOwnProperty.call(s, 'write');
}

// restoreStdio puts fd 0, 1 and 2 and process.stdout and process.stderr back
// after a cell, whatever the cell did to them.
function restoreStdio() {
  for (const fd of [0, 1, 2]) {
    let st = null;
    try {
      st = fs.fstatSync(fd);
    } catch (e) { /* closed */ }
    const want = savedStat[fd];
    if (st !== null && (fd === 0 || want === undefined || (st.ino === want.ino && st.dev === want.dev))) continue;
    if (fd !== 0 && SAVED[fd] < 0) continue;
    try {
      if (st !== null) fs.closeSync(fd);
      const got = fd === 0 ? fs.openSync('/dev/null', O_RDONLY) : fs.openSync(`/proc/self/fd/${SAVED[fd]}`, O_WRONLY);
      if (got !== fd) fs.closeSync(got);
    } catch (e) { /* leave it */ }
  }
  const getters = ['stdout', 'stderr'].map((n) => Object.getOwnPropertyDescriptor(process, n));
  if (streamBroken(stdout) || streamBroken(stderr) || getters.some((d, i) => !d || d.get !== streamGetters[i ? 'stderr' : 'stdout'])) {
    installStreams();
  }
}

installStreams();

function warn(text) {
  try {
    writeAll(2, Buffer.from(`runhost kernel: ${text}\n`));
  } catch (e) { /* nowhere to say it */ }
}

// ---------------------------------------------------------------------------
// Messages.

let currentCell = null;

function send(msg) {
  let body = Buffer.from(JSON.stringify(msg), 'utf8');
  if (body.length > 0xffffffff) {
    body = Buffer.from(JSON.stringify({ id: msg.id, type: 'result', data: { 'text/plain': `<result of ${body.length} bytes: too large to send>` }, metadata: {} }));
  }
  const header = Buffer.alloc(4);
  header.writeUInt32BE(body.length, 0);
  try {
    writeAll(EVT, header);
    writeAll(EVT, body);
  } catch (e) {
    process.exit(0); // init went away: nothing left to serve
  }
}

// ---------------------------------------------------------------------------
// Rich results.

function plainText(value) {
  try {
    return util.inspect(value, { colors: false, depth: 4 });
  } catch (e) {
    try {
      return Object.prototype.toString.call(value);
    } catch (e2) {
      return '<uninspectable value>';
    }
  }
}

function cleanBundle(data, metadata) {
  const out = {};
  if (data !== null && typeof data === 'object') {
    for (const mime of MIME_TYPES) {
      let value;
      try {
        if (!Object.prototype.hasOwnProperty.call(data, mime)) continue;
        value = data[mime];
      } catch (e) {
        continue;
      }
      if (mime === 'application/json') {
        try {
          if (JSON.stringify(value) === undefined) continue;
        } catch (e) {
          continue;
        }
      } else if (value instanceof Uint8Array) {
        value = BINARY_MIME.has(mime) ? Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64') : Buffer.from(value).toString('utf8');
      } else if (typeof value !== 'string') {
        continue;
      }
      out[mime] = value;
    }
  }
  if (!('text/plain' in out)) out['text/plain'] = '';
  let md = {};
  if (metadata !== null && typeof metadata === 'object') {
    try {
      md = JSON.parse(JSON.stringify(metadata)) || {};
    } catch (e) {
      md = {};
    }
  }
  return [out, md];
}

function bundleOf(value) {
  let data = {};
  if (value !== null && (typeof value === 'object' || typeof value === 'function')) {
    try {
      const method = value[MIMEBUNDLE];
      if (typeof method === 'function') {
        const r = method.call(value);
        if (r !== null && typeof r === 'object') data = r;
      }
    } catch (e) {
      warn(`[Symbol.for('runhost.mimebundle')]() failed: ${e && e.message}`);
    }
  }
  const [out, md] = cleanBundle(data, {});
  if (out['text/plain'] === '' && !(typeof data['text/plain'] === 'string')) out['text/plain'] = plainText(value);
  return [out, md];
}

function publish(data, metadata) {
  if (currentCell === null) {
    warn('display() outside a running cell is ignored');
    return;
  }
  const [out, md] = cleanBundle(data, metadata);
  send({ id: currentCell, type: 'result', data: out, metadata: md });
}

function display(...values) {
  for (const value of values) {
    if (currentCell === null) {
      warn('display() outside a running cell is ignored');
      return;
    }
    const [out, md] = bundleOf(value);
    send({ id: currentCell, type: 'result', data: out, metadata: md });
  }
}

function describeBytes(mime, data) {
  const n = typeof data === 'string' ? Buffer.byteLength(data, 'base64') : (data && data.byteLength) || 0;
  return `<${mime}, ${n} bytes>`;
}

display.raw = (data, metadata) => publish(data, metadata);
display.html = (html) => publish({ 'text/html': String(html), 'text/plain': '<HTML>' });
display.markdown = (md) => publish({ 'text/markdown': String(md), 'text/plain': String(md) });
display.latex = (tex) => publish({ 'text/latex': String(tex), 'text/plain': String(tex) });
display.svg = (svg) => publish({ 'image/svg+xml': String(svg), 'text/plain': '<SVG image>' });
display.png = (data) => publish({ 'image/png': data, 'text/plain': describeBytes('image/png', data) });
display.jpeg = (data) => publish({ 'image/jpeg': data, 'text/plain': describeBytes('image/jpeg', data) });
display.json = (value) => publish({ 'application/json': value, 'text/plain': plainText(value) });

// ---------------------------------------------------------------------------
// Evaluation through V8's REPL mode.

const session = new inspector.Session();
session.connect();

function post(method, params) {
  return new Promise((resolve, reject) => {
    session.post(method, params, (err, result) => (err ? reject(err) : resolve(result)));
  });
}

let taken;
Object.defineProperty(globalThis, TAKE, { value: (v) => { taken = v; }, enumerable: false });

let heldObjects = false;

// valueOf turns a RemoteObject of this very process back into its value.
async function valueOf(remote) {
  if (remote.type === 'undefined') return { has: false };
  if (remote.objectId !== undefined) {
    heldObjects = true;
    taken = undefined;
    await post('Runtime.callFunctionOn', {
      objectId: remote.objectId,
      functionDeclaration: 'function (v) { globalThis[Symbol.for("runhost.kernel.take")](v); }',
      arguments: [{ objectId: remote.objectId }],
      silent: true,
    });
    const v = taken;
    taken = undefined;
    return { has: true, value: v };
  }
  if (remote.unserializableValue !== undefined) {
    const u = remote.unserializableValue;
    return { has: true, value: u.endsWith('n') ? BigInt(u.slice(0, -1)) : Number(u) };
  }
  return { has: true, value: remote.value };
}

class Interrupted extends Error {}
Object.defineProperty(Interrupted.prototype, 'name', { value: 'Interrupted' });

class CellError {
  constructor(details, thrown, hasThrown) {
    this.details = details;
    this.thrown = thrown;
    this.hasThrown = hasThrown;
  }
}

let interruptCell = null;
function onSigint() {
  if (interruptCell !== null) interruptCell();
}
// Errors from callbacks and promises nobody awaits are reported on stderr;
// they never end the driver.
function describeThrown(err) {
  return err instanceof Error ? userStack(err.stack).join('\n') : plainText(err);
}
function onUncaught(err) {
  warn(`uncaught exception: ${describeThrown(err)}`);
}
function onUnhandled(reason) {
  warn(`unhandled promise rejection: ${describeThrown(reason)}`);
}

// installListeners (again, after a cell removed them) makes SIGINT an
// interrupt and keeps stray errors from ending the driver.
function installListeners() {
  for (const [event, fn] of [['SIGINT', onSigint], ['uncaughtException', onUncaught], ['unhandledRejection', onUnhandled]]) {
    if (!process.listeners(event).includes(fn)) process.on(event, fn);
  }
}
installListeners();

let pending = null;
Object.defineProperty(globalThis, POST, {
  value: () => session.post('Runtime.evaluate', pending.params, pending.callback),
  enumerable: false,
});
// The synchronous part of a cell runs inside this script, under vm's SIGINT
// watchdog.
const runner = new vm.Script('globalThis[Symbol.for("runhost.kernel.post")]()', { filename: 'runhost-kernel-eval' });

function looksLikeObjectLiteral(code) {
  if (!/^\s*\{/.test(code) || !/\}\s*$/.test(code)) return false;
  try {
    new vm.Script(`(${code}\n)`); // eslint-disable-line no-new
    return true;
  } catch (e) {
    return false;
  }
}

// evaluate runs one cell and resolves with its completion value's
// RemoteObject, or rejects with Interrupted or a CellError.
function evaluate(id, code) {
  if (looksLikeObjectLiteral(code)) code = `(${code}\n)`;
  return new Promise((resolve, reject) => {
    let settled = false;
    const settle = (fn, v) => {
      if (settled) return;
      settled = true;
      interruptCell = null;
      fn(v);
    };
    interruptCell = () => settle(reject, new Interrupted('the cell was interrupted (SIGINT) while it waited for a promise; work it started may still run'));
    pending = {
      params: {
        expression: `${code}\n//# sourceURL=cell-${id}`,
        replMode: true,
        awaitPromise: true,
        objectGroup: OBJECT_GROUP,
        silent: true,
      },
      callback: (err, res) => {
        if (err) settle(reject, err);
        else if (res.exceptionDetails) {
          heldObjects = true;
          settle(reject, res);
        }
        else settle(resolve, res.result);
      },
    };
    try {
      // The synchronous part of a cell runs under vm's SIGINT watchdog,
      // which stops it with ERR_SCRIPT_EXECUTION_INTERRUPTED. Node's
      // watchdog can swallow a SIGINT that arrives as it stops; for a cell
      // that then goes on waiting (one that awaits) that would be a lost
      // interrupt, so those cells run without it and SIGINT reaches
      // interruptCell through process.on('SIGINT').
      runner.runInThisContext({ breakOnSigint: !/\bawait\b/.test(code), displayErrors: false });
    } catch (e) {
      if (e && e.code === 'ERR_SCRIPT_EXECUTION_INTERRUPTED') settle(reject, new Interrupted('Script execution was interrupted by `SIGINT`'));
      else settle(reject, e);
    } finally {
      pending = null;
    }
  });
}

const driverFrame = new RegExp(`\\(?(node:inspector|runhost-kernel-eval|node:internal|${escapeRegExp(__filename)})`);

function escapeRegExp(s) {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

// userStack keeps the stack's lines up to the first frame of the driver.
function userStack(stack) {
  const lines = String(stack).split('\n');
  const out = [];
  for (const line of lines) {
    if (/^\s+at /.test(line) && driverFrame.test(line)) break;
    out.push(line);
  }
  return out;
}

async function errorOf(e, id, code) {
  if (e instanceof Interrupted) {
    return { name: 'Interrupted', value: e.message, traceback: [] };
  }
  if (!(e && e.exceptionDetails)) {
    // A failure of the driver itself (an inspector error).
    return { name: (e && e.name) || 'Error', value: String(e && e.message), traceback: userStack(e && e.stack) };
  }
  const d = e.exceptionDetails;
  let thrown;
  let has = false;
  if (d.exception) {
    const v = await valueOf(d.exception);
    has = v.has;
    thrown = v.value;
  }
  let name;
  let value;
  let stack;
  if (has && thrown instanceof Error) {
    name = typeof thrown.name === 'string' ? thrown.name : 'Error';
    value = typeof thrown.message === 'string' ? thrown.message : plainText(thrown);
    stack = userStack(thrown.stack);
  } else if (has) {
    name = 'Uncaught';
    value = plainText(thrown);
    stack = [`Uncaught ${value}`];
  } else {
    name = 'Error';
    value = d.text || 'Uncaught';
    stack = [value];
  }
  if (name === 'SyntaxError' && d.lineNumber !== undefined) {
    // Where, as node prints it: the place, the line and a caret. An error
    // at the end of the input points after the cell's last character.
    const lines = code.split('\n');
    let line = d.lineNumber;
    let column = d.columnNumber || 0;
    if (line >= lines.length) {
      line = lines.length - 1;
      column = lines[line].length;
    }
    stack = [`cell-${id}:${line + 1}`, lines[line], `${' '.repeat(column)}^`, '', ...stack];
  }
  return { name, value, traceback: stack };
}

async function runCell(id, code) {
  currentCell = id;
  let error = null;
  try {
    const remote = await evaluate(id, code);
    const v = await valueOf(remote);
    if (v.has && v.value !== undefined) display(v.value);
  } catch (e) {
    try {
      error = await errorOf(e, id, code);
    } catch (e2) {
      error = { name: 'Error', value: String(e2 && e2.message), traceback: [] };
    }
  }
  if (heldObjects) {
    // The inspector keeps every object it described alive until released.
    heldObjects = false;
    try {
      await post('Runtime.releaseObjectGroup', { objectGroup: OBJECT_GROUP });
    } catch (e) { /* nothing held */ }
  }
  restoreStdio();
  installListeners();
  currentCell = null;
  send({ id, type: 'done', error });
}

// ---------------------------------------------------------------------------
// The request loop.

const queue = [];
let running = false;
let ended = false;

async function pump() {
  if (running) return;
  running = true;
  while (queue.length > 0) {
    const raw = queue.shift();
    let msg;
    try {
      msg = JSON.parse(raw.toString('utf8'));
      if (!Number.isInteger(msg.id) || typeof msg.code !== 'string') throw new Error('want {"id": <int>, "code": <string>}');
    } catch (e) {
      send({ id: 0, type: 'done', error: { name: 'ProtocolError', value: `bad request: ${e.message}`, traceback: [] } });
      continue;
    }
    await runCell(msg.id, msg.code);
  }
  running = false;
  if (ended) process.exit(0);
}

// importModule(specifier) is import() for cells: code evaluated through the
// inspector has no module loader of its own, so `import()` in a cell fails;
// this resolves the specifier from the working directory, as require does.
async function importModule(specifier) {
  const spec = String(specifier);
  if (spec.startsWith('node:') || Module.builtinModules.includes(spec)) return import(spec);
  let resolved;
  try {
    resolved = globalThis.require.resolve(spec);
  } catch (e) {
    return import(spec);
  }
  return import(url.pathToFileURL(resolved).href);
}

function serve() {
  globalThis.display = display;
  globalThis.require = Module.createRequire(path.join(process.cwd(), '[cell]'));
  globalThis.importModule = importModule;
  send({ type: 'ready', language: 'javascript', version: process.versions.node, features: ['display', 'interrupt', 'top-level-await'] });
  const input = new net.Socket({ fd: REQ, readable: true, writable: false });
  let buf = Buffer.alloc(0);
  input.on('data', (chunk) => {
    buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
    while (buf.length >= 4) {
      const n = buf.readUInt32BE(0);
      if (buf.length < 4 + n) break;
      queue.push(buf.subarray(4, 4 + n));
      buf = buf.subarray(4 + n);
    }
    pump();
  });
  const end = () => {
    ended = true;
    if (!running) process.exit(0);
  };
  input.on('end', end);
  input.on('error', end);
}

module.exports = { PROTOCOL };
serve();
