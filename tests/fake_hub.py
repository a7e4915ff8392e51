"""A small Hugging Face Hub on 127.0.0.1 for the upload tests: the endpoints `HfApi.whoami`, `create_repo`,
`auth_check(write=True)` and `upload_folder` use (preupload, then one commit with every file inline), with a token,
a namespace, repos the token may not write, and a status to answer the commit with. It records every request and the
files of each commit. Point `huggingface_hub.constants.ENDPOINT` (read when an `HfApi` is made) or `HF_ENDPOINT` (a
fresh process) at `FakeHub.endpoint`."""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

import pytest


class FakeHub:
    def __init__(self, token: str = "hf_good", user: str = "someone", read_only: tuple[str, ...] = ()):
        self.token, self.user, self.read_only = token, user, set(read_only)
        self.commit_status: int | None = None  # answer commits with this HTTP status instead of accepting them
        self.requests: list[tuple[str, str]] = []  # (method, path)
        self.repos: set[str] = set()
        self.commits: dict[str, list[dict[str, bytes]]] = {}  # repo id -> the files of each commit
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FakeHub:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop answering: later requests meet a closed port, as when the network is gone."""
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()

    def uploaded(self, repo_id: str) -> dict[str, bytes]:
        """The files of the repo's last commit."""
        return self.commits[repo_id][-1]

    def _handler(self):
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                self._route("GET")

            def do_POST(self):
                self._route("POST")

            def _reply(self, status: int, payload: dict | None = None) -> None:
                body = json.dumps(payload if payload is not None else {"error": f"status {status}"}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _route(self, method: str) -> None:
                path = unquote(self.path.split("?")[0])
                if path != "/api/agent-harnesses":  # huggingface_hub's user-agent registry, fetched once a day
                    hub.requests.append((method, path))
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get("Authorization") != f"Bearer {hub.token}":
                    return self._reply(401, {"error": "Invalid credentials in Authorization header"})
                parts = path.strip("/").split("/")
                if path == "/api/validate-yaml":  # the model card's metadata, checked before a README.md is committed
                    return self._reply(200, {})
                if path == "/api/whoami-v2":
                    return self._reply(200, {"type": "user", "name": hub.user})
                if path == "/api/repos/create":
                    payload = json.loads(body)
                    repo_id = f"{payload.get('organization') or hub.user}/{payload['name']}"
                    if repo_id.split("/")[0] != hub.user and repo_id not in hub.read_only:
                        return self._reply(403, {"error": "no rights to create a model in this namespace"})
                    status = 409 if repo_id in hub.repos or repo_id in hub.read_only else 200
                    hub.repos.add(repo_id)
                    return self._reply(status, {"url": f"{hub.endpoint}/{repo_id}", "name": repo_id})
                if parts[:2] == ["api", "models"] and len(parts) >= 5:
                    repo_id, action = "/".join(parts[2:4]), parts[4]
                    if action == "auth-check":
                        writable = repo_id in hub.repos and repo_id not in hub.read_only
                        return self._reply(200 if writable else 403, {"error": "no write access"})
                    if action == "preupload":
                        files = json.loads(body)["files"]
                        return self._reply(
                            200,
                            {
                                "files": [
                                    {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files
                                ]
                            },
                        )
                    if action == "commit":
                        if hub.commit_status is not None:
                            return self._reply(hub.commit_status)
                        files = {}
                        for line in body.decode().splitlines():
                            entry = json.loads(line)
                            if entry["key"] == "file":
                                files[entry["value"]["path"]] = base64.b64decode(entry["value"]["content"])
                        hub.commits.setdefault(repo_id, []).append(files)
                        return self._reply(
                            200,
                            {
                                "commitUrl": f"{hub.endpoint}/{repo_id}/commit/1",
                                "commitOid": "1" * 40,
                                "success": True,
                            },
                        )
                return self._reply(404, {"error": f"no route {method} {path}"})

        return Handler


@pytest.fixture
def hub(monkeypatch):
    """A fake Hub on 127.0.0.1 that every new `HfApi` talks to, with its token as the logged-in one (HF_TOKEN), and
    one repo, "someone-else/shared", that the token may not write."""
    with FakeHub(token="hf_good", user="someone", read_only=("someone-else/shared",)) as fake:
        monkeypatch.setattr("huggingface_hub.constants.ENDPOINT", fake.endpoint)
        monkeypatch.setenv("HF_TOKEN", "hf_good")
        yield fake
