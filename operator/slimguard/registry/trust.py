"""Which certificate authorities the registry client trusts: the system's, plus the ``--ca-file`` bundles.

A bundle that cannot be read is an error at start, naming the file: the process exits and the kubelet shows a
crash loop. Read later (inside kopf's startup handler) it was a bare ``FileNotFoundError`` retried every minute
while every image went unchecked.
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence

from slimguard.core.errors import SlimguardError


class CaBundleUnreadable(SlimguardError):
    """A ``--ca-file`` that is missing, unreadable or holds no PEM certificate; the message names it."""


def registry_tls_context(ca_files: Sequence[str]) -> ssl.SSLContext:
    """The system's trust store plus every bundle in ``ca_files``."""
    context = ssl.create_default_context()
    for ca_file in ca_files:
        try:
            context.load_verify_locations(cafile=ca_file)
        except ssl.SSLError as error:  # before OSError, of which it is a subclass
            raise CaBundleUnreadable(
                f"--ca-file {ca_file} holds no PEM CA certificate ({error.reason or error})"
            ) from None
        except OSError as error:
            raise CaBundleUnreadable(f"--ca-file {ca_file} cannot be read: {error.strerror or error}") from None
    return context
