"""slimguard's servers on their default addresses, asked over IPv4 and over IPv6.

Run inside a network namespace of its own (``unshare --net``, loopback up), where "every address" is loopback
only: the test bed's rule that nothing listens beyond this machine holds while the servers bind ``::``.
``python -m slimguard_testbed.listeners CERT KEY CA`` prints, as JSON, the status each URL answered (0: no answer).
"""

from __future__ import annotations

import asyncio
import json
import ssl
import sys
from typing import Any, cast

import httpx
from prometheus_client import start_http_server

from slimguard.admission.server import ServerSettings, WebhookServer
from slimguard.controller.settings import ControllerSettings

WEBHOOK_PORT = 8443
METRICS_PORT = 9090


async def answers(cert_file: str, key_file: str, ca_file: str) -> dict[str, int]:
    """The webhook's HTTPS server and /metrics, each started on the address its settings default to."""
    # /healthz needs neither a reviewer nor a cluster view.
    settings = ServerSettings(port=WEBHOOK_PORT, cert_file=cert_file, key_file=key_file, shutdown_delay=0)
    server = WebhookServer(reviewer=cast(Any, None), view=cast(Any, None), settings=settings)
    await server.start()
    metrics, _ = start_http_server(METRICS_PORT, addr=ControllerSettings().metrics_address)
    found: dict[str, int] = {}
    try:
        async with httpx.AsyncClient(verify=ssl.create_default_context(cafile=ca_file), timeout=5) as client:
            for host in ("127.0.0.1", "[::1]"):
                for url in (f"https://{host}:{WEBHOOK_PORT}/healthz", f"http://{host}:{METRICS_PORT}/metrics"):
                    try:
                        found[url] = (await client.get(url)).status_code
                    except httpx.HTTPError:
                        found[url] = 0
    finally:
        metrics.shutdown()
        await server.stop()
    return found


if __name__ == "__main__":
    print(json.dumps(asyncio.run(answers(*sys.argv[1:4]))))
