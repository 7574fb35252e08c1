"""The floor any admission webhook pays: an HTTPS server that admits every AdmissionReview, doing nothing else.

The admission benchmarks run it (bench/common/webhooks.py) beside `slimguard webhook` with the same certificate,
the same TLS settings, the same port sharing (SO_REUSEPORT), the same aiohttp and the same
ValidatingWebhookConfiguration (only the `url` differs), so the difference between the two is what slimguard's
decision costs and nothing else.

It parses the review (any webhook must, to echo its uid) and keeps the last raw review of each kind, so the
benchmark can replay exactly what the apiserver sends when it drives a webhook directly.

    python bench/always_allow.py --cert-file C --key-file K --port P [--host 127.0.0.1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import ssl
from collections.abc import Sequence

from aiohttp import web


class AlwaysAllow:
    def __init__(self) -> None:
        self.reviews = 0
        self.last: dict[str, bytes] = {}

    def app(self) -> web.Application:
        # The same body limit as slimguard's server.
        app = web.Application(client_max_size=3 * 1024 * 1024)
        app.router.add_post("/validate", self.validate)
        app.router.add_get("/readyz", self.readyz)
        app.router.add_get("/stats", self.stats)
        app.router.add_get("/last/{kind}", self.last_review)
        return app

    async def validate(self, request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            admission = json.loads(raw)["request"]
            uid = str(admission["uid"])
        except (ValueError, KeyError, TypeError):
            return web.json_response({"error": "expected an admission.k8s.io/v1 AdmissionReview"}, status=400)
        self.reviews += 1
        self.last[str((admission.get("kind") or {}).get("kind") or "")] = raw
        return web.json_response(
            {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": {"uid": uid, "allowed": True}}
        )

    async def readyz(self, _: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def stats(self, _: web.Request) -> web.Response:
        return web.json_response({"reviews": self.reviews})

    async def last_review(self, request: web.Request) -> web.Response:
        raw = self.last.get(request.match_info["kind"])
        if raw is None:
            return web.Response(status=404, text="no review of that kind yet")
        return web.Response(body=raw, content_type="application/json")


def tls_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    """What slimguard's CertificateReloader builds (minus the reloading)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_file, key_file)
    return context


async def serve(host: str, port: int, cert_file: str, key_file: str) -> None:
    runner = web.AppRunner(AlwaysAllow().app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=tls_context(cert_file, key_file), reuse_port=True)
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"always-allow webhook serving on https://{host}:{port}/validate", flush=True)
    await stop.wait()
    await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cert-file", required=True)
    parser.add_argument("--key-file", required=True)
    args = parser.parse_args(argv)
    asyncio.run(serve(args.host, args.port, args.cert_file, args.key_file))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
