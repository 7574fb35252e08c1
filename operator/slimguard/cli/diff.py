"""``slimguard diff OLD NEW`` and ``check --baseline``'s baseline: two images read through the facts source ``check``
uses (the registry, the local Docker engine or an archive), compared by ``core.facts.image_diff``.

Only translation lives here: which platforms and what to read (``FactsNeeds``), then the core's comparison.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from slimguard.cli.check import Sources, listed_platforms, registries_of
from slimguard.core.errors import InspectionError
from slimguard.core.facts.image_diff import ImageDiff, diff_images
from slimguard.core.facts.image_facts import FactsNeeds, FactsOrError, ImageFacts
from slimguard.core.model.platform import Platform
from slimguard.core.model.policy import ImagePolicy
from slimguard.core.model.running_image import RunningImage, WorkloadName, baseline_container
from slimguard.core.reports.image_diff import UnreadableBaseline, baseline_from_report
from slimguard.docker_engine import docker_config_credentials


async def diff_two(
    old: str,
    new: str,
    sources: Sources,
    *,
    platforms: Sequence[Platform] = (),
    known_bases: Sequence[str] = (),
    uncompressed: bool = False,
    content: bool = False,
) -> ImageDiff:
    """Both images read with one needs object: manifests and configs only, unless ``uncompressed`` (a few bytes of
    each layer from a registry) or ``content`` (every layer, streamed) asks for more."""
    credentials = docker_config_credentials(registries_of([old, new, *known_bases], []))
    wanted = tuple(platforms)
    if not wanted and sources.docker is None:
        listed = [
            *await listed_platforms(old, sources, credentials),
            *await listed_platforms(new, sources, credentials),
        ]
        wanted = tuple(dict.fromkeys(listed))
    needs = FactsNeeds(frozenset(wanted), uncompressed=uncompressed, content=content)
    old_facts = await sources.facts.inspect(old, needs, credentials=credentials)
    new_facts = await sources.facts.inspect(new, needs, credentials=credentials)
    bases: dict[str, FactsOrError] = {}
    for candidate in known_bases:
        try:
            bases[candidate] = await sources.facts.inspect(
                candidate, FactsNeeds(frozenset(wanted or _platforms_of(new_facts))), credentials=credentials
            )
        except InspectionError as error:
            bases[candidate] = error
    return diff_images(old_facts, new_facts, base_candidates=bases)


def _platforms_of(facts: ImageFacts) -> tuple[Platform, ...]:
    return tuple(image.platform for image in facts.platforms)


def is_report_file(baseline: str) -> bool:
    """``--baseline`` names a JSON report (a file that exists, or ends in .json) rather than an image."""
    return baseline.endswith(".json") or Path(baseline).is_file()


def read_baseline_report(path: str, image: str | None) -> ImageFacts:
    try:
        document = json.loads(Path(path).read_text())
    except OSError as error:
        raise UnreadableBaseline(f"{path}: cannot be read ({error.strerror or error})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UnreadableBaseline(f"{path}: not a JSON report ({error})") from None
    try:
        return baseline_from_report(document, image)
    except UnreadableBaseline as error:
        raise UnreadableBaseline(f"{path}: {error}") from None


async def read_baseline_image(baseline: str, sources: Sources, *, platforms: Sequence[Platform] = ()) -> ImageFacts:
    """The baseline image's manifests and configs (what the growth rules compare: compressed size and layers)."""
    credentials = docker_config_credentials(registries_of([baseline], []))
    wanted = tuple(platforms)
    if not wanted and sources.docker is None:
        wanted = await listed_platforms(baseline, sources, credentials)
    return await sources.facts.inspect(baseline, FactsNeeds(frozenset(wanted)), credentials=credentials)


async def baselines_for(images: Sequence[str], baseline: str, sources: Sources) -> dict[str, ImageFacts]:
    """Per image checked, its baseline: from a JSON report (the entry of that image, or its only one), or one
    image read through the same facts source, which then stands for the one image checked."""
    if is_report_file(baseline):
        return {image: read_baseline_report(baseline, image) for image in images}
    if len(images) != 1:
        raise UnreadableBaseline(
            f"--baseline {baseline} is one image: check one image against it (or give a JSON report of several)"
        )
    return {images[0]: await read_baseline_image(baseline, sources)}


async def baselines_running(
    images: Sequence[str],
    workload: WorkloadName,
    namespace: str,
    running: Sequence[RunningImage],
    *,
    container: str | None,
    sources: Sources,
) -> tuple[dict[str, ImageFacts], list[str]]:
    """Per image checked, the image its container in ``workload`` runs (``--baseline-from-cluster``), read by
    digest through the same facts source; and per image a note saying which digest that is and how it is known."""
    baselines: dict[str, ImageFacts] = {}
    notes = []
    for image in images:
        entry = baseline_container(workload, running, image, container)
        baselines[image] = await read_baseline_image(entry.reference, sources)
        notes.append(
            f"baseline of {image}: {workload} in namespace {namespace}, container {entry.container}, runs "
            f"{entry.reference} ({entry.source})"
        )
    return baselines, notes


def growth_note(policies: Sequence[ImagePolicy], baseline: str | None) -> str | None:
    """What a user must be told about the growth rules: set without a baseline (not applied), or a baseline given
    that no rule reads. None when neither."""
    growing = [
        p.name for p in policies if p.spec.rules.max_growth is not None or p.spec.rules.max_growth_bytes is not None
    ]
    if growing and baseline is None:
        return (
            f"maxGrowth/maxGrowthBytes of ImagePolicy {', '.join(growing)} not checked: no --baseline to compare "
            "with (give an image or a JSON report of an earlier check)"
        )
    if not growing and baseline is not None:
        return f"--baseline {baseline} is not compared: no ImagePolicy sets maxGrowth or maxGrowthBytes"
    return None
