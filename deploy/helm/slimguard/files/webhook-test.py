"""`helm test`: the webhook answers through its Service as the apiserver calls it, with the CA the apiserver trusts.

Run by the slimguard image's own Python (distroless: no shell, no curl), standard library only, nothing from
outside the cluster. It connects to the webhook Service's cluster IP (from the Service's environment variables, so
no cluster DNS is needed), verifies the serving certificate for the Service's DNS name against the CAs the
webhook configuration's caBundle holds, then
  1. GET /readyz answers 200: the webhook has loaded the ImagePolicies and its certificate;
  2. an AdmissionReview POSTed to the configured path comes back with its uid and a decision.
The review is of a Pod without containers in the release namespace: no policy can match it, so no registry is
asked, and the decision is whatever the policies say about nothing (allowed). Exit 0 only when both hold.
"""

import http.client
import json
import os
import socket
import ssl
import sys
import uuid


class ServiceConnection(http.client.HTTPSConnection):
    """HTTPS to ``address`` (the Service's cluster IP), verifying the certificate for ``server_name``."""

    def __init__(self, address: str, port: int, server_name: str, context: ssl.SSLContext) -> None:
        super().__init__(server_name, port, timeout=10, context=context)
        self.address = address

    def connect(self) -> None:
        sock = socket.create_connection((self.address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def trust() -> ssl.SSLContext:
    """The CA the apiserver trusts the webhook by: CA_PEM (given), else the first of CA_FILES that exists."""
    if os.environ.get("CA_PEM"):
        return ssl.create_default_context(cadata=os.environ["CA_PEM"])
    candidates = [path for path in os.environ.get("CA_FILES", "").split(":") if path]
    for path in candidates:
        if os.path.isfile(path):
            return ssl.create_default_context(cafile=path)
    raise SystemExit(f"FAIL: none of {', '.join(candidates)} exists: the webhook's TLS Secret holds no CA yet")


def request(method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
    context = trust()
    server_name = os.environ["SERVER_NAME"]
    address = os.environ.get(os.environ["ADDRESS_ENV"]) or server_name
    connection = ServiceConnection(address, int(os.environ["PORT"]), server_name, context)
    headers = {"Content-Type": "application/json"} if body is not None else {}
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def main() -> int:
    status, text = request("GET", "/readyz")
    if status != 200:
        print(f"FAIL: GET /readyz answered {status}: {text.decode(errors='replace')}")
        return 1
    print("ok: the webhook is ready (GET /readyz 200)")
    uid = str(uuid.uuid4())
    namespace = os.environ["NAMESPACE"]
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "slimguard-helm-test", "namespace": namespace},
           "spec": {"containers": []}}  # fmt: skip
    review = {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "name": "slimguard-helm-test",
            "namespace": namespace,
            "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:" + namespace + ":helm-test"},
            "object": pod,
            "dryRun": True,
        },
    }
    path = os.environ["REVIEW_PATH"]
    status, text = request("POST", path, json.dumps(review).encode())
    try:
        response = json.loads(text)["response"]
    except (ValueError, KeyError, TypeError):
        print(f"FAIL: POST {path} answered {status} without an AdmissionReview: {text[:500].decode(errors='replace')}")
        return 1
    if status != 200 or response.get("uid") != uid or not isinstance(response.get("allowed"), bool):
        print(f"FAIL: POST {path} answered {status}: {json.dumps(response)[:500]}")
        return 1
    print(f"ok: POST {path} answered the review {uid}: allowed={response['allowed']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
