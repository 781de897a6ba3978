"""runhost: a standard-library Python client for the runhost HTTP API.

* :class:`RunhostClient` — every route of the API (runs, runtimes, the
  workspace files API, readiness).
* :class:`DindExecutor` / :func:`get_executor` — the seed's
  ``app.utils.dind_executor`` facade (``is_available``, ``run_command``,
  ``run_python_code``, ``run_shell_script``, ``build_and_run``), so switching
  backends is ``from runhost import get_executor``.
* :class:`Interpreter` — an interpreter session: ``run_code(code)`` returns
  an :class:`Execution` (``results``, ``text``, ``error``, ``logs``).
* :class:`RunhostError` — an error answer of the API (status, code, message).
"""

from .client import RunhostClient, RunhostError
from .executor import DEFAULT_URL, DindExecutor, get_executor
from .interpreter import Execution, ExecutionError, Interpreter, Logs

__all__ = ["RunhostClient", "RunhostError", "Interpreter", "Execution", "ExecutionError", "Logs", "DindExecutor", "get_executor", "DEFAULT_URL", "__version__"]

__version__ = "0.1.0"
