"""runhost kernel driver for Python, protocol runhost-kernel/1.

runhost-init starts this file once per interpreter session:

    python3 -u -X utf8 kernel.py

with fd 0 = /dev/null, fd 1 and fd 2 = the current cell's stdout and stderr,
fd 3 = requests (read here), fd 4 = events (written here). Every message on
fd 3 and fd 4 is a 4-byte big-endian length and that many bytes of UTF-8 JSON:

    -> {"type": "ready", "language": "python", "version": "3.11.2", "features": [...]}
    <- {"id": 1, "code": "x = 1\\nx + 1"}
    -> {"id": 1, "type": "result", "data": {"text/plain": "2"}, "metadata": {}}
    -> {"id": 1, "type": "done", "error": null}

A cell's results are, in order: everything it passed to display(), the value
of its last expression (a final bare expression statement that is not None
and does not end with ";"), then every matplotlib figure still open (as
image/png). An exception ends the cell with
"error": {"name", "value", "traceback"} and the driver keeps serving. SIGINT
interrupts the running cell (one KeyboardInterrupt; its sender repeats it
until the cell ends, and the repeats are ignored); between cells it is ignored.

The driver uses the standard library only. When IPython is importable (the
data image) its DisplayFormatter makes the rich representations and
IPython.display.display() publishes through this driver; otherwise a builtin
display() does the same job with the objects' _repr_*_ methods.
"""

import _ast  # the parser's node types; the ast module costs 15 ms to import
import builtins
import io
import json
import linecache
import os
import signal
import sys
import threading
import types

PROTOCOL = "runhost-kernel/1"

# The MIME types a result may carry; anything else an object offers is dropped
# (no text/javascript, no widget state: the host only renders these).
MIME_TYPES = (
    "text/plain",
    "text/html",
    "text/markdown",
    "text/latex",
    "image/png",
    "image/jpeg",
    "image/svg+xml",
    "application/json",
)
BINARY_MIME = ("image/png", "image/jpeg")
MAX_MESSAGE = 0xFFFFFFFF  # what a 4-byte length can say
MPL_BACKEND = "runhost_kernel_mpl"

# Bound now, so user code that rebinds or patches these modules' attributes
# cannot break the driver's own plumbing.
_dumps = json.dumps
_loads = json.loads
_os_write = os.write
_os_read = os.read
_getpid = os.getpid

_PID = _getpid()
_DRIVER_FILE = __file__ if "__file__" in globals() else "<runhost-kernel>"


# ---------------------------------------------------------------------------
# Protocol file descriptors, kept away from user code.


def _move_high(fd):
    """Duplicate fd to a high, close-on-exec descriptor."""
    import fcntl

    for low in (200, 64, 10):
        try:
            return fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, low)
        except OSError:
            continue  # the descriptor limit is below `low`
    return fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 5)


def _setup_fds():
    global _REQ, _EVT, _OUT, _ERR
    try:
        _REQ = _move_high(3)
        _EVT = _move_high(4)
    except OSError as e:
        sys.stderr.write("runhost kernel: fd 3 and fd 4 must be the protocol pipes (%s)\n" % e)
        sys.exit(2)
    os.close(3)
    os.close(4)
    # Copies of the cell output pipes, to put fd 1 and fd 2 back after a
    # cell closed or redirected them.
    _OUT = _move_high(1)
    _ERR = _move_high(2)
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _after_fork_in_child():
    # A forked child must never speak the protocol: it may print, it may
    # not send results or read requests.
    for fd in (_REQ, _EVT, _OUT, _ERR):
        try:
            os.close(fd)
        except OSError:
            pass


def _in_child():
    return _getpid() != _PID


# ---------------------------------------------------------------------------
# Messages.

_send_lock = threading.Lock()
_sending = False
_interrupt_pending = False
_in_cell = False


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        n = _os_write(fd, view)
        view = view[n:]


def _encode(msg):
    # Lone surrogates (from a str that came from bytes with surrogateescape)
    # become JSON \\udcxx escapes, which is what backslashreplace writes.
    return _dumps(msg, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8", "backslashreplace")


def _send(msg):
    """Send one message on the events pipe. A SIGINT that arrives while a
    message is half written is held until the message is complete."""
    global _sending, _interrupt_pending, _interrupted
    if _in_child():
        return
    data = _encode(msg)
    if len(data) > MAX_MESSAGE:
        data = _encode(
            {
                "id": msg.get("id"),
                "type": "result",
                "data": {"text/plain": "<result of %d bytes: too large to send>" % len(data)},
                "metadata": {},
            }
        )
    header = len(data).to_bytes(4, "big")
    with _send_lock:
        _sending = True
        try:
            _write_all(_EVT, header)
            _write_all(_EVT, data)
        except OSError:
            # init went away: nothing left to serve.
            os._exit(0)
        finally:
            _sending = False
        del data
    if _interrupt_pending and _in_cell and threading.current_thread() is threading.main_thread():
        _interrupt_pending = False
        _interrupted = True
        raise KeyboardInterrupt


def _read_exact(n):
    chunks = []
    while n > 0:
        b = _os_read(_REQ, min(n, 1 << 20))
        if not b:
            return None
        chunks.append(b)
        n -= len(b)
    return b"".join(chunks)


def _read_request():
    header = _read_exact(4)
    if header is None:
        return None
    body = _read_exact(int.from_bytes(header, "big"))
    if body is None:
        return None
    return body


# ---------------------------------------------------------------------------
# SIGINT: KeyboardInterrupt inside a cell, ignored between cells.


def _on_sigint(signum, frame):
    global _interrupt_pending, _interrupted
    if not _in_cell or _interrupted or _in_hook:
        return
    if _sending:
        _interrupt_pending = True
        return
    _interrupted = True
    raise KeyboardInterrupt


# The sender of SIGINT (runhost-init) repeats it until the cell ends: Python
# runs a handler only between bytecodes, so a SIGINT that arrives just before
# a blocking call (time.sleep) begins is handled only when the call returns;
# the next one interrupts the call. The cell gets one KeyboardInterrupt; the
# repeats are ignored, unless that one was lost: Python swallows what a
# finalizer (__del__, a weakref callback, the garbage collector's work)
# raises, and the unraisable hook, seeing it go by, lets the next SIGINT
# raise again.
_default_unraisablehook = sys.unraisablehook
_interrupted = False  # the running cell got its KeyboardInterrupt
_in_hook = False


def _on_unraisable(unraisable):
    global _in_hook, _interrupted
    if not issubclass(unraisable.exc_type, KeyboardInterrupt) or not _in_cell or _in_child():
        _default_unraisablehook(unraisable)
        return
    _in_hook = True  # a SIGINT that arrives now is left to the next one
    _interrupted = False
    _in_hook = False


# ---------------------------------------------------------------------------
# Standard streams.

_orig_stdout = sys.stdout
_orig_stderr = sys.stderr


def _fresh_stream(fd, like):
    return io.TextIOWrapper(
        io.FileIO(fd, "w", closefd=False),
        encoding=getattr(like, "encoding", None) or "utf-8",
        errors=getattr(like, "errors", None) or "backslashreplace",
        write_through=True,
    )


def _flush_quietly(stream):
    try:
        if stream is not None and not stream.closed:
            stream.flush()
    except Exception:
        pass


def _restore_stdio():
    """After a cell: flush what the cell wrote, then make fd 1 and fd 2 and
    sys.stdout and sys.stderr the cell output pipes again, whatever the cell
    did to them (closed, replaced, redirected)."""
    global _orig_stdout, _orig_stderr
    for s in (sys.stdout, sys.stderr, _orig_stdout, _orig_stderr):
        _flush_quietly(s)
    _flush_c_stdio()
    for saved, fd in ((_OUT, 1), (_ERR, 2)):
        try:
            os.dup2(saved, fd)
        except OSError:
            pass
    if _orig_stdout is None or _orig_stdout.closed:
        _orig_stdout = _fresh_stream(1, _orig_stdout)
    if _orig_stderr is None or _orig_stderr.closed:
        _orig_stderr = _fresh_stream(2, _orig_stderr)
    sys.stdout = _orig_stdout
    sys.stderr = _orig_stderr


def _flush_c_stdio():
    # C extensions write through libc's stdio, which buffers a pipe; flush it
    # too. Only when ctypes is already loaded: a cell that used no C stdio
    # pays nothing.
    ctypes = sys.modules.get("ctypes")
    if ctypes is None:
        return
    try:
        ctypes.CDLL(None).fflush(None)
    except Exception:
        pass


def _warn(text):
    try:
        sys.stderr.write("runhost kernel: %s\n" % text)
        sys.stderr.flush()
    except Exception:
        pass


# ---------------------------------------------------------------------------
# Rich representations.

_ipython_formatter = None
_ipython_installed = False
_SCALARS = (int, float, complex, str, bytes, bool)
_REPR_METHODS = (
    ("text/html", "_repr_html_"),
    ("text/markdown", "_repr_markdown_"),
    ("text/latex", "_repr_latex_"),
    ("image/svg+xml", "_repr_svg_"),
    ("image/png", "_repr_png_"),
    ("image/jpeg", "_repr_jpeg_"),
    ("application/json", "_repr_json_"),
)


def _ipython_format():
    """IPython's DisplayFormatter, imported on first use: importing IPython
    takes about a second, which a session that never shows more than a
    number should not pay at start."""
    global _ipython_formatter, _ipython_installed
    if _ipython_formatter is None and _ipython_installed:
        try:
            from IPython.core.formatters import DisplayFormatter

            _ipython_formatter = DisplayFormatter()
        except Exception as e:
            _ipython_installed = False
            _warn("IPython is installed but its formatters do not load (%s: %s); using the builtin display()" % (type(e).__name__, e))
    return _ipython_formatter


def _patch_ipython_display(module):
    """Route IPython.display.display() and publish_display_data() to this
    driver: applied as soon as the module that defines them is imported, so
    that every `from IPython.display import display` gets these."""
    for name, fn in (("display", display), ("publish_display_data", publish_display_data), ("clear_output", clear_output)):
        if name in module.__dict__:
            setattr(module, name, fn)


def _plain_repr(obj):
    try:
        text = repr(obj)
        if isinstance(text, str):
            return text
        raise TypeError("__repr__ returned %s, not str" % type(text).__name__)
    except Exception as e:
        _warn("repr() of a %s failed: %s: %s" % (type(obj).__name__, type(e).__name__, e))
        return object.__repr__(obj)


def _is_figure(obj):
    figure = sys.modules.get("matplotlib.figure")
    return figure is not None and isinstance(obj, figure.Figure)


def _figure_bundle(fig):
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    data = buf.getvalue()
    del buf
    return {"text/plain": _plain_repr(fig), "image/png": data}, {}


def _own_format(obj, include=None, exclude=None):
    data, md = {}, {}
    if isinstance(obj, type):
        return {"text/plain": _plain_repr(obj)}, {}
    method = _repr_method(obj, "_repr_mimebundle_")
    if method is not None:
        try:
            r = method(include=include, exclude=exclude)
            if isinstance(r, tuple) and len(r) == 2:
                r, m = r
                if isinstance(m, dict):
                    md.update(m)
            if isinstance(r, dict):
                data.update(r)
        except Exception as e:
            _warn("_repr_mimebundle_ of a %s failed: %s: %s" % (type(obj).__name__, type(e).__name__, e))
    for mime, name in _REPR_METHODS:
        if mime in data:
            continue
        method = _repr_method(obj, name)
        if method is None:
            continue
        try:
            r = method()
        except Exception as e:
            _warn("%s of a %s failed: %s: %s" % (name, type(obj).__name__, type(e).__name__, e))
            continue
        if isinstance(r, tuple) and len(r) == 2:
            r, m = r
            if isinstance(m, dict):
                md[mime] = m
        if r is not None:
            data[mime] = r
    if "text/plain" not in data:
        data["text/plain"] = _plain_repr(obj)
    return data, md


def _repr_method(obj, name):
    try:
        method = getattr(obj, name, None)
    except Exception:
        return None
    return method if callable(method) else None


def _format(obj, include=None, exclude=None):
    if _is_figure(obj):
        return _figure_bundle(obj)
    if type(obj) in _SCALARS:
        return {"text/plain": _plain_repr(obj)}, {}
    formatter = _ipython_format()
    if formatter is not None:
        try:
            data, md = formatter.format(obj, include=include, exclude=exclude)
            if "text/plain" in data or _repr_method(obj, "_ipython_display_") is not None:
                return data, md
            # IPython's text formatter failed (it printed why); say what it is.
            data = dict(data, **{"text/plain": _plain_repr(obj)})
            return data, md
        except Exception as e:
            _warn("IPython could not format a %s: %s: %s" % (type(obj).__name__, type(e).__name__, e))
    return _own_format(obj, include, exclude)


def _clean_bundle(data, metadata):
    """Keep the MIME types the protocol knows, as JSON the host can read;
    a value that is not serialisable is dropped, text/plain is always there."""
    import base64

    out = {}
    if not isinstance(data, dict):
        data = {}
    for mime in MIME_TYPES:
        if mime not in data:
            continue
        value = data[mime]
        if mime == "application/json":
            try:
                _dumps(value, allow_nan=False)
            except Exception:
                continue
        elif isinstance(value, (bytes, bytearray, memoryview)):
            if mime in BINARY_MIME:
                value = base64.b64encode(value).decode("ascii")
            else:
                value = bytes(value).decode("utf-8", "replace")
        elif not isinstance(value, str):
            continue
        out[mime] = value
    if "text/plain" not in out:
        out["text/plain"] = "<%d rich outputs>" % len(out) if out else ""
    md = {}
    if isinstance(metadata, dict):
        for k, v in metadata.items():
            try:
                _dumps(v, allow_nan=False)
            except Exception:
                continue
            md[str(k)] = v
    return out, md


def _publish(data, metadata=None):
    cell = _current_cell
    if cell is None or _in_child():
        return
    data, metadata = _clean_bundle(data, metadata)
    msg = {"id": cell, "type": "result", "data": data, "metadata": metadata}
    del data
    _send(msg)


def display(*objs, include=None, exclude=None, metadata=None, raw=False, **kwargs):
    """Show each object as a rich result of the running cell: its
    _repr_html_, _repr_png_, _repr_svg_, _repr_markdown_, _repr_latex_,
    _repr_json_ or _repr_mimebundle_ where it has them, and its repr as
    text/plain. With raw=True each object is a MIME bundle already."""
    for obj in objs:
        if raw:
            _publish(obj, metadata)
            continue
        data, md = _format(obj, include, exclude)
        if not data:  # the object displayed itself (_ipython_display_)
            continue
        if metadata:
            md = dict(md or {}, **metadata)
        _publish(data, md)
        del data


def publish_display_data(data, metadata=None, source=None, *, transient=None, **kwargs):
    _publish(data, metadata)


def clear_output(wait=False):
    """Results already sent stay; there is nothing to clear."""


# ---------------------------------------------------------------------------
# matplotlib: a backend that renders with Agg, where plt.show() shows the
# figures as results and every figure still open after a cell is shown too.


def _show_figures():
    helpers = sys.modules.get("matplotlib._pylab_helpers")
    plt = sys.modules.get("matplotlib.pyplot")
    if helpers is None or plt is None:
        return
    for manager in list(helpers.Gcf.get_all_fig_managers()):
        fig = manager.canvas.figure
        try:
            data, md = _figure_bundle(fig)
            _publish(data, md)
            del data
        except KeyboardInterrupt:
            raise
        except Exception as e:
            _warn("figure %s could not be rendered: %s: %s" % (manager.num, type(e).__name__, e))
        finally:
            plt.close(fig)


_BACKEND_SOURCE = """
from matplotlib.backend_bases import FigureManagerBase, _Backend
from matplotlib.backends.backend_agg import FigureCanvasAgg


@_Backend.export
class _BackendRunhost(_Backend):
    FigureCanvas = FigureCanvasAgg
    FigureManager = FigureManagerBase

    @staticmethod
    def show(*args, **kwargs):
        _show_figures()

    @staticmethod
    def draw_if_interactive(*args, **kwargs):
        pass
"""


def _after_matplotlib(module):
    try:
        module.rcParams["backend"] = "module://" + MPL_BACKEND
    except Exception as e:
        _warn("could not select the inline matplotlib backend: %s" % e)


_POST_IMPORT = {
    "matplotlib": _after_matplotlib,
    "IPython.core.display_functions": _patch_ipython_display,
    "IPython.core.display": _patch_ipython_display,
}


class _Hooks:
    """A meta path finder. It provides the matplotlib backend module and
    runs a hook right after some modules are imported: matplotlib gets the
    inline backend as its default (subprocesses keep MPLBACKEND=Agg from the
    environment), IPython's display() becomes this driver's."""

    def __init__(self):
        self._busy = set()

    def find_spec(self, name, path=None, target=None):
        hook = _POST_IMPORT.get(name)
        if hook is None and name != MPL_BACKEND or name in self._busy:
            return None
        import importlib.util

        if name == MPL_BACKEND:
            return importlib.util.spec_from_loader(name, self)
        self._busy.add(name)
        try:
            spec = importlib.util.find_spec(name)
        finally:
            self._busy.discard(name)
        loader = getattr(spec, "loader", None)
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        exec_module = loader.exec_module

        def exec_then_hook(module):
            exec_module(module)
            hook(module)

        loader.exec_module = exec_then_hook
        return spec

    # The loader of the backend module.
    def create_module(self, spec):
        return None

    def exec_module(self, module):
        module.__dict__["_show_figures"] = _show_figures
        exec(compile(_BACKEND_SOURCE, "<" + MPL_BACKEND + ">", "exec"), module.__dict__)


# ---------------------------------------------------------------------------
# Cells.

_current_cell = None
_loop = None
_user_module = types.ModuleType("__main__", "The interpreter session's namespace.")
_user_ns = _user_module.__dict__
_user_ns["__builtins__"] = builtins
_CO_COROUTINE = 0x80
_TOP_LEVEL_AWAIT = getattr(_ast, "PyCF_ALLOW_TOP_LEVEL_AWAIT", 0)


def _suppressed(code, stmt):
    """A final expression followed by ';' is not shown (as in Jupyter)."""
    lines = code.splitlines(True)
    if stmt.end_lineno is None or stmt.end_lineno > len(lines):
        return False
    line = lines[stmt.end_lineno - 1].encode("utf-8")[stmt.end_col_offset :].decode("utf-8", "replace")
    rest = line + "".join(lines[stmt.end_lineno :])
    return rest.lstrip().startswith(";")


def _run_code(code_obj):
    if code_obj.co_flags & _CO_COROUTINE:
        return _await(eval(code_obj, _user_ns))
    return eval(code_obj, _user_ns)


def _await(coro):
    global _loop
    import asyncio

    if _loop is None or _loop.is_closed():
        _loop = asyncio.new_event_loop()
    task = _loop.create_task(coro)
    try:
        return _loop.run_until_complete(task)
    except BaseException:
        task.cancel()
        raise


def _execute(cell_id, code):
    """Run one cell in the user namespace; send its results. Raises what the
    cell raised."""
    filename = "<cell-%d>" % cell_id
    linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
    tree = compile(code, filename, "exec", _ast.PyCF_ONLY_AST, dont_inherit=True)
    last = None
    if tree.body and isinstance(tree.body[-1], _ast.Expr) and not _suppressed(code, tree.body[-1]):
        last = tree.body.pop()
    flags = _TOP_LEVEL_AWAIT
    body = compile(tree, filename, "exec", flags=flags, dont_inherit=True)
    expr = None
    if last is not None:
        expr = compile(_ast.Expression(last.value), filename, "eval", flags=flags, dont_inherit=True)
    del tree, last
    _run_code(body)
    if expr is not None:
        value = _run_code(expr)
        if value is not None:
            display(value)
        del value


def _user_frames(exc):
    """The traceback the user should see: the cell is the top, and no frame
    of the driver (or of asyncio running an awaiting cell) shows."""
    if isinstance(exc, SyntaxError) and str(exc.filename).startswith("<cell-"):
        return None  # the cell did not compile: only the caret display
    tb = exc.__traceback__
    first = tb
    while first is not None and not first.tb_frame.f_code.co_filename.startswith("<cell-"):
        first = first.tb_next
    if first is not None:
        tb = first
    frames = []
    while tb is not None:
        if tb.tb_frame.f_code.co_filename != _DRIVER_FILE:
            frames.append(tb)
        tb = tb.tb_next
    for this, following in zip(frames, frames[1:] + [None]):
        this.tb_next = following
    return frames[0] if frames else None


def _error_of(exc):
    import traceback

    try:
        value = str(exc)
    except Exception:
        value = "<str() of the exception failed>"
    try:
        te = traceback.TracebackException(type(exc), exc, _user_frames(exc), compact=True)
        lines = "".join(te.format()).rstrip("\n").split("\n")
    except Exception as e:
        lines = ["%s: %s" % (type(exc).__name__, value), "(the traceback could not be formatted: %s)" % e]
    return {"name": type(exc).__name__, "value": value, "traceback": lines}


def _serve(request):
    global _current_cell, _in_cell, _interrupt_pending, _interrupted
    try:
        msg = _loads(request)
        cell_id = msg["id"]
        code = msg["code"]
        if not isinstance(cell_id, int) or not isinstance(code, str):
            raise ValueError("want {\"id\": <int>, \"code\": <str>}")
    except Exception as e:
        _send({"id": 0, "type": "done", "error": {"name": "ProtocolError", "value": "bad request: %s" % e, "traceback": []}})
        return
    error = None
    _current_cell = cell_id
    _interrupt_pending = False
    _interrupted = False
    signal.signal(signal.SIGINT, _on_sigint)
    try:
        try:
            _in_cell = True
            _execute(cell_id, code)
            _in_cell = False
        except BaseException as e:
            _in_cell = False
            error = e
        if _in_child():
            _exit_child(error)
        if error is not None:
            error = _error_of(error)
        _in_cell = True
        try:
            _show_figures()
        except BaseException as e:
            if error is None and isinstance(e, KeyboardInterrupt):
                error = _error_of(e)
        _in_cell = False
    except KeyboardInterrupt:
        # A SIGINT that arrived between the cell and the bookkeeping.
        _in_cell = False
    signal.signal(signal.SIGINT, _on_sigint)
    _restore_stdio()
    _current_cell = None
    _send({"id": cell_id, "type": "done", "error": error})


def _exit_child(error):
    """A forked child came back from the cell: it ends here, never in the
    request loop."""
    code = 0
    if isinstance(error, SystemExit):
        code = error.code if isinstance(error.code, int) else (0 if error.code is None else 1)
    elif error is not None:
        code = 1
    for s in (sys.stdout, sys.stderr):
        _flush_quietly(s)
    os._exit(code)


def _features():
    features = ["display", "interrupt", "top-level-await"]
    if _ipython_installed:
        features.append("ipython")
    return features + [name for name in ("matplotlib", "pandas", "numpy") if _installed(name)]


def _installed(name):
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None
    except Exception:
        return False


def main():
    global _ipython_installed
    _setup_fds()
    signal.signal(signal.SIGINT, _on_sigint)
    sys.unraisablehook = _on_unraisable
    # The cell's namespace is a module of its own, installed as __main__ so
    # that pickle and multiprocessing find the user's functions.
    sys.modules["__main__"] = _user_module
    if sys.path and os.path.abspath(sys.path[0] or ".") == os.path.dirname(os.path.abspath(_DRIVER_FILE)):
        sys.path[0] = ""  # imports come from the working directory, as in Jupyter
    builtins.display = display
    sys.meta_path.insert(0, _Hooks())
    _ipython_installed = _installed("IPython")
    v = sys.version_info
    _send({"type": "ready", "language": "python", "version": "%d.%d.%d" % (v[0], v[1], v[2]), "features": _features()})
    while True:
        request = _read_request()
        if request is None:
            break
        _serve(request)
        del request
    for s in (sys.stdout, sys.stderr):
        _flush_quietly(s)


if __name__ == "__main__":
    _self = sys.modules["__main__"]  # keeps the driver's module alive once __main__ is the user's
    main()
