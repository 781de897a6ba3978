"""``DindExecutor`` on top of runhost: the seed's facade, same names.

The seed (``app/utils/dind_executor.py``) ran ``docker run`` against a
Docker-in-Docker daemon. This class keeps its methods, parameters and return
shape but sends each call to a runhost host, which runs it in a hardened,
throw-away container. Switching is an import change::

    from app.utils.dind_executor import get_executor   # before
    from runhost import get_executor                   # after

Every method returns a dict with the seed's keys ``returncode``, ``stdout``
and ``stderr``, plus ``exit_code`` (same value as ``returncode``),
``success``, ``timed_out``, ``oom_killed``, ``duration_ms``,
``execution_time`` (seconds), ``stage`` and the rest of runhost's response
(``run_id``, ``image``, ``install``, ``build`` ...); builds add
``build_log``. ``stdout`` and ``stderr`` are always text, as the seed's were:
output that is not valid UTF-8 (which runhost sends base64-encoded) is
decoded with U+FFFD replacement characters; the exact bytes are in
``stdout_bytes`` and ``stderr_bytes``, and runhost's response as it came in
``raw``.

Differences from the seed, on purpose:

* a timeout is ``timed_out=True`` with the exit code of the killed program
  (137), not ``returncode=-1``;
* a request the host refuses (unknown version, image not allowed, limit above
  the host's maximum ...) raises :class:`RunhostError` (a ``RuntimeError``)
  instead of coming back as ``returncode=-1``; a failing program, a failed
  install and a Dockerfile that does not build are results, as before;
* ``timeout`` defaults to ``None`` (the host's default, 10 s); the seed's
  300/600 s are above the host's default maximum of 60 s
  (``RUNHOST_MAX_TIMEOUT_MS``) and would be refused;
* runs have no network; dependencies are installed by the host
  (``requirements``) before the run;
* only one workspace session is mounted per run, at
  ``/workspaces/<session>``: ``working_dir`` must name a directory inside a
  session (see :meth:`DindExecutor.run_command`).
"""

from __future__ import annotations

import base64
import os
import posixpath
import threading
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from .client import RunhostClient, RunhostError

__all__ = ["DindExecutor", "RunhostError", "get_executor", "DEFAULT_URL"]

DEFAULT_URL = "http://127.0.0.1:8080"

# Where runs see the shared workspace (runhost mounts a session there).
CONTAINER_WORKSPACE = "/workspaces"


class DindExecutor:
    """The seed's executor, backed by a runhost host.

    :param docker_host, workspace_path, dind_workspace_path: kept for
        compatibility and informational only (runhost, not this process,
        talks to Docker). Read from ``DOCKER_HOST``, ``WORKSPACE_PATH`` and
        ``DIND_WORKSPACE_PATH`` like the seed; ``dind_enabled`` from
        ``DIND_ENABLED``. ``workspace_path`` and ``dind_workspace_path`` are
        also accepted as prefixes of ``context_path`` and ``working_dir``.
    :param base_url: the runhost host (default ``RUNHOST_URL``, else
        ``http://127.0.0.1:8080``).
    :param api_key: sent as a Bearer token (default ``RUNHOST_API_KEY``).
    :param client: an existing :class:`RunhostClient` (overrides both).

    Every run method also takes ``network``: hosts the run may reach through
    the host's egress proxy, within the key's grant. ``None`` (the default,
    as in the seed) leaves it to the key: its whole grant with
    ``egress-default``, else no network; ``[]`` asks for none.
    """

    def __init__(
        self,
        docker_host: Optional[str] = None,
        workspace_path: Optional[str] = None,
        dind_workspace_path: Optional[str] = None,
        *,
        base_url: Optional[str] = None,
        api_key: Optional[str] = None,
        client: Optional[RunhostClient] = None,
    ):
        self.docker_host = docker_host or os.getenv("DOCKER_HOST", "unix:///var/run/docker.sock")
        self.workspace_path = workspace_path or os.getenv("WORKSPACE_PATH", "/app/workspace")
        self.dind_workspace_path = dind_workspace_path or os.getenv("DIND_WORKSPACE_PATH", CONTAINER_WORKSPACE)
        self.dind_enabled = os.getenv("DIND_ENABLED", "false").lower() == "true"
        if client is None:
            client = RunhostClient(
                base_url or os.getenv("RUNHOST_URL") or DEFAULT_URL,
                api_key=api_key if api_key is not None else (os.getenv("RUNHOST_API_KEY") or None),
            )
        self.client = client

    def __repr__(self) -> str:
        return f"DindExecutor({self.client!r})"

    # -- the seed's methods ----------------------------------------------

    def is_available(self) -> bool:
        """True when the host's ``GET /readyz`` answers 200 (engine up, a
        runtime plugin healthy). Unlike the seed, ``DIND_ENABLED`` is not
        consulted."""
        return self.client.ready()

    def run_command(
        self,
        image: str,
        command: Union[str, Sequence[str]],
        working_dir: Optional[str] = None,
        env_vars: Optional[Mapping[str, str]] = None,
        timeout: Optional[float] = None,
        mount_workspace: bool = False,
        *,
        env: Optional[Mapping[str, str]] = None,
        stdin: Optional[str] = None,
        args: Optional[Sequence[str]] = None,
        memory_mb: Optional[int] = None,
        cpus: Optional[float] = None,
        network: Optional[Sequence[str]] = None,
    ) -> Dict[str, Any]:
        """Run ``command`` in ``image`` (runtime ``shell`` with ``image`` and
        ``command``). A string is a line for ``sh -c``, a list an argv. The
        image must be allowed by the host (``RUNHOST_ALLOWED_IMAGES``, by
        default the runtimes' own images such as ``runhost/node:20``),
        otherwise RunhostError 403 ``image_not_allowed``.

        ``working_dir`` and ``mount_workspace``: runhost mounts one session of
        the shared workspace, at ``/workspaces/<session>``. With
        ``mount_workspace=True``, ``working_dir`` must be
        ``/workspaces/<session>`` or a directory below it, which becomes the
        working directory (created if missing). Any other combination that
        names a directory (no session, a directory outside the workspace, a
        workspace directory without the mount) raises ``ValueError``, since
        runhost cannot honour it. ``env`` is an alias of the seed's
        ``env_vars``; ``timeout`` is in seconds.
        """
        if not image:
            raise ValueError("image is required")
        workspace = self._workspace_for(working_dir, mount_workspace)
        return self._run(
            "shell",
            image=image,
            command=_command(command),
            workspace=workspace,
            env=_merge_env(env_vars, env),
            timeout=timeout,
            stdin=stdin,
            args=args,
            memory_mb=memory_mb,
            cpus=cpus,
            network=network,
        )

    def run_python_code(
        self,
        code: str,
        python_version: str = "3.11",
        requirements: Optional[Sequence[str]] = None,
        timeout: Optional[float] = None,
        *,
        stdin: Optional[str] = None,
        args: Optional[Sequence[str]] = None,
        env: Optional[Mapping[str, str]] = None,
        memory_mb: Optional[int] = None,
        cpus: Optional[float] = None,
        network: Optional[Sequence[str]] = None,
    ) -> Dict[str, Any]:
        """Run Python ``code`` (runtime ``python``). ``python_version`` is a
        version the host serves (``3.11``, ``3.13``, or a prefix such as
        ``3``); ``requirements`` are pip requirement lines installed by the
        host before the run (cached). A failed install is a result with
        ``stage == "install"`` and a non-zero ``returncode``."""
        return self._run(
            "python",
            code=code,
            version=python_version or None,
            requirements=list(requirements) if requirements else None,
            timeout=timeout,
            stdin=stdin,
            args=args,
            env=env,
            memory_mb=memory_mb,
            cpus=cpus,
            network=network,
        )

    def run_shell_script(
        self,
        script: str,
        shell: str = "/bin/bash",
        timeout: Optional[float] = None,
        *,
        stdin: Optional[str] = None,
        args: Optional[Sequence[str]] = None,
        env: Optional[Mapping[str, str]] = None,
        working_dir: Optional[str] = None,
        mount_workspace: bool = False,
        memory_mb: Optional[int] = None,
        cpus: Optional[float] = None,
        network: Optional[Sequence[str]] = None,
    ) -> Dict[str, Any]:
        """Run a shell script (runtime ``shell``: bash 5.2 in Debian). With
        ``shell`` other than bash the script runs as ``[shell, "-c", script]``
        in the same image. ``working_dir``/``mount_workspace`` as in
        :meth:`run_command`."""
        workspace = self._workspace_for(working_dir, mount_workspace)
        shell = shell or "/bin/bash"
        if posixpath.basename(shell) == "bash" and workspace is None:
            return self._run("shell", code=script, timeout=timeout,
                             stdin=stdin, args=args, env=env, memory_mb=memory_mb, cpus=cpus, network=network)
        # As an argv, so that nothing is written into the workspace directory
        # (runhost writes a run's code files there, which would leave a
        # main.sh behind); $0 is the shell's name and $1... are args.
        return self._run("shell", command=[shell, "-c", script, posixpath.basename(shell)], args=args,
                         workspace=workspace, timeout=timeout, stdin=stdin, env=env,
                         memory_mb=memory_mb, cpus=cpus, network=network)

    def build_and_run(
        self,
        dockerfile_content: Optional[str],
        command: Optional[Union[str, Sequence[str]]] = None,
        context_path: Optional[str] = None,
        timeout: Optional[float] = None,
        *,
        files: Optional[Mapping[str, Union[str, bytes]]] = None,
        build_args: Optional[Mapping[str, str]] = None,
        stdin: Optional[str] = None,
        args: Optional[Sequence[str]] = None,
        env: Optional[Mapping[str, str]] = None,
        memory_mb: Optional[int] = None,
        cpus: Optional[float] = None,
        network: Optional[Sequence[str]] = None,
    ) -> Dict[str, Any]:
        """Build ``dockerfile_content`` and run the image (runtime
        ``dockerfile``). The build context is ``context_path``, a directory
        of the shared workspace written as ``"<session>/<sub/dir>"`` (as in
        the seed; ``/workspaces/...`` and the ``workspace_path`` prefix are
        accepted too), or ``files`` (path to content), or empty; with
        ``dockerfile_content`` None or empty, the context's own ``Dockerfile``
        is built (a given one wins, as ``docker build -f``). Builds have no
        network (unless the key has ``build-egress``: the package indexes)
        and the host reuses the image for the same Dockerfile and context. The run is what ``docker run`` does: the image's
        ``ENTRYPOINT``, then ``command`` (or else the image's ``CMD``), then
        ``args``. A Dockerfile that would have nothing to run and no
        ``command`` raises ``RunhostError`` 400 ``no_command`` before
        building. The result has
        ``build_log``; a Dockerfile that does not build is a result with
        ``stage == "build"`` and the error in ``stderr``. ``timeout`` (seconds)
        limits the run; the build has the host's own timeout."""
        if context_path is not None and files is not None:
            raise ValueError("give the build context as context_path or as files, not both")
        return self._run(
            "dockerfile",
            dockerfile=dockerfile_content or None,
            command=_command(command) if command else None,
            context_path=self._context_ref(context_path) if context_path is not None else None,
            files=dict(files) if files is not None else None,
            build_args=build_args,
            timeout=timeout,
            stdin=stdin,
            args=args,
            env=env,
            memory_mb=memory_mb,
            cpus=cpus,
            network=network,
        )

    # -- helpers -----------------------------------------------------------

    def _run(self, runtime: str, timeout: Optional[float] = None, **kw: Any) -> Dict[str, Any]:
        if timeout is not None:
            if timeout <= 0:
                raise ValueError("timeout must be positive seconds")
            kw["timeout_ms"] = int(round(timeout * 1000))
        return _result(self.client.run(runtime, **kw))

    def _prefixes(self) -> List[str]:
        out = [CONTAINER_WORKSPACE]
        for p in (self.dind_workspace_path, self.workspace_path):
            p = posixpath.normpath(p or "")
            if p.startswith("/") and p != "/" and p not in out:
                out.append(p)
        return out

    def _split_workspace(self, path: str, prefixes: List[str]) -> Optional[Tuple[str, str]]:
        """("session", "sub/dir") of an absolute path under a prefix; None
        when it is not under one; ("", "") when it is the prefix itself."""
        norm = posixpath.normpath(path)
        for prefix in prefixes:
            if norm == prefix:
                return "", ""
            if norm.startswith(prefix + "/"):
                rest = norm[len(prefix) + 1:]
                session, _, sub = rest.partition("/")
                return session, sub
        return None

    def _workspace_for(self, working_dir: Optional[str], mount_workspace: bool) -> Optional[str]:
        if not working_dir:
            if mount_workspace:
                raise ValueError(
                    "mount_workspace=True needs working_dir='/workspaces/<session>[/sub/dir]': "
                    "runhost mounts one session of the shared workspace, never all of /workspaces")
            return None
        if not working_dir.startswith("/"):
            raise ValueError(f"working_dir must be absolute, got {working_dir!r}")
        if posixpath.normpath(working_dir) != working_dir.rstrip("/") or "//" in working_dir:
            raise ValueError(f"working_dir {working_dir!r} is not a clean path")
        split = self._split_workspace(working_dir, [CONTAINER_WORKSPACE, posixpath.normpath(self.dind_workspace_path)])
        if split is None:
            raise ValueError(
                f"working_dir {working_dir!r} cannot be honoured: runhost runs in the image's own working "
                "directory, or in a workspace directory '/workspaces/<session>[/sub/dir]' with mount_workspace=True")
        session, sub = split
        if not session:
            raise ValueError(
                f"working_dir {working_dir!r} names the whole workspace; runhost mounts one session: "
                "use '/workspaces/<session>[/sub/dir]'")
        if not mount_workspace:
            raise ValueError(
                f"working_dir {working_dir!r} is in the shared workspace: pass mount_workspace=True "
                "(without the mount the directory would not exist in the container)")
        return session + ("/" + sub if sub else "")

    def _context_ref(self, context_path: str) -> str:
        if not context_path:
            raise ValueError("context_path is empty")
        if context_path.startswith("/"):
            split = self._split_workspace(context_path, self._prefixes())
            if split is None or not split[0]:
                raise ValueError(
                    f"context_path {context_path!r} is not a directory of a workspace session: "
                    "give '<session>/<sub/dir>' (or '/workspaces/<session>/<sub/dir>')")
            session, sub = split
            return session + ("/" + sub if sub else "")
        return context_path.rstrip("/")


def _command(command: Union[str, Sequence[str], None]) -> Union[str, List[str], None]:
    if command is None:
        return None
    if isinstance(command, str):
        if not command.strip():
            raise ValueError("command is empty")
        return command
    argv = [str(a) for a in command]
    if not argv:
        raise ValueError("command is empty")
    return argv


def _merge_env(env_vars: Optional[Mapping[str, str]], env: Optional[Mapping[str, str]]) -> Optional[Dict[str, str]]:
    if env_vars is None and env is None:
        return None
    out: Dict[str, str] = {}
    out.update(env_vars or {})
    out.update(env or {})
    return out


def _result(res: Dict[str, Any]) -> Dict[str, Any]:
    """runhost's response plus the seed's keys."""
    out = dict(res)
    out["raw"] = res
    stdout_bytes = _output_bytes(res.get("stdout", ""), res.get("stdout_encoding"))
    stderr_bytes = _output_bytes(res.get("stderr", ""), res.get("stderr_encoding"))
    exit_code = int(res.get("exit_code", -1))
    timed_out = bool(res.get("timed_out", False))
    oom_killed = bool(res.get("oom_killed", False))
    duration_ms = int(res.get("duration_ms", 0) or 0)
    out.update(
        stdout=stdout_bytes.decode("utf-8", errors="replace"),
        stderr=stderr_bytes.decode("utf-8", errors="replace"),
        stdout_bytes=stdout_bytes,
        stderr_bytes=stderr_bytes,
        exit_code=exit_code,
        returncode=exit_code,
        timed_out=timed_out,
        oom_killed=oom_killed,
        duration_ms=duration_ms,
        execution_time=duration_ms / 1000.0,
        success=exit_code == 0 and not timed_out and not oom_killed and res.get("stage", "run") == "run",
    )
    build = res.get("build")
    if isinstance(build, dict):
        out["build_log"] = build.get("log", "")
    return out


def _output_bytes(text: Any, encoding: Any) -> bytes:
    """A stream's exact bytes from runhost's text-or-base64 form."""
    if not isinstance(text, str):
        return b""
    if encoding == "base64":
        return base64.b64decode(text)
    return text.encode("utf-8")


_lock = threading.Lock()
_executor: Optional[DindExecutor] = None
_executor_key: Optional[Tuple[str, str]] = None


def get_executor() -> DindExecutor:
    """The process's executor (like the seed's singleton), for the host in
    ``RUNHOST_URL`` (default ``http://127.0.0.1:8080``) with the API key in
    ``RUNHOST_API_KEY``. A new one is made when those variables change."""
    global _executor, _executor_key
    key = (os.getenv("RUNHOST_URL") or DEFAULT_URL, os.getenv("RUNHOST_API_KEY") or "")
    with _lock:
        if _executor is None or _executor_key != key:
            _executor = DindExecutor(base_url=key[0], api_key=key[1] or None)
            _executor_key = key
        return _executor
