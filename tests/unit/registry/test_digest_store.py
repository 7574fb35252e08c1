"""The inspector with the ImageReports as its digest store, as both components use it: a digest an ImageReport
covers is answered without a request; a tag still needs its HEAD; a report that lacks what is wanted (or is
garbled) answers nothing; what the registry or memory answered is told to the store, and the store's own not."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import httpcore
import pytest
from core.builders import AMD64, ARM64, NOW, facts, platform_image

from slimguard.controller.image_reports import ReportKeeper
from slimguard.core.errors import InspectionError
from slimguard.core.facts.content import ContentFacts, PackageCount
from slimguard.core.facts.image_facts import FactsNeeds, ImageFacts
from slimguard.core.facts.image_report import report_body, report_name
from slimguard.core.model.reference import ImageReference
from slimguard.kube.image_reports import ImageReports
from slimguard.registry.client import RegistryClient
from slimguard.registry.inspector import DigestStore, ImageInspector
from slimguard.registry.settings import RegistrySettings

REPOSITORY = "registry.example.com/shop/api"
CONTENT = ContentFacts(PackageCount(3), (), (), efficiency=1.0, wasted_bytes=0, file_count=12)


class NoNetwork(httpcore.AsyncNetworkBackend):
    """Refuses every connection, and counts the attempts: these tests must show where none is made."""

    def __init__(self) -> None:
        self.attempts = 0

    async def connect_tcp(self, host: str, port: int, *args: Any, **kwargs: Any) -> httpcore.AsyncNetworkStream:
        self.attempts += 1
        raise httpcore.ConnectError(f"no network in unit tests ({host}:{port})")

    async def sleep(self, seconds: float) -> None:
        return None


@pytest.fixture
def network() -> NoNetwork:
    return NoNetwork()


@pytest.fixture
def reports() -> ImageReports:
    return ImageReports()


@pytest.fixture
def keeper(reports: ImageReports) -> ReportKeeper:
    """The controller's store: the reports behind a keeper that writes what it is told (nothing here)."""
    return ReportKeeper(reports=reports, kube=None, in_use=set, clock=lambda: NOW)  # type: ignore[arg-type]


@dataclass
class Telling:
    """A store over the reports that records what the inspector told it was learned."""

    reports: ImageReports
    told: list[tuple[str, str]] = field(default_factory=list)

    def facts_for(self, digest: str, needs: FactsNeeds) -> ImageFacts | None:
        return self.reports.facts_for(digest, needs)

    async def read(self, digest: str, needs: FactsNeeds) -> ImageFacts | None:
        return await self.reports.read(digest, needs)

    def would_read(self, digest: str) -> bool:
        return self.reports.would_read(digest)

    def remember(self, image: str, facts: ImageFacts, *, learned: bool) -> None:
        if learned:
            self.told.append((image, facts.digest))


def inspector(network: NoNetwork, store: DigestStore, **options: Any) -> Iterator[ImageInspector]:
    client = RegistryClient(RegistrySettings(), backend=network, sleep=lambda _: asyncio.sleep(0))  # no backoff waits
    yield ImageInspector(client, store=store, **options)
    asyncio.run(client.aclose())


@pytest.fixture
def source(network: NoNetwork, keeper: ReportKeeper) -> Iterator[ImageInspector]:
    yield from inspector(network, keeper)


def file(reports: ImageReports, image: ImageFacts, **change: Any) -> None:
    body = json.loads(json.dumps(report_body(image, [f"{REPOSITORY}:1.0"])))
    body["metadata"]["resourceVersion"] = "1"
    body["report"].update(change)
    reports.observe(body)


def ask(source: ImageInspector, image: str, platforms: Iterable[Any] = (AMD64,), **need: Any) -> Any:
    return source.cached(image, FactsNeeds(frozenset(platforms), **need))


def test_a_digest_reference_with_a_report_is_answered_without_a_request(
    source: ImageInspector, reports: ImageReports, keeper: ReportKeeper, network: NoNetwork
) -> None:
    image = facts()
    file(reports, image)
    pinned = f"{REPOSITORY}@{image.digest}"
    assert ask(source, pinned) == image
    assert asyncio.run(source.inspect(pinned, FactsNeeds(frozenset({AMD64})))) == image
    assert network.attempts == 0
    assert keeper.resolved[pinned] == image.digest  # in use, for the controller's GC


def test_a_tag_is_resolved_with_the_registry_even_when_a_report_exists(
    source: ImageInspector, reports: ImageReports, network: NoNetwork
) -> None:
    file(reports, facts())
    assert ask(source, f"{REPOSITORY}:1.0") is None  # which digest the tag names now, only a HEAD can say
    with pytest.raises(InspectionError):
        asyncio.run(source.inspect(f"{REPOSITORY}:1.0", FactsNeeds(frozenset({AMD64}))))
    assert network.attempts >= 1


def test_a_garbled_report_answers_nothing(source: ImageInspector, reports: ImageReports) -> None:
    image = facts()
    file(reports, image, platforms="all of them")
    assert ask(source, f"{REPOSITORY}@{image.digest}") is None


def test_a_report_without_a_wanted_platform_answers_nothing(source: ImageInspector, reports: ImageReports) -> None:
    index = facts(platform_image(platform=AMD64), listed=[AMD64, ARM64])
    file(reports, index)
    pinned = f"{REPOSITORY}@{index.digest}"
    assert ask(source, pinned, [AMD64]) == index
    assert ask(source, pinned, [AMD64, ARM64]) is None  # arm64 is listed but was never read


def test_contents_are_read_by_the_controller_but_the_webhook_takes_the_report_as_it_is(
    network: NoNetwork, reports: ImageReports
) -> None:
    without = facts(seed="without")
    with_content = facts(replace(platform_image(seed="with"), content=CONTENT), seed="with")
    file(reports, without)
    file(reports, with_content)
    for read_layers, answered in ((True, None), (False, without)):
        for source in inspector(network, reports, read_layers=read_layers):
            assert ask(source, f"{REPOSITORY}@{without.digest}", content=True) == answered
            assert ask(source, f"{REPOSITORY}@{with_content.digest}", content=True) == with_content
    assert network.attempts == 0


def test_what_the_registry_or_memory_answered_is_told_to_the_report_writer_and_reports_are_not(
    network: NoNetwork, reports: ImageReports
) -> None:
    store = Telling(reports)
    told = store.told
    image = facts()
    file(reports, image)
    for source in inspector(network, store):
        ask(source, f"{REPOSITORY}@{image.digest}")
    assert told == []


def test_a_tag_answered_from_the_inspectors_memory_is_learned_by_the_keeper(
    network: NoNetwork, keeper: ReportKeeper
) -> None:
    image = facts()
    tag = f"{REPOSITORY}:1.0"
    for source in inspector(network, keeper):
        source._tags.put(source._tag_key(ImageReference.parse(tag), None), image.digest)  # as a HEAD left them
        source._facts.put(image.digest, image)
        assert ask(source, tag) == image
    assert network.attempts == 0
    assert keeper.resolved[tag] == image.digest
    assert not keeper.idle  # its report is owed: the registry's answer, not a report's


async def admit(source: ImageInspector, image: str) -> Any:
    """The webhook's warm path: an answer from memory, then the loop runs on (and the background work with it)."""
    answer = ask(source, image)
    for _ in range(20):  # let a background re-resolve reach the network
        await asyncio.sleep(0)
    await source.stop_background()
    return answer


def test_a_tag_answered_from_a_report_is_re_resolved_in_the_background_before_its_ttl_runs_out(
    network: NoNetwork, reports: ImageReports
) -> None:
    """What the settings promise for every tag: from `tag_refresh_after_seconds` on, the answer still comes from
    memory and a HEAD goes out in the background, so no admission of a seen image waits for the registry. A tag
    whose digest has a report took the store's path and never started one: an admission waited on a HEAD every
    `tag_ttl + tag_max_stale` (7 min by default)."""
    image = facts()
    file(reports, image)
    tag = f"{REPOSITORY}:1.0"
    now = [0.0]
    for source in inspector(network, reports, clock=lambda: now[0]):
        source._tags.put(source._tag_key(ImageReference.parse(tag), None), image.digest)  # as a HEAD left them
        now[0] = RegistrySettings().tag_refresh_after_seconds + 1

        assert asyncio.run(admit(source, tag)) == image  # answered at once, from the report
    assert network.attempts >= 1  # and the tag re-resolved behind it


# --- reports the watch shows as metadata, read by name when asked for ------------------------------------------


@dataclass
class Stored:
    """The reports as the apiserver holds them, by name, and the GETs made for them."""

    bodies: dict[str, dict[str, Any]] = field(default_factory=dict)
    gets: list[str] = field(default_factory=list)

    def put(self, image: ImageFacts, version: str) -> dict[str, Any]:
        body = json.loads(json.dumps(report_body(image, [f"{REPOSITORY}:1.0"])))
        body["metadata"]["resourceVersion"] = version
        self.bodies[body["metadata"]["name"]] = body
        return {"kind": "PartialObjectMetadata", "metadata": dict(body["metadata"])}  # what the watch shows

    async def get(self, name: str) -> dict[str, Any] | None:
        self.gets.append(name)
        return self.bodies.get(name)


def test_a_report_the_watch_shows_is_read_by_name_once_when_its_digest_is_inspected_then_held(
    network: NoNetwork,
) -> None:
    stored, reports = Stored(), ImageReports()
    reports.read_from(stored.get)
    image = facts()
    reports.observe(stored.put(image, "1"))
    assert (len(reports), reports.held) == (1, 0), "known by its metadata, nothing of it read yet"
    pinned = f"{REPOSITORY}@{image.digest}"
    for source in inspector(network, reports):
        assert ask(source, pinned) is None, "the warm path makes no request"
        assert asyncio.run(source.inspect(pinned, FactsNeeds(frozenset({AMD64})))) == image
        assert ask(source, pinned) == image, "held from then on"
        assert asyncio.run(source.inspect(pinned, FactsNeeds(frozenset({AMD64})))) == image
    assert stored.gets == [report_name(image.digest)]
    assert network.attempts == 0, "nothing asked of the registry"


def test_a_report_changed_since_it_was_read_is_read_again_and_one_deleted_not_at_all() -> None:
    stored, reports = Stored(), ImageReports()
    reports.read_from(stored.get)
    image = facts()
    needs = FactsNeeds(frozenset({AMD64}))
    reports.observe(stored.put(image, "1"))
    assert asyncio.run(reports.read(image.digest, needs)) == image
    learned = replace(image, platforms=(replace(image.platforms[0], content=CONTENT),))
    reports.observe(stored.put(learned, "2"))  # the controller read its layers and wrote them in
    assert reports.facts_for(image.digest, needs) is None, "what was held is out of date"
    assert asyncio.run(reports.read(image.digest, replace(needs, content=True))) == learned
    reports.observe({"metadata": {"name": report_name(image.digest)}}, deleted=True)
    assert asyncio.run(reports.read(image.digest, needs)) is None
    assert len(stored.gets) == 2
    assert len(reports) == 0


def test_the_reports_held_are_bounded_and_the_least_recently_asked_for_goes_first() -> None:
    """A report with its layers' contents is ~150 KB once read: thousands held whole would cost most of a GB."""
    stored = Stored()
    heavy = ContentFacts(PackageCount(173), (), tuple((f"usr/bin/t{n}", 0) for n in range(1000)), 1.0, 0, 9)
    images = [facts(replace(platform_image(seed=str(n)), content=heavy), seed=str(n)) for n in range(3)]
    reports = ImageReports(held_weight=2_500)  # room for two such reports
    reports.read_from(stored.get)
    for image in images:
        reports.observe(stored.put(image, "1"))
    needs = FactsNeeds(frozenset({AMD64}), content=True)
    first, second, third = (image.digest for image in images)
    for digest in (first, second, first, third):
        assert asyncio.run(reports.read(digest, needs)) is not None
    assert reports.held == 2
    assert reports.facts_for(first, needs) is not None, "asked for again: kept"
    assert reports.facts_for(second, needs) is None, "the least recently asked for: let go"
    assert sorted(reports.names().values()) == sorted(image.digest for image in images), "all still known"


def test_a_tag_whose_digest_has_a_report_not_read_yet_is_not_answered_from_the_inspectors_lesser_memory(
    network: NoNetwork,
) -> None:
    """A webhook read the image before its report existed (no layer contents: content rules pending); the report
    the controller then wrote, with the contents, must answer the next review, not what the webhook remembered."""
    stored, reports = Stored(), ImageReports()
    reports.read_from(stored.get)
    without = facts()
    learned = replace(without, platforms=(replace(without.platforms[0], content=CONTENT),))
    tag = f"{REPOSITORY}:1.0"
    for source in inspector(network, reports, read_layers=False):
        source._tags.put(source._tag_key(ImageReference.parse(tag), None), without.digest)  # as a HEAD left them
        source._facts.put(without.digest, without)  # what the registry gave it, before the report existed
        assert ask(source, tag) == without
        reports.observe(stored.put(learned, "1"))  # the controller's report, as the watch shows it
        assert ask(source, tag) is None, "left to inspect, which reads the report"
        assert asyncio.run(source.inspect(tag, FactsNeeds(frozenset({AMD64})))) == learned
        assert ask(source, tag) == learned
    assert network.attempts == 0
