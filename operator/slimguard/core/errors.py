"""Errors whose message is meant for the user who has to act on them."""


class SlimguardError(Exception):
    """Base of every error slimguard reports to a user; ``str(error)`` is the user-facing message."""


class InvalidReference(SlimguardError):
    """An image reference that does not follow the distribution grammar."""


class InvalidPolicy(SlimguardError):
    """An ImagePolicy that cannot be evaluated; the message names the policy and the bad field."""


class InspectionError(SlimguardError):
    """Facts about an image could not be had (registry unreachable, refused, garbled, or guarded)."""

    def __init__(self, message: str, *, reason: str = "InspectionFailed") -> None:
        super().__init__(message)
        self.reason = reason
