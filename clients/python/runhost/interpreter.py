"""Interpreter sessions: a resident interpreter whose state lives between
cells, with rich results (``POST /sessions`` with ``"mode": "interpreter"``).

    from runhost import RunhostClient

    client = RunhostClient("http://localhost:8080", api_key="...")
    with client.interpreter("python", version="3.11-data") as py:
        py.run_code("import matplotlib.pyplot as plt\\nplt.plot([1, 3, 2])")
        ex = py.run_code("x = 41\\nx + 1")
        print(ex.text)                      # "42"
"""

import base64
from typing import Any, Callable, Dict, List, Optional, Union

Bundle = Dict[str, Any]


class ExecutionError:
    """The exception a cell raised: ``name``, ``value`` and ``traceback``
    (its lines). The session keeps its state."""

    def __init__(self, name: str, value: str, traceback: List[str]):
        self.name, self.value, self.traceback = name, value, traceback

    def __repr__(self) -> str:
        return f"ExecutionError({self.name}: {self.value})"


class Logs:
    """What a cell wrote: ``stdout`` and ``stderr``, each a list of chunks
    (one chunk when the cell was not streamed)."""

    def __init__(self) -> None:
        self.stdout: List[Union[str, bytes]] = []
        self.stderr: List[Union[str, bytes]] = []


class Execution:
    """The result of one cell.

    * ``results``: its rich results in order, each a MIME bundle
      (``{"text/plain": "42"}``, ``{"image/png": "<base64>", ...}``);
      :meth:`png` decodes an image.
    * ``text``: ``text/plain`` of the last result (the value of the cell's
      last expression when it has one), or ``None``.
    * ``error``: an :class:`ExecutionError` when the cell raised, else ``None``.
    * ``logs``: :class:`Logs`.
    * ``timed_out``, ``restarted`` (the interpreter was started again: its
      state is lost), ``duration_ms`` and ``raw`` (the whole answer).
    """

    def __init__(self, raw: Dict[str, Any], logs: Optional[Logs] = None):
        self.raw = raw
        self.results: List[Bundle] = list(raw.get("results") or [])
        err = raw.get("error")
        self.error: Optional[ExecutionError] = (
            ExecutionError(str(err.get("name", "")), str(err.get("value", "")), list(err.get("traceback") or []))
            if isinstance(err, dict) else None)
        if logs is None:
            logs = Logs()
            for stream in ("stdout", "stderr"):
                out = _output(raw.get(stream, ""), raw.get(stream + "_encoding"))
                if out:
                    getattr(logs, stream).append(out)
        self.logs = logs
        self.timed_out: bool = bool(raw.get("timed_out"))
        self.restarted: bool = bool(raw.get("restarted"))
        self.duration_ms: int = int(raw.get("duration_ms") or 0)

    @property
    def text(self) -> Optional[str]:
        for bundle in reversed(self.results):
            if "text/plain" in bundle:
                return bundle["text/plain"]
        return None

    def png(self, index: int = -1) -> bytes:
        """The ``image/png`` of result ``index`` (the last by default), decoded."""
        return base64.b64decode(self.results[index]["image/png"])

    def __repr__(self) -> str:
        return f"Execution(results={len(self.results)}, text={self.text!r}, error={self.error!r})"


def _output(text: Any, encoding: Any) -> Union[str, bytes]:
    if encoding == "base64":
        return base64.b64decode(text or "")
    return text or ""


class Interpreter:
    """An interpreter session: ``run_code`` runs one cell in the same global
    state as the cells before it. Close it (or use ``with``) to end the
    session and remove its container."""

    def __init__(self, client: Any, runtime: str = "python", version: Optional[str] = None, **session: Any):
        self.client = client
        info = client.create_session(runtime, version=version, mode="interpreter", **session)
        self.id: str = info["id"]
        self.info: Dict[str, Any] = info

    def run_code(
        self,
        code: str,
        timeout_ms: Optional[int] = None,
        files: Any = None,
        on_stdout: Optional[Callable[[Union[str, bytes]], None]] = None,
        on_stderr: Optional[Callable[[Union[str, bytes]], None]] = None,
        on_result: Optional[Callable[[Bundle], None]] = None,
        http_timeout: Optional[float] = None,
    ) -> Execution:
        """Run ``code`` as one cell. With a callback the cell is streamed:
        ``on_stdout``/``on_stderr`` get output as it is written, ``on_result``
        each rich result as it is displayed. A cell that raises is an
        :class:`Execution` with ``error`` set, not an exception; HTTP errors
        (``session_busy``, ``session_not_found`` ...) raise
        :class:`runhost.RunhostError`."""
        fields: Dict[str, Any] = {}
        if timeout_ms is not None:
            fields["timeout_ms"] = timeout_ms
        if files is not None:
            fields["files"] = files
        if on_stdout is None and on_stderr is None and on_result is None:
            return Execution(self.client.run_in_session(self.id, code, http_timeout=http_timeout, **fields))
        logs = Logs()

        def out(stream: List[Union[str, bytes]], cb: Optional[Callable]) -> Callable:
            def f(chunk: Union[str, bytes]) -> None:
                stream.append(chunk)
                if cb is not None:
                    cb(chunk)
            return f

        def event(name: str, msg: Any) -> None:
            if name == "rich_result" and on_result is not None:
                on_result(msg)

        raw = self.client.run_in_session(self.id, code, on_stdout=out(logs.stdout, on_stdout),
                                         on_stderr=out(logs.stderr, on_stderr), on_event=event,
                                         http_timeout=http_timeout, **fields)
        return Execution(raw, logs)

    def close(self) -> None:
        """End the session (its state and container go)."""
        self.client.end_session(self.id)

    def __enter__(self) -> "Interpreter":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
