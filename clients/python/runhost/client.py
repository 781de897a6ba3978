"""A standard-library client for the runhost HTTP API.

Every route of the native API (see the "API" section of runhost's README)
has a method here: runs (whole or streamed), sessions, workspace files,
runtimes, probes and the operator routes. The Piston-compatible routes
(``/api/v2``) are for Piston's own clients and are not wrapped. Errors come back from the server as
``{"error": {"code": ..., "message": ...}}`` and are raised as
:class:`RunhostError`; a program that fails, times out, runs out of memory, a
failed dependency install and a Dockerfile that does not build are *not*
errors: they are a normal result (a dict) with ``stage``, ``exit_code``,
``timed_out`` ... set.
"""

from __future__ import annotations

import base64
import json
import socket
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Union

__all__ = ["RunhostClient", "RunhostError"]

FileSpec = Union[str, bytes, Mapping[str, Any]]


class RunhostError(RuntimeError):
    """An error answer of the runhost API, or a failure to get one.

    ``status`` is the HTTP status (0 when no answer arrived), ``code`` the
    machine-readable code of the JSON error body (``unknown_runtime``,
    ``image_not_allowed``, ... see the README's error table) and ``message``
    the server's explanation. Client-side failures use these codes:
    ``unreachable`` (no connection), ``client_timeout`` (no answer within the
    HTTP timeout), ``redirect`` (the server answered with a redirect, which is
    never followed so that the API key cannot leak) and ``bad_response`` (an
    answer that is not the documented JSON).

    It subclasses ``RuntimeError`` because the seed's ``DindExecutor`` raised
    ``RuntimeError("DinD service is not available")``.
    """

    def __init__(self, status: int, code: str, message: str, body: Optional[bytes] = None,
                 retry_after: Optional[float] = None):
        super().__init__(f"runhost: {status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.body = body
        #: seconds from a Retry-After header (a 429 when the host's queue is full)
        self.retry_after = retry_after


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # urllib copies the Authorization header onto a redirect, even to another
    # host; the API never redirects, so a redirect is refused instead.
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: D401
        return None


def _quote_segment(s: str) -> str:
    return urllib.parse.quote(s, safe="")


def _quote_path(p: str) -> str:
    return "/".join(_quote_segment(seg) for seg in p.split("/"))


class RunhostClient:
    """A client of one runhost host.

    :param base_url: the host, e.g. ``http://127.0.0.1:8080`` (no path needed).
    :param api_key: sent as ``Authorization: Bearer <api_key>`` on every
        request (never in the URL).
    :param timeout: HTTP timeout in seconds of calls other than runs.
    :param run_timeout_margin: seconds a run's HTTP call waits beyond the
        run's own timeout (a wait in the host's queue, up to
        ``RUNHOST_QUEUE_WAIT_MS``, 30 s by default; container start; output).
    :param default_run_timeout: seconds assumed for a run that gives no
        ``timeout_ms`` (the host's default is 10 s and its default maximum
        60 s).
    :param setup_timeout: seconds added for a dependency install or a
        Dockerfile build before the run (the host's ``RUNHOST_INSTALL_TIMEOUT_MS``
        and ``RUNHOST_BUILD_TIMEOUT_MS`` default to 300 s).
    """

    def __init__(
        self,
        base_url: str,
        api_key: Optional[str] = None,
        timeout: float = 30.0,
        *,
        run_timeout_margin: float = 60.0,
        default_run_timeout: float = 60.0,
        setup_timeout: float = 300.0,
    ):
        parsed = urllib.parse.urlsplit(base_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(f"base_url must be an http:// or https:// URL, got {base_url!r}")
        if parsed.username or parsed.password or parsed.query or parsed.fragment:
            raise ValueError("base_url must not carry credentials, a query or a fragment; pass api_key instead")
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout
        self.run_timeout_margin = run_timeout_margin
        self.default_run_timeout = default_run_timeout
        self.setup_timeout = setup_timeout
        self._opener = urllib.request.build_opener(_NoRedirect)

    def __repr__(self) -> str:  # never shows the key
        return f"RunhostClient({self.base_url!r}, api_key={'***' if self.api_key else None})"

    # -- transport -----------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        body: Optional[bytes] = None,
        content_type: Optional[str] = None,
        timeout: Optional[float] = None,
    ):
        """Send one request; return (status, headers, body bytes) of a 2xx
        answer, raise RunhostError otherwise."""
        req = urllib.request.Request(self.base_url + path, data=body, method=method)
        req.add_header("Accept", "application/json")
        req.add_header("User-Agent", "runhost-python")
        if content_type:
            req.add_header("Content-Type", content_type)
        if self.api_key:
            req.add_header("Authorization", "Bearer " + self.api_key)
        t = self.timeout if timeout is None else timeout
        try:
            with self._opener.open(req, timeout=t) as resp:
                return resp.status, resp.headers, resp.read()
        except urllib.error.HTTPError as e:
            data = e.read() if e.fp is not None else b""
            raise self._error(e.code, data, e.headers) from None
        except urllib.error.URLError as e:
            reason = e.reason
            if isinstance(reason, (socket.timeout, TimeoutError)):
                raise RunhostError(0, "client_timeout", f"{method} {path}: no answer within {t:g}s") from None
            raise RunhostError(0, "unreachable", f"{method} {self.base_url}{path}: {reason}") from None
        except (socket.timeout, TimeoutError):
            raise RunhostError(0, "client_timeout", f"{method} {path}: no answer within {t:g}s") from None
        except (ConnectionError, OSError) as e:
            raise RunhostError(0, "unreachable", f"{method} {self.base_url}{path}: {e}") from None

    @staticmethod
    def _error(status: int, data: bytes, headers) -> RunhostError:
        if 300 <= status < 400:
            where = headers.get("Location", "") if headers is not None else ""
            return RunhostError(status, "redirect", f"the server redirected to {where!r}; redirects are not followed", data)
        retry_after = None
        if headers is not None and headers.get("Retry-After"):
            try:
                retry_after = float(headers.get("Retry-After"))
            except ValueError:
                pass
        try:
            err = json.loads(data.decode("utf-8"))["error"]
            return RunhostError(status, str(err["code"]), str(err.get("message", "")), data, retry_after)
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            text = data.decode("utf-8", "replace").strip()[:500]
            return RunhostError(status, "bad_response", text or f"HTTP {status} with no error body", data, retry_after)

    def _json(self, method: str, path: str, payload: Any = None, timeout: Optional[float] = None) -> Any:
        body = None if payload is None else json.dumps(payload).encode("utf-8")
        status, _, data = self._request(method, path, body, "application/json" if body is not None else None, timeout)
        if not data:
            return None
        try:
            return json.loads(data.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            raise RunhostError(status, "bad_response", "answer is not JSON: " + data[:200].decode("utf-8", "replace"), data) from None

    # -- runtimes ------------------------------------------------------

    def runtimes(self) -> List[Dict[str, Any]]:
        """``GET /runtimes``: every runtime with its versions and capabilities."""
        return self._json("GET", "/runtimes")

    def runtime(self, name: str) -> Dict[str, Any]:
        """``GET /runtimes/{name}``: one runtime (aliases work)."""
        return self._json("GET", "/runtimes/" + _quote_segment(name))

    def plugins(self) -> List[Dict[str, Any]]:
        """``GET /plugins``: every file in the plugin directory and its state.

        An operator route: with keys, the key needs the ``operator`` option
        (others get 403 ``forbidden``)."""
        return self._json("GET", "/plugins")

    def healthy(self) -> bool:
        """``GET /healthz`` answers 200."""
        return self._probe("/healthz")

    def ready(self) -> bool:
        """``GET /readyz`` answers 200: the engine answers and a plugin is
        healthy. False on any other answer or no answer."""
        return self._probe("/readyz")

    def _probe(self, path: str) -> bool:
        try:
            status, _, _ = self._request("GET", path, timeout=min(self.timeout, 10.0))
        except RunhostError:
            return False
        return status == 200

    def run(
        self,
        runtime: str,
        code: Optional[str] = None,
        files: Optional[Union[Sequence[Mapping[str, Any]], Mapping[str, FileSpec]]] = None,
        version: Optional[str] = None,
        stdin: Optional[str] = None,
        args: Optional[Sequence[str]] = None,
        env: Optional[Mapping[str, str]] = None,
        timeout_ms: Optional[int] = None,
        memory_mb: Optional[int] = None,
        cpus: Optional[float] = None,
        requirements: Optional[Sequence[str]] = None,
        packages: Optional[Sequence[str]] = None,
        image: Optional[str] = None,
        command: Optional[Union[str, Sequence[str]]] = None,
        dockerfile: Optional[str] = None,
        build_args: Optional[Mapping[str, str]] = None,
        workspace: Optional[str] = None,
        context_path: Optional[str] = None,
        entry: Optional[str] = None,
        network: Optional[Sequence[str]] = None,
        http_timeout: Optional[float] = None,
    ) -> Dict[str, Any]:
        """``POST /runtimes/{runtime}/run``; returns the response JSON.

        ``files`` is either the API's list of ``{"path", "content",
        "encoding"}`` or a mapping of path to content, where ``bytes`` content
        is sent base64-encoded. ``command`` is an argv (list) or a line for
        ``sh -c`` (string). ``network`` lists hosts the run may reach through
        the host's egress proxy (``["api.github.com"]``), within what the key
        is granted (else RunhostError 403 ``network_not_allowed``); ``[]``
        asks for none, ``None`` leaves it to the key's default grant. Fields
        left as ``None`` are not sent (the host's defaults apply). The HTTP call waits for the run's timeout plus
        ``run_timeout_margin`` (plus ``setup_timeout`` with dependencies or a
        Dockerfile) unless ``http_timeout`` says otherwise.
        """
        payload = _run_payload(**{k: v for k, v in locals().items() if k not in ("self", "runtime", "http_timeout")})
        if http_timeout is None:
            http_timeout = self._run_http_timeout(runtime, timeout_ms, requirements, packages, dockerfile, context_path)
        return self._json("POST", "/runtimes/" + _quote_segment(runtime) + "/run", payload, timeout=http_timeout)

    def stream(
        self,
        runtime: str,
        on_stdout: Optional[Callable[[Union[str, bytes]], None]] = None,
        on_stderr: Optional[Callable[[Union[str, bytes]], None]] = None,
        http_timeout: Optional[float] = None,
        **fields: Any,
    ) -> Dict[str, Any]:
        """``POST /runtimes/{runtime}/run`` with ``Accept: text/event-stream``:
        ``on_stdout`` and ``on_stderr`` get the output as the program writes
        it (``str``, or ``bytes`` for output that is not UTF-8); returns the
        result, as :meth:`run` does. ``fields`` are :meth:`run`'s."""
        payload = _run_payload(**fields)
        if http_timeout is None:
            http_timeout = self._run_http_timeout(runtime, fields.get("timeout_ms"), fields.get("requirements"),
                                                  fields.get("packages"), fields.get("dockerfile"), fields.get("context_path"))
        return self._stream("/runtimes/" + _quote_segment(runtime) + "/run", payload, on_stdout, on_stderr, http_timeout)

    def _run_http_timeout(self, runtime, timeout_ms, requirements, packages, dockerfile, context_path) -> float:
        run_s = timeout_ms / 1000.0 if timeout_ms else self.default_run_timeout
        t = run_s + self.run_timeout_margin
        if requirements or packages:
            t += self.setup_timeout
        if dockerfile is not None or context_path is not None or runtime in ("dockerfile", "docker"):
            t += self.setup_timeout
        return t

    def _stream(self, path: str, payload: Dict[str, Any], on_stdout, on_stderr, timeout: float) -> Dict[str, Any]:
        """POST payload asking for server-sent events; hand output chunks to
        the callbacks; return the result event's JSON."""
        req = urllib.request.Request(self.base_url + path, data=json.dumps(payload).encode("utf-8"), method="POST")
        req.add_header("Accept", "text/event-stream")
        req.add_header("Content-Type", "application/json")
        req.add_header("User-Agent", "runhost-python")
        if self.api_key:
            req.add_header("Authorization", "Bearer " + self.api_key)
        try:
            resp = self._opener.open(req, timeout=timeout)
        except urllib.error.HTTPError as e:
            data = e.read() if e.fp is not None else b""
            raise self._error(e.code, data, e.headers) from None
        except (urllib.error.URLError, OSError) as e:
            raise RunhostError(0, "unreachable", f"POST {self.base_url}{path}: {e}") from None
        with resp:
            ctype = resp.headers.get("Content-Type", "")
            if not ctype.startswith("text/event-stream"):
                body = resp.read()
                try:
                    return json.loads(body.decode("utf-8"))
                except (ValueError, UnicodeDecodeError):
                    raise RunhostError(resp.status, "bad_response", "answer is neither a stream nor JSON", body) from None
            event, data = "", []
            for raw in resp:
                line = raw.decode("utf-8").rstrip("\r\n")
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].lstrip())
                elif line == "" and event:
                    msg = json.loads("\n".join(data)) if data else {}
                    if event in ("stdout", "stderr"):
                        chunk = msg["text"] if "text" in msg else base64.b64decode(msg.get("base64", ""))
                        cb = on_stdout if event == "stdout" else on_stderr
                        if cb is not None:
                            cb(chunk)
                    elif event == "result":
                        return msg
                    elif event == "error":
                        err = msg.get("error", {})
                        raise RunhostError(resp.status, str(err.get("code", "error")), str(err.get("message", "")))
                    else:
                        self._on_event(event, msg)
                    event, data = "", []
        raise RunhostError(0, "bad_response", "the stream ended without a result")

    def _on_event(self, event: str, msg: Any) -> None:
        """Events a subclass may want (rich results of interpreter cells)."""

    # -- sessions ------------------------------------------------------

    def create_session(self, runtime: str, version: Optional[str] = None, workspace: Optional[str] = None,
                       ttl_s: Optional[int] = None, memory_mb: Optional[int] = None,
                       cpus: Optional[float] = None, network: Optional[Sequence[str]] = None,
                       **extra: Any) -> Dict[str, Any]:
        """``POST /sessions``: a container that serves one run at a time and
        keeps its files and ``/tmp`` between runs. Returns the session
        (``id``, ``runtime``, ``version``, ``expires_at`` ...). ``network`` is
        as :meth:`run`'s, for every run of the session."""
        payload: Dict[str, Any] = {"runtime": runtime}
        for k, v in (("version", version), ("workspace", workspace), ("ttl_s", ttl_s), ("memory_mb", memory_mb), ("cpus", cpus),
                     ("network", _network(network))):
            if v is not None:
                payload[k] = v
        payload.update({k: v for k, v in extra.items() if v is not None})
        return self._json("POST", "/sessions", payload, timeout=max(self.timeout, 60.0))

    def sessions(self) -> List[Dict[str, Any]]:
        """``GET /sessions``: the key's sessions, oldest first."""
        out = self._json("GET", "/sessions")
        return out.get("sessions", []) if isinstance(out, dict) else []

    def session(self, session_id: str) -> Dict[str, Any]:
        """``GET /sessions/{id}``."""
        return self._json("GET", "/sessions/" + _quote_segment(session_id))

    def run_in_session(self, session_id: str, code: Optional[str] = None,
                       on_stdout: Optional[Callable[[Union[str, bytes]], None]] = None,
                       on_stderr: Optional[Callable[[Union[str, bytes]], None]] = None,
                       http_timeout: Optional[float] = None, **fields: Any) -> Dict[str, Any]:
        """``POST /sessions/{id}/run``: ``code`` (or ``files``, ``entry``,
        ``stdin``, ``args``, ``env``, ``timeout_ms`` ...) in the session. With
        ``on_stdout``/``on_stderr`` the output streams to them as it comes."""
        payload = _run_payload(code=code, **fields)
        if http_timeout is None:
            t = fields.get("timeout_ms")
            http_timeout = (t / 1000.0 if t else self.default_run_timeout) + self.run_timeout_margin
        path = "/sessions/" + _quote_segment(session_id) + "/run"
        if on_stdout is not None or on_stderr is not None:
            return self._stream(path, payload, on_stdout, on_stderr, http_timeout)
        return self._json("POST", path, payload, timeout=http_timeout)

    def end_session(self, session_id: str) -> None:
        """``DELETE /sessions/{id}``: end the session and remove its container."""
        self._request("DELETE", "/sessions/" + _quote_segment(session_id))

    # -- workspace files -----------------------------------------------

    def _file_url(self, session: str, path: str) -> str:
        path = path.lstrip("/")
        if not path:
            raise ValueError("path is empty: name a file in the session")
        return "/workspaces/" + _quote_segment(session) + "/files/" + _quote_path(path)

    def put_file(self, session: str, path: str, data: Union[bytes, str]) -> Dict[str, Any]:
        """``PUT /workspaces/{session}/files/{path}``: upload ``data`` (bytes,
        or str sent as UTF-8), creating directories. Returns ``{"path", "size"}``."""
        if isinstance(data, str):
            data = data.encode("utf-8")
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError("data must be bytes or str")
        _, _, body = self._request("PUT", self._file_url(session, path), bytes(data), "application/octet-stream")
        return json.loads(body.decode("utf-8")) if body else {}

    def get_file(self, session: str, path: str) -> bytes:
        """``GET /workspaces/{session}/files/{path}``: the file's bytes."""
        _, _, body = self._request("GET", self._file_url(session, path))
        return body

    def list_files(self, session: str, directory: Optional[str] = None) -> List[Dict[str, Any]]:
        """``GET /workspaces/{session}/files/?list``: every entry of the
        session, or of ``directory`` in it (``path``, ``type``, ``size``,
        ``mtime``; paths from the session). A session that does not exist
        raises RunhostError 404 ``not_found``."""
        where = _quote_path(directory.strip("/")) if directory else ""
        out = self._json("GET", "/workspaces/" + _quote_segment(session) + "/files/" + where + "?list")
        return out.get("files", []) if isinstance(out, dict) else []

    def workspaces(self) -> List[Dict[str, Any]]:
        """``GET /workspaces``: the workspace names the key reaches
        (``name``, ``shared``)."""
        out = self._json("GET", "/workspaces")
        return out.get("workspaces", []) if isinstance(out, dict) else []

    def delete_file(self, session: str, path: str) -> None:
        """``DELETE /workspaces/{session}/files/{path}``: a file or a directory tree."""
        self._request("DELETE", self._file_url(session, path))

    def delete_session(self, session: str) -> None:
        """``DELETE /workspaces/{session}``: the whole session (no error if absent)."""
        self._request("DELETE", "/workspaces/" + _quote_segment(session))


def _run_payload(
    code: Optional[str] = None,
    files: Optional[Union[Sequence[Mapping[str, Any]], Mapping[str, FileSpec]]] = None,
    version: Optional[str] = None,
    stdin: Optional[str] = None,
    args: Optional[Sequence[str]] = None,
    env: Optional[Mapping[str, str]] = None,
    timeout_ms: Optional[int] = None,
    memory_mb: Optional[int] = None,
    cpus: Optional[float] = None,
    requirements: Optional[Sequence[str]] = None,
    packages: Optional[Sequence[str]] = None,
    image: Optional[str] = None,
    command: Optional[Union[str, Sequence[str]]] = None,
    dockerfile: Optional[str] = None,
    build_args: Optional[Mapping[str, str]] = None,
    workspace: Optional[str] = None,
    context_path: Optional[str] = None,
    entry: Optional[str] = None,
    network: Optional[Sequence[str]] = None,
) -> Dict[str, Any]:
    """A run request's JSON; fields left as None are not sent."""
    payload: Dict[str, Any] = {}

    def put(key: str, value: Any) -> None:
        if value is not None:
            payload[key] = value

    put("code", code)
    if files is not None:
        payload["files"] = _files_payload(files)
    put("entry", entry)
    put("version", version)
    put("stdin", stdin)
    put("args", _str_list("args", args))
    put("env", _str_map("env", env))
    put("timeout_ms", None if timeout_ms is None else int(timeout_ms))
    put("memory_mb", None if memory_mb is None else int(memory_mb))
    put("cpus", cpus)
    put("requirements", _str_list("requirements", requirements))
    put("packages", _str_list("packages", packages))
    put("image", image)
    if command is not None:
        payload["command"] = command if isinstance(command, str) else _str_list("command", command)
    put("dockerfile", dockerfile)
    put("build_args", _str_map("build_args", build_args))
    put("workspace", workspace)
    put("context_path", context_path)
    put("network", _network(network))
    return payload


def _network(hosts: Optional[Sequence[str]]) -> Optional[Dict[str, List[str]]]:
    """The ``network`` field for hosts (None: not sent)."""
    if hosts is None:
        return None
    return {"allow": _str_list("network", hosts) or []}


def _files_payload(files: Union[Sequence[Mapping[str, Any]], Mapping[str, FileSpec]]) -> List[Dict[str, Any]]:
    out: List[Dict[str, Any]] = []
    if isinstance(files, Mapping):
        items: Iterable = files.items()
        for path, content in items:
            if isinstance(content, Mapping):
                f = dict(content)
                f.setdefault("path", path)
                out.append(f)
            elif isinstance(content, (bytes, bytearray, memoryview)):
                out.append({"path": path, "content": base64.b64encode(bytes(content)).decode("ascii"), "encoding": "base64"})
            elif isinstance(content, str):
                out.append({"path": path, "content": content})
            else:
                raise TypeError(f"files[{path!r}]: content must be str, bytes or a dict")
        return out
    for i, f in enumerate(files):
        if not isinstance(f, Mapping) or "path" not in f:
            raise TypeError(f"files[{i}]: want a dict with path and content")
        f = dict(f)
        if isinstance(f.get("content"), (bytes, bytearray, memoryview)):
            f["content"] = base64.b64encode(bytes(f["content"])).decode("ascii")
            f["encoding"] = "base64"
        out.append(f)
    return out


def _str_list(name: str, v: Optional[Sequence[str]]) -> Optional[List[str]]:
    if v is None:
        return None
    if isinstance(v, (str, bytes)):
        raise TypeError(f"{name} must be a list of strings, not a single string")
    return [str(x) for x in v]


def _str_map(name: str, v: Optional[Mapping[str, str]]) -> Optional[Dict[str, str]]:
    if v is None:
        return None
    if not isinstance(v, Mapping):
        raise TypeError(f"{name} must be a mapping of strings")
    return {str(k): str(x) for k, x in v.items()}
