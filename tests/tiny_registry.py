"""A read-only container registry serving one tiny image, for `docker pull` in tests (no registry here).

Speaks the part of the OCI distribution API (Docker Registry HTTP API V2) that `docker pull` uses: the
/v2/ version check, manifests by tag or digest (image manifest v2, schema 2) and blobs by digest. Docker
treats 127.0.0.0/8 as an insecure registry by default, so plain HTTP on a loopback port is pulled from.
The image is one gzip layer with one file; its config names uid 10001 like the model image.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import platform
import tarfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MANIFEST_TYPE = "application/vnd.docker.distribution.manifest.v2+json"


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _image(note: str) -> tuple[bytes, dict[str, bytes]]:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        body = note.encode()
        info = tarfile.TarInfo("note.txt")
        info.size, info.mtime = len(body), 0
        tar.addfile(info, io.BytesIO(body))
    layer_tar = raw.getvalue()
    layer = gzip.compress(layer_tar, mtime=0)
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    config = json.dumps(
        {
            "architecture": arch,
            "os": "linux",
            "config": {"User": "10001", "Cmd": ["/note.txt"]},
            "rootfs": {"type": "layers", "diff_ids": [_digest(layer_tar)]},
            "history": [{"created_by": "tests/tiny_registry.py"}],
        }
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "size": len(config),
                "digest": _digest(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "size": len(layer),
                    "digest": _digest(layer),
                }
            ],
        }
    ).encode()
    return manifest, {_digest(config): config, _digest(layer): layer}


@contextmanager
def tiny_registry(repository: str, tag: str) -> Iterator[str]:
    """Serve ``repository:tag`` on a free loopback port; yields ``127.0.0.1:<port>`` (the registry host)."""
    manifest, blobs = _image(f"{repository}:{tag}")
    manifest_digest = _digest(manifest)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            return

        def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
            self.send_response(status)
            for key, value in {"Docker-Distribution-API-Version": "registry/2.0", **headers}.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def do_GET(self) -> None:
            path = self.path.split("?")[0]
            if path == "/v2/":
                return self._send(200, b"{}", {"Content-Type": "application/json"})
            prefix = f"/v2/{repository}/"
            if path.startswith(prefix + "manifests/") and path.rsplit("/", 1)[1] in (tag, manifest_digest):
                return self._send(
                    200, manifest, {"Content-Type": MANIFEST_TYPE, "Docker-Content-Digest": manifest_digest}
                )
            if path.startswith(prefix + "blobs/") and path.rsplit("/", 1)[1] in blobs:
                digest = path.rsplit("/", 1)[1]
                return self._send(
                    200,
                    blobs[digest],
                    {"Content-Type": "application/octet-stream", "Docker-Content-Digest": digest},
                )
            body = json.dumps(
                {"errors": [{"code": "MANIFEST_UNKNOWN", "message": "unknown", "detail": path}]}
            )
            return self._send(404, body.encode(), {"Content-Type": "application/json"})

        do_HEAD = do_GET

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
