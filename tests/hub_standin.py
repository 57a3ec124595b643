"""A stand-in for the Hugging Face hub's HTTP API on localhost, enough for `HfApi.create_repo`, `create_branch`
and `create_commit` with regular (non-LFS) files: it keeps what each commit sent, so a test can read what an
upload through the real client put on the "hub". Not a hub: no auth, no LFS or Xet, no history.
"""

from __future__ import annotations

import base64
import gzip
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import yaml


class Hub:
    def __init__(self):
        self.repos: dict[str, dict] = {}  # repo id -> {"private": bool, "branches": {name: {path: bytes}}}
        self.requests: list[tuple[str, str]] = []
        self.token = None  # the last Authorization header's token
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> Hub:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self):
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _reply(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get("Content-Encoding") == "gzip":
                    raw = gzip.decompress(raw)
                hub.requests.append(("POST", self.path))
                hub.token = (self.headers.get("Authorization") or "").removeprefix("Bearer ") or None
                parts = self.path.split("?")[0].strip("/").split("/")
                if parts[:3] == ["api", "repos", "create"]:
                    body = json.loads(raw)
                    repo = f"{body['organization']}/{body['name']}" if body.get("organization") else body["name"]
                    private = body.get("visibility") == "private" or bool(body.get("private"))
                    hub.repos.setdefault(repo, {"private": private, "branches": {"main": {}}})
                    return self._reply(200, {"url": f"{hub.url}/{repo}"})
                if parts[:2] == ["api", "validate-yaml"]:
                    yaml.safe_load(json.loads(raw)["content"].split("---")[1])  # the header parses
                    return self._reply(200, {})
                if parts[:2] == ["api", "models"] and len(parts) >= 6:
                    repo, action, rev = f"{parts[2]}/{parts[3]}", parts[4], "/".join(parts[5:])
                    branches = hub.repos[repo]["branches"]
                    if action == "branch":
                        branches.setdefault(rev, dict(branches["main"]))
                        return self._reply(200, {})
                    if action == "preupload":
                        files = json.loads(raw)["files"]
                        mode = [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]
                        return self._reply(200, {"files": mode})
                    if action == "commit":
                        tree = branches[rev]
                        for line in raw.decode().splitlines():
                            op = json.loads(line)
                            if op["key"] == "file":
                                tree[op["value"]["path"]] = base64.b64decode(op["value"]["content"])
                        oid = f"{len(hub.requests):040x}"
                        return self._reply(200, {"commitUrl": f"{hub.url}/{repo}/commit/{oid}", "commitOid": oid})
                return self._reply(404, {"error": f"not stood in for: POST {self.path}"})

        return Handler
