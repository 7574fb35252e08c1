"""Errors whose message is meant for the user who has to act on them, and why an image could not be checked."""

from enum import StrEnum


class InspectionReason(StrEnum):
    """Why an image, or a rule on it, could not be checked: the ``reason`` of an error finding.

    Public, so a value never changes: PolicyReport results (``properties.reason``), the JSON of ``slimguard check``,
    the metrics' ``reason`` label (``slimguard_inspection_failures_total``, ``slimguard_images_decided_by_default``),
    the ImagePolicy's Enforcing condition, and the README's table of reasons, which a unit test holds to this enum.
    """

    # The registry: reaching it, and what it answers.
    REGISTRY_UNREACHABLE = "RegistryUnreachable"
    REGISTRY_TIMEOUT = "RegistryTimeout"
    REGISTRY_UNTRUSTED = "RegistryUntrusted"
    REGISTRY_REFUSED = "RegistryRefused"
    REGISTRY_UNAUTHORIZED = "RegistryUnauthorized"
    CREDENTIAL_PROVIDER_FAILED = "CredentialProviderFailed"
    REGISTRY_RATE_LIMITED = "RegistryRateLimited"
    REGISTRY_ERROR = "RegistryError"
    TOO_MANY_REDIRECTS = "TooManyRedirects"
    RESPONSE_TOO_LARGE = "ResponseTooLarge"
    TRUNCATED_RESPONSE = "TruncatedResponse"
    RANGE_UNSUPPORTED = "RangeUnsupported"
    # The image: its reference, manifests and tags.
    INVALID_REFERENCE = "InvalidReference"
    IMAGE_NOT_FOUND = "ImageNotFound"
    DIGEST_MISMATCH = "DigestMismatch"
    UNSUPPORTED_DIGEST = "UnsupportedDigest"
    GARBLED_MANIFEST = "GarbledManifest"
    UNSUPPORTED_MANIFEST = "UnsupportedManifest"
    GARBLED_TAG_LIST = "GarbledTagList"
    # Its layers, when a content rule has them read.
    GARBLED_LAYER = "GarbledLayer"
    LAYER_DIGEST_MISMATCH = "LayerDigestMismatch"
    LAYER_TOO_LARGE = "LayerTooLarge"
    TOO_MANY_LAYER_ENTRIES = "TooManyLayerEntries"
    UNSAFE_LAYER_PATH = "UnsafeLayerPath"
    # The local Docker engine (slimguard check --docker).
    DOCKER_UNREACHABLE = "DockerUnreachable"
    DOCKER_SAVE_FAILED = "DockerSaveFailed"
    # An image archive (slimguard check --input): a docker save tarball or an OCI image layout.
    ARCHIVE_UNREADABLE = "ArchiveUnreadable"
    # Time, and anything else.
    INSPECTION_DEADLINE = "InspectionDeadline"
    INSPECTION_FAILED = "InspectionFailed"
    # One rule could not be decided, though the image was read.
    BASE_IMAGE_UNREADABLE = "BaseImageUnreadable"
    CONTENT_PENDING = "ContentPending"
    REPORTS_PENDING = "ReportsPending"
    COMPRESSED_SIZE_UNKNOWN = "CompressedSizeUnknown"
    UNKNOWN_UNCOMPRESSED_SIZE = "UnknownUncompressedSize"
    UNKNOWN_PACKAGE_COUNT = "UnknownPackageCount"


class SlimguardError(Exception):
    """Base of every error slimguard reports to a user; ``str(error)`` is the user-facing message."""


class InvalidReference(SlimguardError):
    """An image reference that does not follow the distribution grammar."""


class InvalidPolicy(SlimguardError):
    """An ImagePolicy that cannot be evaluated; the message names the policy and the bad field."""


class InspectionError(SlimguardError):
    """Facts about an image could not be had (registry unreachable, refused, garbled, or guarded)."""

    def __init__(self, message: str, *, reason: InspectionReason = InspectionReason.INSPECTION_FAILED) -> None:
        super().__init__(message)
        self.reason = reason
