"""A local Hugging Face Hub endpoint for upload tests (a test double of the Hub's HTTP API).

Speaks the part of the Hub API that ``datasets.Dataset.push_to_hub`` and
``HfApi.upload_file`` call (huggingface_hub 2.x): create a repo, repo info, tree / paths-info
listings, the dataset card's YAML check, preupload (parquet / large files answered "lfs", the
rest "regular"), the Git LFS batch API with basic PUT upload and verify, commit (NDJSON: inline
base64 files, LFS pointers, deletions) and file downloads (``resolve``). Files are kept per
repo in memory; every request is logged. Point ``HF_ENDPOINT`` at ``base_url`` in a fresh
process (huggingface_hub reads it at import) and set ``HF_HUB_DISABLE_XET=1``: the Xet
storage protocol that huggingface_hub prefers when ``hf_xet`` is installed is not spoken here.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import unquote, urlsplit


@dataclass
class HubRequest:
    method: str
    path: str
    authorization: str | None


@dataclass
class HubRepo:
    repo_id: str
    private: bool
    files: dict[str, bytes] = field(default_factory=dict)
    commits: list[str] = field(default_factory=list)  # commit summaries, oldest first

    @property
    def sha(self) -> str:
        return hashlib.sha1(repr(sorted(self.files)).encode() + str(len(self.commits)).encode()
                            ).hexdigest()


_REPO = r"(?P<repo>[^/]+/[^/]+)"
_REV = r"(?P<rev>[^/]+)"


class LocalHub:
    def __init__(self, token: str | None = None) -> None:
        #: When set, API calls without ``Authorization: Bearer <token>`` get 401, like the Hub.
        self.token = token
        self.repos: dict[str, HubRepo] = {}
        self.blobs: dict[str, bytes] = {}  # LFS objects by sha256
        self.log: list[HubRequest] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> Self:
        self._thread.start()
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the API ---------------------------------------------------------------------------

    def _route(self, method: str, path: str, body: bytes, query: str = "",
               authorization: str | None = None) -> tuple[int, Any, dict[str, str]]:
        # The LFS upload URL stands for a storage host: it is reached without the token.
        if self.token and not path.startswith("/lfs-upload/") \
                and authorization != f"Bearer {self.token}":
            return 401, {"error": "Invalid credentials in Authorization header"}, {}
        if method == "GET" and path == "/api/whoami-v2":
            return 200, {"type": "user", "name": "local-tester", "auth": {}}, {}
        m = re.fullmatch(rf"/datasets/{_REPO}\.git/info/lfs/objects/batch", path)
        if m and method == "POST":
            return (*self._lfs_batch(json.loads(body)), {})
        m = re.fullmatch(r"/lfs-upload/(?P<oid>[0-9a-f]{64})", path)
        if m and method == "PUT":
            if hashlib.sha256(body).hexdigest() != m["oid"]:
                return 400, {"error": "sha256 does not match the object id"}, {}
            with self._lock:
                self.blobs[m["oid"]] = body
            return 200, {}, {}
        if method == "POST" and path == "/lfs-verify":
            oid = json.loads(body)["oid"]
            return (200, {}, {}) if oid in self.blobs else (404, {"error": "not uploaded"}, {})
        if method == "POST" and path == "/api/validate-yaml":  # dataset card metadata check
            return 200, {"errors": [], "warnings": []}, {}
        if method == "POST" and path == "/api/repos/create":
            args = json.loads(body or b"{}")
            repo_id = f"{args['organization']}/{args['name']}" if args.get("organization") \
                else args["name"]
            if "/" not in repo_id:
                repo_id = f"local-tester/{repo_id}"
            with self._lock:
                private = bool(args.get("private")) or args.get("visibility") == "private"
                self.repos.setdefault(repo_id, HubRepo(repo_id, private))
            return 200, {"url": f"{self.base_url}/datasets/{repo_id}", "name": repo_id}, {}
        m = re.fullmatch(rf"/api/datasets/{_REPO}(?:/revision/{_REV})?", path)
        if m and method == "GET":
            repo = self.repos.get(m["repo"])
            if repo is None:
                return 404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"}
            return 200, {"id": repo.repo_id, "sha": repo.sha, "private": repo.private,
                         "siblings": [{"rfilename": p} for p in sorted(repo.files)]}, {}
        m = re.fullmatch(rf"/api/datasets/{_REPO}/(?P<op>preupload|commit|paths-info|tree)/"
                         rf"{_REV}(?P<rest>/.*)?", path)
        if m:
            repo = self.repos.get(m["repo"])
            if repo is None:
                return 404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"}
            return self._repo_op(repo, m["op"], (m["rest"] or "").strip("/"), body,
                                 "recursive=true" in query.lower() or "recursive=1" in query)
        m = re.fullmatch(rf"/datasets/{_REPO}/resolve/{_REV}/(?P<file>.+)", path)
        if m and method in ("GET", "HEAD"):
            repo = self.repos.get(m["repo"])
            data = repo.files.get(m["file"]) if repo else None
            if data is None:
                return 404, {"error": "Entry not found"}, {"X-Error-Code": "EntryNotFound"}
            return 200, data, {"X-Repo-Commit": repo.sha, "ETag": f'"{_oid(data)}"'}
        return 404, {"error": f"no route {method} {path}"}, {}

    def _repo_op(self, repo: HubRepo, op: str, rest: str, body: bytes, recursive: bool = False
                 ) -> tuple[int, Any, dict[str, str]]:
        if op == "preupload":
            files = json.loads(body)["files"]
            return 200, {"files": [{"path": f["path"], "uploadMode": _upload_mode(f),
                                    "shouldIgnore": False} for f in files]}, {}
        if op == "commit":
            return self._commit(repo, body)
        if op == "paths-info":
            wanted = json.loads(body or b"{}").get("paths", []) if body.startswith(b"{") \
                else _form_paths(body)
            return 200, [_entry(p, repo.files[p]) for p in wanted if p in repo.files], {}
        # tree: the entries under ``rest`` (files and folders; all levels when recursive)
        prefix = f"{rest}/" if rest else ""
        under = {p: data for p, data in repo.files.items() if p.startswith(prefix)}
        if rest and not under:  # what the Hub answers for a folder that is not there
            return 404, {"error": "Entry not found"}, {"X-Error-Code": "EntryNotFound"}
        entries: dict[str, dict[str, Any]] = {}
        for path, data in sorted(under.items()):
            parts = path[len(prefix):].split("/")
            for depth in range(1, len(parts)):
                folder = prefix + "/".join(parts[:depth])
                if recursive or depth == 1:
                    entries[folder] = {"type": "directory", "path": folder, "oid": _oid(b"")}
            if recursive or len(parts) == 1:
                entries[path] = _entry(path, data)
        return 200, list(entries.values()), {}

    def _lfs_batch(self, request: dict[str, Any]) -> tuple[int, Any]:
        if request.get("operation") != "upload":
            return 400, {"message": f"unsupported LFS operation {request.get('operation')}"}
        objects = []
        for obj in request["objects"]:
            entry: dict[str, Any] = {"oid": obj["oid"], "size": obj["size"]}
            if obj["oid"] not in self.blobs:  # already stored: nothing to send
                entry["actions"] = {
                    "upload": {"href": f"{self.base_url}/lfs-upload/{obj['oid']}"},
                    "verify": {"href": f"{self.base_url}/lfs-verify"}}
            objects.append(entry)
        return 200, {"transfer": "basic", "objects": objects}

    def _commit(self, repo: HubRepo, body: bytes) -> tuple[int, Any, dict[str, str]]:
        summary = ""
        with self._lock:
            for line in body.splitlines():
                if not line.strip():
                    continue
                item = json.loads(line)
                key, value = item["key"], item["value"]
                if key == "header":
                    summary = value.get("summary", "")
                elif key == "file":
                    if value.get("encoding") != "base64":
                        return 400, {"error": f"unsupported encoding {value}"}, {}
                    repo.files[value["path"]] = base64.b64decode(value["content"])
                elif key in ("deletedFile", "deletedFolder"):
                    path = value["path"]
                    for name in [n for n in repo.files if n == path or n.startswith(path + "/")]:
                        del repo.files[name]
                elif key == "lfsFile":
                    blob = self.blobs.get(value["oid"])
                    if blob is None:
                        return 400, {"error": f"LFS object {value['oid']} was never uploaded"}, {}
                    repo.files[value["path"]] = blob
                else:
                    return 400, {"error": f"unsupported commit operation {key}"}, {}
            repo.commits.append(summary)
            sha = repo.sha
        return 200, {"commitUrl": f"{self.base_url}/datasets/{repo.repo_id}/commit/{sha}",
                     "commitOid": sha, "pullRequestUrl": None}, {}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                    body = self._read_chunked()
                else:
                    length = int(self.headers.get("Content-Length") or 0)
                    body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                path = unquote(parts.path)
                with hub._lock:
                    hub.log.append(HubRequest(self.command, path,
                                              self.headers.get("Authorization")))
                status, payload, headers = hub._route(self.command, path, body, parts.query,
                                                      self.headers.get("Authorization"))
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/octet-stream"
                                 if isinstance(payload, bytes) else "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            def _read_chunked(self) -> bytes:
                data = bytearray()
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline().strip():  # trailers
                            pass
                        return bytes(data)
                    data += self.rfile.read(size)
                    self.rfile.readline()

            do_GET = do_POST = do_HEAD = do_PUT = do_DELETE = _serve

        return Handler


def _upload_mode(file: dict[str, Any]) -> str:
    # Like the Hub: data files and anything large go to LFS storage, text inline.
    big = int(file.get("size") or 0) > 10_000_000
    return "lfs" if big or file["path"].endswith((".parquet", ".arrow")) else "regular"


def _oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _entry(path: str, data: bytes) -> dict[str, Any]:
    return {"type": "file", "path": path, "size": len(data), "oid": _oid(data)}


def _form_paths(body: bytes) -> list[str]:
    from urllib.parse import parse_qs

    return parse_qs(body.decode()).get("paths", [])
