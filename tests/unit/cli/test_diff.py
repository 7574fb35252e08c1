"""``slimguard diff OLD NEW`` as a pipeline calls it, on two builds of one app saved in an archive (``--input``):
the layer a build added, named by its instruction and size; the reports; and what it reads (manifests and configs
only, unless ``--content``)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path

import jsonschema
import pytest
from archive.archives import KIB

from cli.builds import NEW, OLD, run, two_builds
from slimguard.cli.check import open_sources
from slimguard.cli.diff import diff_two
from slimguard.core.facts.image_facts import FactsNeeds, ImageFacts
from slimguard.registry.credentials import Credential
from slimguard.registry.settings import RegistrySettings

SARIF_SCHEMA = json.loads((Path(__file__).parents[2] / "schemas" / "sarif-schema-2.1.0.json").read_text())


@pytest.fixture
def archive(tmp_path: Path) -> str:
    return two_builds(tmp_path)


def diff_json(archive: str, *options: str) -> dict:
    code, out, err = run("diff", "--input", archive, OLD, NEW, "--measure-compressed", "-f", "json", *options)
    assert code == 0, err
    return json.loads(out)


def test_diff_names_the_layer_a_build_added_with_its_instruction_and_size(archive: str) -> None:
    report = diff_json(archive)
    assert (report["command"], report["source"], report["old"]["image"], report["new"]["image"]) == (
        "diff",
        "archive",
        OLD,
        NEW,
    )
    (platform,) = report["platforms"]
    assert [(layer["status"], layer["instruction"]) for layer in platform["layers"]] == [
        ("same", "ADD rootfs.tar.xz /"),
        ("added", "RUN apt-get install -y gcc-12"),
        ("same", "COPY . /app"),
    ]
    added = platform["layers"][1]
    assert added["sizeDelta"] == added["newSize"] > 128 * KIB  # incompressible: gzip keeps its size
    assert platform["compressedDelta"] == platform["new"]["compressedSize"] - platform["old"]["compressedSize"]
    assert platform["compressedDelta"] - added["sizeDelta"] < 4 * KIB  # the rest is the config's few bytes
    assert platform["uncompressedDelta"] == added["uncompressedDelta"] > 128 * KIB
    assert (platform["old"]["layerCount"], platform["new"]["layerCount"]) == (2, 3)
    assert platform["content"] is None


def test_diff_with_content_names_the_packages_added_and_the_tools_that_appeared(archive: str) -> None:
    (platform,) = diff_json(archive, "--content")["platforms"]
    content = platform["content"]
    assert (content["packagesAdded"], content["packagesRemoved"]) == (["gcc-12"], [])
    assert any("gcc-12" in tool for tool in content["toolsAppeared"])


class CountingFacts:
    """A facts source that records what it is asked for, then asks the real one (the archive)."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.asked: list[FactsNeeds] = []

    def cached(self, image: str, needs: FactsNeeds, *, credentials: Sequence[Credential]) -> None:
        return None

    async def inspect(self, image: str, needs: FactsNeeds, *, credentials: Sequence[Credential]) -> ImageFacts:
        self.asked.append(needs)
        return await self.inner.inspect(image, needs, credentials=credentials)  # type: ignore[attr-defined,no-any-return]


def needs_of_a_diff(archive: str, **options: bool) -> list[FactsNeeds]:
    async def diff() -> list[FactsNeeds]:
        sources = open_sources(
            [OLD, NEW],
            registry=RegistrySettings(),
            docker=False,
            docker_host=None,
            measure_compressed=False,
            archive=archive,
            unnamed_ok=True,
        )
        counting = CountingFacts(sources.facts)
        sources.facts = counting
        try:
            await diff_two(OLD, NEW, sources, **options)
        finally:
            await sources.aclose()
        return counting.asked

    return asyncio.run(diff())


def test_diff_reads_manifests_and_configs_only_unless_contents_are_asked_for(archive: str) -> None:
    plain = needs_of_a_diff(archive)
    assert plain, "the facts source was never asked"
    assert not any(needs.content or needs.uncompressed for needs in plain)
    with_content = needs_of_a_diff(archive, content=True)
    assert any(needs.content for needs in with_content)


def test_diff_as_sarif_is_valid_sarif_with_a_note_per_layer_changed(archive: str) -> None:
    code, out, _ = run("diff", "--input", archive, OLD, NEW, "--measure-compressed", "-f", "sarif")
    assert code == 0
    log = json.loads(out)
    jsonschema.validate(log, SARIF_SCHEMA)
    results = log["runs"][0]["results"]
    assert [r["ruleId"] for r in results] == ["diff.size", "diff.layer.added"]
    assert "RUN apt-get install -y gcc-12" in results[1]["message"]["text"]
    assert {r["level"] for r in results} == {"note"}


def test_diff_as_markdown_is_a_pull_request_comment_with_the_layer_added(archive: str) -> None:
    code, out, _ = run("diff", "--input", archive, OLD, NEW, "--measure-compressed", "-f", "markdown")
    assert code == 0
    assert out.startswith(f"### slimguard diff: `{OLD}` → `{NEW}`")
    assert "| 2 | added | +" in out
    assert "`RUN apt-get install -y gcc-12` |" in out
    assert "2 layers unchanged." in out


def test_diff_as_a_table_says_each_change_on_one_line(archive: str) -> None:
    code, out, _ = run("diff", "--input", archive, OLD, NEW, "--measure-compressed")
    assert code == 0
    assert f"{OLD} → {NEW} (archive)" in out
    assert "added    layer   2" in out
    assert "RUN apt-get install -y gcc-12" in out
    assert "2 layers unchanged" in out


def test_an_image_the_archive_does_not_hold_is_one_line_and_exit_2(archive: str) -> None:
    code, _, err = run("diff", "--input", archive, OLD, "registry.example.com/shop/app:9.9")
    assert code == 2
    assert err.startswith("slimguard: error:")
    assert "\n" not in err
