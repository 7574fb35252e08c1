"""A static HTTPS file server over a registry's storage directory: the blob storage a registry redirects to.

Real registries answer blob GETs with a redirect to object storage (S3, GCS). distribution's `redirect`
storage middleware does the same with a base URL; this server is what stands at that URL, on another
loopback address, and it records which request headers arrived so tests can prove no credential did.
"""

from __future__ import annotations

import functools
import ssl
import threading
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from slimguard_testbed.certs import CertificateAuthority
from slimguard_testbed.ports import free_port


@dataclass(frozen=True)
class BlobRequest:
    path: str
    headers: dict[str, str]


class BlobStore:
    def __init__(self, *, root: Path, ca: CertificateAuthority, workdir: Path, address: str = "127.0.0.2") -> None:
        self.root = root
        self.address = address
        self.port = free_port()
        self.requests: list[BlobRequest] = []
        cert, key = ca.issue("blobstore", hosts=(address,)).write(workdir, "blobstore")
        self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._context.load_cert_chain(cert, key)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"https://{self.address}:{self.port}"

    def start(self) -> BlobStore:
        store = self

        class Handler(SimpleHTTPRequestHandler):
            def do_GET(self) -> None:
                store.requests.append(BlobRequest(self.path, {k.lower(): v for k, v in self.headers.items()}))
                super().do_GET()

            def log_message(self, format: str, *args: Any) -> None:  # quiet: the test reads `requests`
                pass

        handler = functools.partial(Handler, directory=str(self.root))
        self._server = ThreadingHTTPServer((self.address, self.port), handler)
        self._server.socket = self._context.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, name="blobstore", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> BlobStore:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
