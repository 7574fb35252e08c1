"""The kube adapter's own errors: what code outside ``slimguard.kube`` catches, whatever client library is beneath.

kopf's habit (``_cogs/clients/errors.py``): the apiserver's answers as a small tree of our own, each chaining the
client library's exception, so that the library can be replaced here and the controller and the CLI never import it
(an import-linter contract holds them to that). Only answers become these (an HTTP status from the apiserver), and a
configuration that names no cluster; a connection that failed below HTTP is the transport's own error, as before.
"""

from __future__ import annotations

import json

from kubernetes.client.exceptions import ApiException


class KubeError(Exception):
    """The apiserver refused a call; the message says what was asked and why. ``status``: its HTTP status (0 when
    it never answered), ``reason``: its reason phrase (``Not Found``)."""

    def __init__(self, message: str, *, status: int = 0, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


class NotConfigured(KubeError):
    """No cluster to talk to: no kubeconfig, and not in a Pod with a ServiceAccount."""


class NotFound(KubeError):
    """404: the object (or its kind: a CRD not installed) is not there."""


class Conflict(KubeError):
    """409: it exists already, or changed since it was read (a resourceVersion precondition)."""


class Unauthorized(KubeError):
    """401: the apiserver does not know who is asking (a token expired or revoked)."""


class Forbidden(KubeError):
    """403: RBAC refused it."""


class Invalid(KubeError):
    """400 or 422: the apiserver refused the request itself (a schema, a failed JSON-patch test)."""


class Unavailable(KubeError):
    """429 or 5xx: the apiserver (or a webhook it calls) cannot answer now; try again later."""


_BY_STATUS: dict[int, type[KubeError]] = {
    400: Invalid,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    422: Invalid,
    429: Unavailable,
}


def translated(error: ApiException, what: str = "") -> KubeError:
    """The client's exception as one of ours (raise it ``from`` the client's, so the traceback keeps both)."""
    status, reason = int(error.status or 0), str(error.reason or "")
    kind = _BY_STATUS.get(status) or (Unavailable if status >= 500 else KubeError)
    said = f"{status} {reason}"
    if message := _status_message(error):
        said = f"{said}: {message}"
    return kind(f"{what}: {said}" if what else said, status=status, reason=reason)


def _status_message(error: ApiException) -> str:
    """The ``message`` of the Status the apiserver answers with (what RBAC or validation said), if any."""
    try:
        body = json.loads(error.body or "{}")
    except (ValueError, TypeError):
        return ""
    return str(body.get("message") or "") if isinstance(body, dict) else ""
