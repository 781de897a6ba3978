"""Tests of the runhost Python client against a real runhost host.

    RUNHOST_URL=http://127.0.0.1:8080 PYTHONPATH=clients/python \\
        python3 -m unittest discover -s clients/python/tests -v

The host needs workspaces (RUNHOST_WORKSPACE_ROOT) and must run the seed's
images (``python:3.11-slim``, ``node:20-alpine``: pulled by ``make images``
where a registry answers, or mapped with RUNHOST_IMAGE_ALIASES).
RUNHOST_TEST_HTTPS_URL: an HTTPS URL standing for the seed's
api.github.com. With it, the seed's Advanced Example runs as written and
must succeed, so the host must give what the seed's users have: a package
index serving ``requests`` and ``flask`` to installs and to builds, the
key granted ``egress=HOST egress-default build-egress`` (RUNHOST_CA_BUNDLE
trusting the URL's certificate), and RUNHOST_TEST_UNGRANTED_API_KEY, a key
without grants. Without it, the same examples check what a key without
grants gets: no network for the run, a build log saying the build had none.
RUNHOST_API_KEY is sent when set. ``go test -run TestPythonClient
./internal/e2e/`` sets all of this up with local servers.

Nothing is skipped: without RUNHOST_URL every test fails, saying so.
"""

import base64
import http.server
import os
import sys
import threading
import unittest
import urllib.parse
import uuid

from runhost import DindExecutor, RunhostClient, RunhostError, get_executor

URL = os.environ.get("RUNHOST_URL", "")
API_KEY = os.environ.get("RUNHOST_API_KEY") or None
HTTPS_URL = os.environ.get("RUNHOST_TEST_HTTPS_URL") or None
UNGRANTED_API_KEY = os.environ.get("RUNHOST_TEST_UNGRANTED_API_KEY") or None

# The seed's Advanced Example's Dockerfile, as written.
SEED_DOCKERFILE = '''
FROM python:3.11-slim
RUN pip install flask
COPY . /app
WORKDIR /app
CMD ["python", "app.py"]
    '''

# The app.py it runs: a Flask app that answers one request through Flask's
# test client and ends (app.run() would serve until the run's timeout).
SEED_APP = b'''from flask import Flask

app = Flask(__name__)


@app.route("/")
def hello():
    return "Hello from Flask"


if __name__ == "__main__":
    print(app.test_client().get("/").get_data(as_text=True))
'''


def https_target():
    """HTTPS_URL's host:port, as a result's network log names it."""
    u = urllib.parse.urlsplit(HTTPS_URL)
    return f"{u.hostname}:{u.port or 443}"


def setUpModule():
    if not URL:
        raise RuntimeError(
            "RUNHOST_URL is not set: these tests run against a real runhost host. "
            "Start one (`make run`, with RUNHOST_WORKSPACE_ROOT set) and run "
            "RUNHOST_URL=http://127.0.0.1:8080 PYTHONPATH=clients/python "
            "python3 -m unittest discover -s clients/python/tests -v")


def new_session(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


class _Base(unittest.TestCase):
    maxDiff = None

    def setUp(self):
        self.client = RunhostClient(URL, api_key=API_KEY)

    def claim_session(self, session):
        """Use a session with a fixed name (from the seed's examples) and
        remove it at the end only if this test created it."""
        try:
            self.client.list_files(session)
            existed = True
        except RunhostError as e:
            if e.status != 404:
                raise
            existed = False
        if not existed:
            self.addCleanup(self.client.delete_session, session)
        return session

    def assert_failed_install(self, executor, requirement):
        result = executor.run_python_code(code="print('ran')", requirements=[requirement], timeout=60)
        self.assertEqual(result["stage"], "install", result)
        self.assertNotEqual(result["exit_code"], 0, result)
        self.assertEqual(result["returncode"], result["exit_code"])
        self.assertFalse(result["success"])
        self.assertNotIn("ran", result["stdout"])
        self.assertIn("runhost-no-such-package", result["stderr"])



class SeedBasicExample(_Base):
    """The seed's Basic Example, with only the import changed."""

    def test_basic_example(self):
        from runhost import get_executor  # was: from app.utils.dind_executor import get_executor

        # Executorを取得
        executor = get_executor()

        # DinD利用可能か確認
        self.assertTrue(executor.is_available(), f"{URL}/readyz is not 200")
        if executor.is_available():
            # Pythonコード実行
            result = executor.run_python_code(
                code="print('Hello from DinD!')",
                python_version="3.11",
            )
            print(result['stdout'])  # Hello from DinD!

        self.assertEqual(result["stdout"], "Hello from DinD!\n", result)
        self.assertEqual(result["stderr"], "")
        self.assertEqual(result["exit_code"], 0)
        self.assertEqual(result["returncode"], 0)  # the seed's key
        self.assertTrue(result["success"])
        self.assertFalse(result["timed_out"])
        self.assertFalse(result["oom_killed"])
        self.assertIsInstance(result["duration_ms"], int)
        self.assertEqual(result["version"], "3.11")
        self.assertEqual(result["runtime"], "python")

    def test_get_executor_reads_the_environment(self):
        executor = get_executor()
        self.assertEqual(executor.client.base_url, URL.rstrip("/"))
        self.assertEqual(executor.client.api_key, API_KEY)
        self.assertIs(get_executor(), executor)
        for attr in ("docker_host", "workspace_path", "dind_workspace_path", "dind_enabled"):
            self.assertTrue(hasattr(executor, attr), attr)


class SeedAdvancedExample(_Base):
    """The seed's Advanced Example as written. Only what stands for the
    internet differs: the HTTPS URL (HTTPS_URL for api.github.com) and what
    the host maps the seed's image names to; `requests` and `flask` come
    from the host's package index. Without HTTPS_URL, what a key without
    grants gets (see the module's docstring)."""

    def setUp(self):
        super().setUp()
        self.executor = DindExecutor(base_url=URL, api_key=API_KEY)

    def test_run_python_code_with_requirements(self):
        # The seed's call has no network parameter: the key's grant is its
        # default (egress-default).
        url = HTTPS_URL or "https://api.example.invalid/"
        # 依存パッケージ付きで実行
        result = self.executor.run_python_code(
            code=f'''
import requests
response = requests.get("{url}")
print(f"Status: {{response.status_code}}")
    ''',
            requirements=["requests"],
            timeout=60,
        )
        if HTTPS_URL:
            self.assertEqual(result["stage"], "run", result)
            self.assertEqual(result["stdout"], "Status: 200\n", result)
            self.assertTrue(result["success"], result)
            self.assertIn("install", result)
            self.assertEqual(result["network"]["contacted"], [https_target()], result)
            print(f"install of requests: {result['install']}", file=sys.stderr)
        else:
            self.assertFalse(result["success"], result)
            self.assertNotIn("network", result)

    def test_run_command_in_the_workspace(self):
        self.claim_session("project")
        # カスタムイメージで実行
        result = self.executor.run_command(
            image="node:20-alpine",
            command="node --version && npm --version",
            working_dir="/workspaces/project",
            mount_workspace=True,
        )
        self.assertEqual(result["exit_code"], 0, result)
        self.assertEqual(result["image"], "node:20-alpine")  # the name asked for, whatever it maps to
        lines = result["stdout"].splitlines()
        self.assertEqual(len(lines), 2, result)
        self.assertTrue(lines[0].startswith("v20."), lines)
        self.assertRegex(lines[1], r"^\d+\.\d+\.\d+$")

    def test_build_and_run_from_a_workspace_context(self):
        session = self.claim_session("session-id")
        self.client.put_file(session, "my-app/app.py", SEED_APP)
        # Dockerfileからビルドして実行
        result = self.executor.build_and_run(
            dockerfile_content=SEED_DOCKERFILE,
            context_path="session-id/my-app",
        )
        self.assertIn("build_log", result)
        if not HTTPS_URL:
            self.assert_no_build_network(result)
            return
        self.assertEqual(result["stage"], "run", result)
        self.assertEqual(result["stdout"], "Hello from Flask\n", result)
        self.assertTrue(result["success"], result)
        if not result["build"]["cached"]:  # a reused image has no new log
            self.assertIn("RUN pip install flask", result["build_log"])
            self.assertRegex(result["build_log"], r"Successfully installed .*flask-", result["build_log"])
        self.assertTrue(result["build"]["image"].startswith("runhost/build:"), result["build"])
        build = {k: result["build"][k] for k in ("cached", "duration_ms")}
        print(f"build with pip install flask: {build}", file=sys.stderr)

    def test_build_without_build_egress_says_the_network_is_not_granted(self):
        if HTTPS_URL and not UNGRANTED_API_KEY:
            self.fail("RUNHOST_TEST_HTTPS_URL needs RUNHOST_TEST_UNGRANTED_API_KEY, a key without grants")
        executor = DindExecutor(base_url=URL, api_key=UNGRANTED_API_KEY or API_KEY)
        # The same Dockerfile, its context sent as files (the workspace
        # session-id belongs to the other key).
        result = executor.build_and_run(dockerfile_content=SEED_DOCKERFILE, files={"app.py": SEED_APP})
        self.assert_no_build_network(result)

    def assert_no_build_network(self, result):
        self.assertEqual(result["stage"], "build", result)
        self.assertFalse(result["success"], result)
        self.assertIn("RUN pip install flask", result["build_log"])
        # pip ran and reached no index ...
        self.assertIn("Could not find a version that satisfies the requirement flask", result["build_log"])
        # ... and the log says why.
        self.assertIn("this build had no network", result["build_log"])
        self.assertIn("build-egress", result["build_log"])  # the grant that gives one


class Executor(_Base):
    def setUp(self):
        super().setUp()
        self.executor = DindExecutor(base_url=URL, api_key=API_KEY)

    def test_failed_install_is_a_result(self):
        self.assert_failed_install(self.executor, "runhost-no-such-package==1.0")

    def test_timeout_is_a_result(self):
        result = self.executor.run_python_code("import time\nprint('start', flush=True)\ntime.sleep(30)", timeout=1)
        self.assertTrue(result["timed_out"], result)
        self.assertFalse(result["success"])
        self.assertNotEqual(result["returncode"], 0)
        self.assertEqual(result["stdout"], "start\n")
        self.assertLess(result["duration_ms"], 10000)

    def test_failing_program_is_a_result(self):
        result = self.executor.run_python_code("import sys\nprint('out')\nsys.exit('boom')")
        self.assertEqual(result["exit_code"], 1)
        self.assertEqual(result["returncode"], 1)
        self.assertFalse(result["success"])
        self.assertEqual(result["stdout"], "out\n")
        self.assertIn("boom", result["stderr"])

    def test_output_that_is_not_utf8_is_text(self):
        # The seed returned text; runhost carries such bytes base64-encoded.
        result = self.executor.run_shell_script("printf 'ok \\377\\n'; printf 'e\\376' >&2")
        self.assertEqual(result["stdout"], "ok \ufffd\n", result)
        self.assertEqual(result["stderr"], "e\ufffd", result)
        self.assertEqual(result["stdout_bytes"], b"ok \xff\n")
        self.assertEqual(result["stderr_bytes"], b"e\xfe")
        self.assertEqual(result["raw"]["stdout_encoding"], "base64")
        self.assertTrue(result["success"])
        plain = self.executor.run_python_code("print('héllo')")
        self.assertEqual((plain["stdout"], plain["stdout_bytes"]), ("héllo\n", "héllo\n".encode()))

    def test_run_shell_script(self):
        result = self.executor.run_shell_script('echo "bash ${BASH_VERSINFO[0]}"; echo err >&2; exit 3', timeout=30)
        self.assertEqual((result["stdout"], result["stderr"], result["returncode"]), ("bash 5\n", "err\n", 3), result)
        result = self.executor.run_shell_script("echo $0 $1; cat", shell="/bin/sh", args=["one"], stdin="in")
        self.assertEqual(result["stdout"], "sh one\nin", result)

    def test_run_command_argv_env_and_working_dir(self):
        session = new_session("pyexec")
        self.addCleanup(self.client.delete_session, session)
        self.client.put_file(session, "sub/data.txt", b"shared")
        result = self.executor.run_command(
            image="runhost/python:3.11",
            command=["python3", "-c", "import os; print(os.getcwd(), os.environ['GREETING'], open('data.txt').read())"],
            working_dir=f"/workspaces/{session}/sub",
            env_vars={"GREETING": "hi"},
            mount_workspace=True,
        )
        self.assertEqual(result["stdout"], f"/workspaces/{session}/sub hi shared\n", result)
        # A run's output is visible through the files API.
        result = self.executor.run_shell_script("echo made > out.txt; ls", working_dir=f"/workspaces/{session}/sub",
                                                mount_workspace=True)
        self.assertEqual(result["stdout"], "data.txt\nout.txt\n", result)
        self.assertEqual(self.client.get_file(session, "sub/out.txt"), b"made\n")

    def test_run_command_image_not_allowed(self):
        with self.assertRaises(RunhostError) as cm:
            self.executor.run_command(image="alpine:3", command="id")
        self.assertEqual((cm.exception.status, cm.exception.code), (403, "image_not_allowed"))
        self.assertIsInstance(cm.exception, RuntimeError)  # the seed raised RuntimeError

    def test_working_dir_that_cannot_be_honoured(self):
        cases = [
            dict(working_dir="/app", mount_workspace=True),
            dict(working_dir="/app", mount_workspace=False),
            dict(working_dir=None, mount_workspace=True),
            dict(working_dir="/workspaces", mount_workspace=True),
            dict(working_dir="/workspaces/s/sub", mount_workspace=False),
            dict(working_dir="/workspaces/s/../../etc", mount_workspace=True),
            dict(working_dir="relative/dir", mount_workspace=True),
        ]
        for kw in cases:
            with self.subTest(**kw), self.assertRaises(ValueError):
                self.executor.run_command(image="runhost/shell:bookworm", command="pwd", **kw)

    def test_unknown_python_version(self):
        with self.assertRaises(RunhostError) as cm:
            self.executor.run_python_code("print(1)", python_version="2.7")
        self.assertEqual((cm.exception.status, cm.exception.code), (404, "unknown_version"))
        self.assertIn("3.11", cm.exception.message)

    def test_build_failure_is_a_result(self):
        result = self.executor.build_and_run("FROM runhost/shell:bookworm\nRUN echo building && exit 3\nCMD [\"true\"]\n")
        self.assertEqual(result["stage"], "build", result)
        self.assertNotEqual(result["returncode"], 0)
        self.assertFalse(result["success"])
        self.assertIn("building", result["build_log"])

    def test_build_and_run_with_the_contexts_own_dockerfile(self):
        session = self.claim_session("own-dockerfile")
        self.client.put_file(session, "app/Dockerfile", b'FROM runhost/shell:bookworm\nENTRYPOINT ["echo", "ep"]\nCMD ["c"]\n')
        result = self.executor.build_and_run(None, context_path=session + "/app")
        self.assertEqual(result["stdout"], "ep c\n", result)
        # command replaces CMD, the ENTRYPOINT stays, args follow (docker run)
        result = self.executor.build_and_run(None, command=["x"], args=["a"], context_path=session + "/app")
        self.assertEqual(result["stdout"], "ep x a\n", result)

    def test_build_without_a_command_is_refused_before_building(self):
        with self.assertRaises(RunhostError) as cm:
            self.executor.build_and_run("FROM runhost/shell:bookworm\nRUN sleep 3\n")
        self.assertEqual((cm.exception.status, cm.exception.code), (400, "no_command"))

    def test_build_and_run_with_files_and_command(self):
        result = self.executor.build_and_run(
            "FROM runhost/python:3.11\nCOPY hello.txt /data/\n",
            command=["cat", "/data/hello.txt"],
            files={"hello.txt": b"from files\n"},
        )
        self.assertEqual(result["stdout"], "from files\n", result)

    def test_unavailable_host(self):
        executor = DindExecutor(base_url="http://127.0.0.1:9")
        self.assertFalse(executor.is_available())
        with self.assertRaises(RunhostError) as cm:
            executor.run_python_code("print(1)")
        self.assertEqual((cm.exception.status, cm.exception.code), (0, "unreachable"))


class Client(_Base):
    def test_runtimes_and_ready(self):
        self.assertTrue(self.client.ready())
        self.assertTrue(self.client.healthy())
        names = {rt["name"] for rt in self.client.runtimes()}
        self.assertTrue({"python", "shell", "dockerfile"} <= names, names)
        self.assertEqual(self.client.runtime("py")["name"], "python")

    def test_stdin_and_args(self):
        res = self.client.run("shell", code='echo "$1|$2"; cat', args=["hi", "two words"], stdin="from stdin")
        self.assertEqual(res["stdout"], "hi|two words\nfrom stdin", res)
        self.assertEqual(res["stage"], "run")
        res = self.client.run("python", code="import sys; print(sys.argv[1:], sys.stdin.read())",
                              args=["a"], stdin="x\ny", version="3")
        self.assertEqual(res["stdout"], "['a'] x\ny\n", res)

    def test_files_env_and_limits(self):
        res = self.client.run(
            "python",
            files={"main.py": "import helper, os\nprint(helper.X, os.environ['K'], open('blob.bin','rb').read())",
                   "helper.py": "X = 42\n",
                   "blob.bin": b"\x00\xff"},
            env={"K": "v"}, timeout_ms=20000, memory_mb=128, cpus=0.5,
        )
        self.assertEqual(res["stdout"], "42 v b'\\x00\\xff'\n", res)

    def test_command_forms(self):
        res = self.client.run("shell", image="runhost/python:3.13", command=["python3", "-c", "import sys; print(sys.argv[1:])"],
                              args=["a"])
        self.assertEqual(res["stdout"], "['a']\n", res)
        res = self.client.run("shell", command="echo $1", args=["line"])
        self.assertEqual(res["stdout"], "line\n", res)

    def test_error_mapping(self):
        with self.assertRaises(RunhostError) as cm:
            self.client.run("no-such-runtime", code="1")
        e = cm.exception
        self.assertEqual((e.status, e.code), (404, "unknown_runtime"))
        self.assertIn("python", e.message)  # the message lists what exists
        with self.assertRaises(RunhostError) as cm:
            self.client.run("python")
        self.assertEqual((cm.exception.status, cm.exception.code), (400, "no_code"))
        with self.assertRaises(RunhostError) as cm:
            self.client.run("python", code="1", timeout_ms=10**9)
        self.assertEqual((cm.exception.status, cm.exception.code), (400, "limit_exceeded"))
        with self.assertRaises(RunhostError) as cm:
            self.client.runtime("nope")
        self.assertEqual((cm.exception.status, cm.exception.code), (404, "unknown_runtime"))

    def test_network_parameter(self):
        code = "import sys, urllib.request\ntry:\n    print(urllib.request.urlopen(sys.argv[1], timeout=15).status)\nexcept Exception as e:\n    print('failed', type(e).__name__)"
        url = HTTPS_URL or "https://api.example.invalid/"
        # None asked, whatever the key's default.
        res = self.client.run("python", code=code, args=[url], network=[])
        self.assertTrue(res["stdout"].startswith("failed"), res)
        self.assertNotIn("network", res)
        executor = DindExecutor(client=self.client)
        if HTTPS_URL:
            host = urllib.parse.urlsplit(HTTPS_URL).hostname
            res = executor.run_python_code(code=code.replace("sys.argv[1]", repr(url)), network=[host])
            self.assertEqual(res["stdout"], "200\n", res)
            self.assertEqual(res["network"], {"contacted": [https_target()], "refused": []}, res)
            session = self.client.create_session("python", network=[host])
            try:
                res = self.client.run_in_session(session["id"], code=code, args=[url])
                self.assertEqual(res["stdout"], "200\n", res)
            finally:
                self.client.end_session(session["id"])
        else:
            with self.assertRaises(RunhostError) as cm:
                executor.run_python_code(code="1", network=["api.example.org"])
            self.assertEqual((cm.exception.status, cm.exception.code), (403, "network_not_allowed"))
        with self.assertRaises(RunhostError) as cm:
            self.client.run("python", code="1", network=["169.254.169.254"])
        self.assertEqual((cm.exception.status, cm.exception.code), (400, "invalid_network"))

    def test_timeout_flag(self):
        res = self.client.run("shell", code="echo before; sleep 20; echo after", timeout_ms=1000)
        self.assertTrue(res["timed_out"], res)
        self.assertEqual(res["stdout"], "before\n")
        self.assertNotEqual(res["exit_code"], 0)

    def test_api_key_is_a_header_never_in_the_url(self):
        seen = []

        class Stub(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                seen.append((self.path, self.headers.get("Authorization")))
                body = b"[]"
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        srv = http.server.HTTPServer(("127.0.0.1", 0), Stub)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        self.addCleanup(srv.server_close)
        self.addCleanup(srv.shutdown)
        client = RunhostClient(f"http://127.0.0.1:{srv.server_port}", api_key="test-key")
        self.assertEqual(client.runtimes(), [])
        self.assertEqual(seen, [("/runtimes", "Bearer test-key")])
        self.assertNotIn("test-key", repr(client))
        self.assertEqual(RunhostClient(f"http://127.0.0.1:{srv.server_port}").runtimes(), [])
        self.assertEqual(seen[-1], ("/runtimes", None))
        with self.assertRaises(ValueError):
            RunhostClient("http://user:secret@127.0.0.1:8080")
        with self.assertRaises(ValueError):
            RunhostClient("http://127.0.0.1:8080/?api_key=secret")

    def test_api_keys_on_the_host(self):
        if not API_KEY:
            # A host without keys serves anyone, with or without a header.
            self.assertTrue(RunhostClient(URL, api_key="any-key").runtimes())
            return
        for key in (None, "rh_wrong"):
            with self.subTest(key=key), self.assertRaises(RunhostError) as cm:
                RunhostClient(URL, api_key=key).run("python", code="print(1)")
            self.assertEqual((cm.exception.status, cm.exception.code), (401, "unauthorized"))
        # The probes need no key.
        self.assertTrue(RunhostClient(URL).ready())
        self.assertEqual(self.client.run("python", code="print(1)")["stdout"], "1\n")

    def test_files_api_round_trip(self):
        session = new_session("pyfiles")
        self.addCleanup(self.client.delete_session, session)
        blob = bytes(range(256)) * 3
        name = "dir/sub dir/naïve #1?.bin"
        put = self.client.put_file(session, name, blob)
        self.assertEqual(put["size"], len(blob), put)
        self.assertEqual(put["path"], name, put)
        self.assertEqual(self.client.get_file(session, name), blob)
        self.client.put_file(session, "top.txt", "text")
        listing = {(f["path"], f["type"]) for f in self.client.list_files(session)}
        self.assertEqual(listing, {("dir", "dir"), ("dir/sub dir", "dir"), (name, "file"), ("top.txt", "file")})
        sizes = {f["path"]: f["size"] for f in self.client.list_files(session)}
        self.assertEqual(sizes[name], len(blob))

        # A run in the session sees the uploads.
        res = self.client.run("shell", code='cat "sub dir/naïve #1?.bin" | wc -c', workspace=f"{session}/dir")
        self.assertEqual(res["stdout"].strip(), str(len(blob)), res)

        self.client.delete_file(session, name)
        with self.assertRaises(RunhostError) as cm:
            self.client.get_file(session, name)
        self.assertEqual((cm.exception.status, cm.exception.code), (404, "not_found"))
        with self.assertRaises(RunhostError) as cm:
            self.client.get_file(session, "../../etc/passwd")
        self.assertEqual((cm.exception.status, cm.exception.code), (400, "unsafe_path"))
        with self.assertRaises(RunhostError) as cm:
            self.client.put_file("../x", "a", b"x")
        self.assertEqual((cm.exception.status, cm.exception.code), (400, "invalid_session"))

        self.client.delete_session(session)
        with self.assertRaises(RunhostError) as cm:
            self.client.list_files(session)
        self.assertEqual(cm.exception.status, 404)
        self.client.delete_session(session)  # deleting again is fine

    def test_list_a_directory_and_workspaces(self):
        session = new_session("pylist")
        self.addCleanup(self.client.delete_session, session)
        self.client.put_file(session, "a/b.txt", "b")
        self.client.put_file(session, "c.txt", "c")
        self.assertEqual([f["path"] for f in self.client.list_files(session, "a")], ["a/b.txt"])
        self.assertIn(session, [w["name"] for w in self.client.workspaces()])

    def test_streaming(self):
        out, err = [], []
        res = self.client.stream("python", code="import sys, time\nprint('one', flush=True)\ntime.sleep(0.3)\nprint('two', flush=True)\nprint('e', file=sys.stderr)",
                                 on_stdout=out.append, on_stderr=err.append)
        self.assertEqual("".join(out), "one\ntwo\n")
        self.assertEqual("".join(err), "e\n")
        self.assertEqual((res["exit_code"], res["stdout"]), (0, "one\ntwo\n"), res)
        self.assertGreaterEqual(len(out), 2, "the output arrived in one piece, not as it was written")

    def test_sessions(self):
        s = self.client.create_session("python")
        self.assertIn(s["id"], [x["id"] for x in self.client.sessions()])
        self.client.run_in_session(s["id"], code="open('/tmp/kept', 'w').write('yes')")
        res = self.client.run_in_session(s["id"], code="print(open('/tmp/kept').read())")
        self.assertEqual(res["stdout"], "yes\n", res)
        out = []
        res = self.client.run_in_session(s["id"], code="print('streamed')", on_stdout=out.append)
        self.assertEqual(("".join(out), res["exit_code"]), ("streamed\n", 0), res)
        self.assertEqual(self.client.session(s["id"])["runs"], 3)
        self.client.end_session(s["id"])
        with self.assertRaises(RunhostError) as cm:
            self.client.session(s["id"])
        self.assertEqual((cm.exception.status, cm.exception.code), (404, "session_not_found"))


if __name__ == "__main__":
    unittest.main()


class InterpreterSession(_Base):
    """runhost.Interpreter: cells in one resident interpreter."""

    def test_state_results_errors_and_streaming(self):
        with self.client.interpreter("python", version="3.11") as py:
            self.assertEqual(py.info["mode"], "interpreter")
            first = py.run_code("x = 41")
            self.assertEqual(first.results, [])
            self.assertIsNone(first.text)
            ex = py.run_code("print('hi')\nx + 1")
            self.assertEqual(ex.text, "42")
            self.assertEqual(ex.logs.stdout, ["hi\n"])
            self.assertIsNone(ex.error)

            err = py.run_code("1 / 0")
            self.assertIsNotNone(err.error)
            self.assertEqual(err.error.name, "ZeroDivisionError")
            self.assertTrue(any("1 / 0" in line for line in err.error.traceback), err.error.traceback)
            self.assertEqual(py.run_code("x").text, "41")

            seen = []
            png = base64.b64encode(b"\x89PNG\r\n\x1a\nnot really").decode()
            streamed = py.run_code(
                "print('a')\ndisplay({'text/plain': 'chart', 'image/png': %r}, raw=True)\nx" % png,
                on_stdout=lambda s: seen.append(("stdout", s)),
                on_result=lambda r: seen.append(("result", r.get("text/plain"))))
            # print() may write "a" and "\n" apart: consecutive chunks are one here.
            merged = []
            for kind, v in seen:
                if merged and kind == "stdout" and merged[-1][0] == "stdout":
                    merged[-1] = ("stdout", merged[-1][1] + v)
                else:
                    merged.append((kind, v))
            self.assertEqual(merged, [("stdout", "a\n"), ("result", "chart"), ("result", "41")])
            self.assertEqual(streamed.text, "41")
            self.assertEqual(streamed.png(0), b"\x89PNG\r\n\x1a\nnot really")
            self.assertEqual("".join(streamed.logs.stdout), "a\n")

            slow = py.run_code("import time\nwhile True: time.sleep(0.05)", timeout_ms=1000)
            self.assertTrue(slow.timed_out)
            self.assertFalse(slow.restarted)
            self.assertEqual(py.run_code("x").text, "41")
        with self.assertRaises(RunhostError) as cm:
            self.client.session(py.id)
        self.assertEqual(cm.exception.code, "session_not_found")

    def test_runtime_without_an_interpreter(self):
        with self.assertRaises(RunhostError) as cm:
            self.client.interpreter("bash")
        self.assertEqual((cm.exception.status, cm.exception.code), (400, "interpreter_unsupported"))
