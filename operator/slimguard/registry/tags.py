"""A repository's tag list (``/v2/<name>/tags/list``), paginated by ``n`` and ``last``, capped in pages and tags.

Registries paginate with a ``Link: <...?last=X&n=N>; rel="next"`` header (distribution, Harbor, GHCR). Only
``last`` is taken from it: the next page is always asked of the same registry and repository, never of a URL
the registry names, so a hostile registry cannot send slimguard elsewhere.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from urllib.parse import parse_qs, urlencode, urlsplit

from slimguard.core.errors import InspectionError, InspectionReason
from slimguard.core.model.reference import ImageReference
from slimguard.registry.client import RegistryClient
from slimguard.registry.credentials import Credential

PAGE_SIZE = 100
MAX_PAGES = 20
MAX_TAGS = 5000
MAX_PAGE_BYTES = 1024 * 1024
_LINK_RE = re.compile(r"<([^>]*)>\s*((?:;\s*[^;,]*)*)")
_REL_NEXT_RE = re.compile(r'rel\s*=\s*"?next"?', re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class TagList:
    tags: tuple[str, ...]
    complete: bool
    """False when a cap stopped the listing (more pages or tags than slimguard reads)."""
    pages: int


def next_last(link: str) -> str | None:
    """The ``last`` of the ``rel="next"`` link, or None when there is no next page (or it names none)."""
    for match in _LINK_RE.finditer(link):
        target, params = match.group(1), match.group(2)
        if not _REL_NEXT_RE.search(params):
            continue
        values = parse_qs(urlsplit(target).query).get("last")
        return values[0] if values and values[0] else None
    return None


def parse_page(body: bytes, reference: ImageReference) -> list[str]:
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        document = None
    if not isinstance(document, dict):
        raise InspectionError(
            f"registry {reference.registry} served a garbled tag list of {reference.name}",
            reason=InspectionReason.GARBLED_TAG_LIST,
        )
    tags = document.get("tags") or []
    if not isinstance(tags, list):
        raise InspectionError(
            f"registry {reference.registry} served a garbled tag list of {reference.name}",
            reason=InspectionReason.GARBLED_TAG_LIST,
        )
    return [tag for tag in tags if isinstance(tag, str) and tag]


async def list_tags(
    client: RegistryClient,
    reference: ImageReference,
    credential: Credential | None,
    *,
    page_size: int = PAGE_SIZE,
    max_pages: int = MAX_PAGES,
    max_tags: int = MAX_TAGS,
) -> TagList:
    """Every tag of ``reference``'s repository, up to the caps; raises InspectionError as the client does."""
    tags: dict[str, None] = {}
    last: str | None = None
    for page in range(1, max_pages + 1):
        query = {"n": str(page_size)} | ({"last": last} if last else {})
        body, link = await client.get_tags_page(reference, credential, query=urlencode(query), max_bytes=MAX_PAGE_BYTES)
        for tag in parse_page(body, reference):
            tags.setdefault(tag, None)
            if len(tags) >= max_tags:
                return TagList(tuple(tags), complete=False, pages=page)
        following = next_last(link)
        if following is None or following == last:
            return TagList(tuple(tags), complete=True, pages=page)
        last = following
    return TagList(tuple(tags), complete=False, pages=max_pages)
