"""maxPackages, forbiddenTools, forbiddenPackages, minEfficiency and maxWastedBytes: what they read, what they say,
what they need."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from slimguard.core.errors import InvalidPolicy
from slimguard.core.evaluation.plan import needs_of
from slimguard.core.evaluation.rules.blame import short_command
from slimguard.core.evaluation.verdict import Finding, FindingKind, Verdict
from slimguard.core.facts.content import ContentFacts, FoundTool, PackageCount, PackageManager
from slimguard.core.facts.image_facts import ImageFacts
from slimguard.core.model.policy import ImagePolicy

from .builders import APP, MiB, facts, layer, platform_image, policy, verdict

SUBJECT = f'container "app": image {APP}'

DEBIAN = "# debian.sh --arch 'amd64' out/ 'bookworm' '@1700000000'"
INSTALL = "RUN /bin/sh -c apt-get update && apt-get install -y gcc make # buildkit"


def rules(**given: Any) -> ImagePolicy:
    return policy("slim", rules=given)


def findings(result: Verdict) -> list[Finding]:
    return list(result.findings)


def image_with(content: ContentFacts | None, *commands: str, sizes: tuple[int, ...] = ()) -> ImageFacts:
    commands = commands or (DEBIAN, INSTALL)
    chosen = tuple(
        replace(layer(f"l{n}", sizes[n] if n < len(sizes) else MiB), created_by=by) for n, by in enumerate(commands)
    )
    return facts(replace(platform_image(*chosen), content=content))


def content(
    *,
    count: int | None = 40,
    names: tuple[str, ...] = (),
    tools: tuple[FoundTool, ...] = (),
    executables: tuple[tuple[str, int], ...] = (),
    efficiency: float = 1.0,
    wasted: int = 0,
    reason: str | None = None,
) -> ContentFacts:
    return ContentFacts(
        packages=PackageCount(count, (PackageManager.DPKG,), names, unknown_reason=reason),
        tools=tools,
        executables=executables,
        efficiency=efficiency,
        wasted_bytes=wasted,
        file_count=100,
    )


def run(policy_: ImagePolicy, image: ImageFacts) -> list[Finding]:
    return findings(verdict(policy_, facts_by_image={APP: image}))


# --- needs -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "given",
    [
        {"maxPackages": 100},
        {"forbiddenTools": ["compilers"]},
        {"forbiddenPackages": ["gcc"]},
        {"minEfficiency": 0.9},
        {"maxWastedBytes": "20Mi"},
    ],
)
def test_every_content_rule_needs_the_layers_read(given: dict[str, Any]) -> None:
    need = needs_of(rules(**given).spec.rules)
    assert need is not None
    assert need.content


def test_rules_that_are_not_about_content_never_read_layers() -> None:
    need = needs_of(rules(maxCompressedSize="200Mi", maxLayers=10, requireNonRootUser=True).spec.rules)
    assert need is not None
    assert not need.content


# --- maxPackages ---------------------------------------------------------------------------------------------


def test_too_many_packages_names_the_count_the_limit_and_the_largest_layers() -> None:
    image = image_with(content(count=173), sizes=(90 * MiB, 4 * MiB))
    (finding,) = run(rules(maxPackages=100), image)
    assert finding.message == (
        f'{SUBJECT} has 173 OS packages (dpkg, linux/amd64); ImagePolicy "slim" allows 100. Largest layers: '
        f"layer 1/2 adds 180 MiB: {DEBIAN}; layer 2/2 adds 8 MiB: RUN apt-get update && apt-get install -y gcc "
        "make. Install only what the app needs at run time (apt-get install --no-install-recommends), or build in "
        "one stage and copy the result onto a slim or distroless base."
    )
    assert (finding.rule, finding.limit, finding.actual, finding.kind) == (
        "maxPackages",
        "100",
        "173",
        FindingKind.VIOLATION,
    )


def test_packages_at_the_limit_pass() -> None:
    assert run(rules(maxPackages=100), image_with(content(count=100))) == []


def test_an_unknown_package_count_is_an_error_of_its_own_never_a_pass() -> None:
    reason = "the rpm database /var/lib/rpm/Packages is in BerkeleyDB format, which slimguard cannot read"
    (finding,) = run(rules(maxPackages=100), image_with(content(count=None, reason=reason)))
    assert finding.kind is FindingKind.ERROR
    assert finding.reason == "UnknownPackageCount"
    assert reason in finding.message


@pytest.mark.parametrize(
    "given",
    [
        {"maxPackages": 1},
        {"forbiddenTools": ["shells"]},
        {"forbiddenPackages": ["gcc"]},
        {"minEfficiency": 0.5},
        {"maxWastedBytes": 0},
    ],
)
def test_content_not_read_yet_is_a_pending_error_for_each_content_rule(given: dict[str, Any]) -> None:
    (finding,) = run(rules(**given), image_with(None))
    assert (finding.kind, finding.reason) == (FindingKind.ERROR, "ContentPending")
    assert "controller is reading its layers" in finding.message
    assert "ImageReport is on its way" in finding.message


# --- forbiddenTools ----------------------------------------------------------------------------------------


GCC_TOOLS = (
    FoundTool("compilers", "usr/bin/gcc", by_package=False, layer_index=1),
    FoundTool("compilers", "usr/bin/x86_64-linux-gnu-gcc-12", by_package=False, layer_index=1),
    FoundTool("compilers", "usr/bin/make", by_package=False, layer_index=1),
    FoundTool("compilers", "usr/bin/ld", by_package=False, layer_index=0),
    FoundTool("compilers", "gcc-12", by_package=True, layer_index=1),
    FoundTool("compilers", "gcc", by_package=True, layer_index=1),
    FoundTool("compilers", "make", by_package=True, layer_index=1),
    FoundTool("shells", "bin/bash", by_package=False, layer_index=0),
)


def test_a_forbidden_category_names_what_was_found_by_layer_with_its_instruction() -> None:
    (finding,) = run(rules(forbiddenTools=["compilers"]), image_with(content(tools=GCC_TOOLS)))
    assert finding.message == (
        f"{SUBJECT} has compilers (linux/amd64): layer 2/2 (RUN apt-get update && apt-get install -y gcc make) "
        "adds packages gcc, make, gcc-12 and /usr/bin/gcc, /usr/bin/make, /usr/bin/x86_64-linux-gnu-gcc-12; "
        f"layer 1/2 ({DEBIAN}) adds /usr/bin/ld; "
        'ImagePolicy "slim" forbids compilers in the final image. Build in a builder stage and COPY only the '
        "result into a final stage that has none of them."
    )
    assert (finding.rule, finding.limit, finding.actual) == ("forbiddenTools", "compilers", "7")


def test_each_forbidden_entry_is_a_finding_of_its_own_and_absent_categories_say_nothing() -> None:
    found = run(rules(forbiddenTools=["compilers", "shells", "vcs"]), image_with(content(tools=GCC_TOOLS)))
    assert [finding.limit for finding in found] == ["compilers", "shells"]


def test_a_path_glob_matches_the_final_executables() -> None:
    executables = (("usr/local/bin/node", 1), ("usr/local/bin/npm", 1), ("usr/bin/env", 0))
    (finding,) = run(rules(forbiddenTools=["/usr/local/bin/n*"]), image_with(content(executables=executables)))
    assert "has files matching /usr/local/bin/n* (linux/amd64)" in finding.message
    assert "adds /usr/local/bin/node, /usr/local/bin/npm;" in finding.message


def test_long_lists_are_cut_with_a_count() -> None:
    many = tuple(FoundTool("shells", f"usr/bin/sh{n}", by_package=False, layer_index=0) for n in range(10))
    (finding,) = run(rules(forbiddenTools=["shells"]), image_with(content(tools=many)))
    assert "(+6 more)" in finding.message


def test_an_image_without_forbidden_tools_passes() -> None:
    assert run(rules(forbiddenTools=["compilers", "/opt/*"]), image_with(content())) == []


@pytest.mark.parametrize("entry", ["compiler", "gcc", " ", "usr bin/x"])
def test_an_entry_that_is_neither_a_category_nor_a_path_glob_is_an_invalid_policy(entry: str) -> None:
    with pytest.raises(InvalidPolicy, match=r"spec\.rules\.forbiddenTools: .*neither a tool category"):
        rules(forbiddenTools=[entry])


# --- forbiddenPackages -------------------------------------------------------------------------------------

INSTALLED = ("base-files", "bash", "gcc-12", "gcc", "openssh-server", "libc6")
PACKAGE_FIX = (
    "Install it in a builder stage only and COPY the result into a final stage without it, or remove it "
    "(apt-get purge, apk del, dnf remove) in the RUN step that installs it."
)


def test_a_forbidden_package_installed_names_the_package_the_layer_that_installed_it_and_the_fix() -> None:
    (finding,) = run(rules(forbiddenPackages=["gcc"]), image_with(content(names=INSTALLED, tools=GCC_TOOLS)))
    assert finding.message == (
        f"{SUBJECT} has package gcc installed (linux/amd64, added by layer 2/2 (RUN apt-get update && apt-get "
        f'install -y gcc make)); ImagePolicy "slim" forbids it in the final image. {PACKAGE_FIX}'
    )
    assert (finding.rule, finding.kind, finding.limit, finding.actual) == (
        "forbiddenPackages",
        FindingKind.VIOLATION,
        "gcc",
        "installed",
    )


def test_a_package_whose_layer_slimguard_does_not_keep_is_named_without_one() -> None:
    (finding,) = run(rules(forbiddenPackages=["openssh-server"]), image_with(content(names=INSTALLED)))
    assert finding.message.startswith(f"{SUBJECT} has package openssh-server installed (linux/amd64); ")


def test_each_forbidden_package_installed_is_a_finding_of_its_own_and_absent_ones_say_nothing() -> None:
    policy_ = rules(forbiddenPackages=["openssh-server", "curl", "gcc", "telnet"])
    found = run(policy_, image_with(content(names=INSTALLED, tools=GCC_TOOLS)))
    assert [(finding.rule, finding.limit) for finding in found] == [
        ("forbiddenPackages", "openssh-server"),
        ("forbiddenPackages", "gcc"),
    ]


def test_names_match_exactly_as_the_database_lists_them() -> None:
    # gcc-12 is installed, gcc is not: a name is not a prefix, and case counts (rpm's names have capitals).
    assert run(rules(forbiddenPackages=["gcc", "GCC-12", "gcc-1"]), image_with(content(names=("gcc-12",)))) == []


def test_an_image_without_forbidden_packages_passes() -> None:
    assert run(rules(forbiddenPackages=["openssh-server"]), image_with(content(names=("base-files", "libc6")))) == []


def test_an_unreadable_package_database_leaves_the_packages_not_found_undecided_never_absent() -> None:
    reason = "the rpm database /var/lib/rpm/Packages is in BerkeleyDB format, which slimguard cannot read"
    image = image_with(content(count=None, names=INSTALLED, reason=reason))
    violation, error = run(rules(forbiddenPackages=["gcc", "telnet", "curl"]), image)
    assert (violation.kind, violation.limit) == (FindingKind.VIOLATION, "gcc")
    assert (error.rule, error.kind, error.reason) == ("forbiddenPackages", FindingKind.ERROR, "UnknownPackageCount")
    assert error.message == (
        f"{SUBJECT} has OS packages slimguard cannot list (linux/amd64), so whether telnet, curl are installed is "
        f"unknown: {reason}"
    )


@pytest.mark.parametrize("name", ["openssh server", "gcc*", "-gcc", "", "usr/bin/gcc"])
def test_an_entry_that_is_not_a_package_name_is_an_invalid_policy(name: str) -> None:
    with pytest.raises(InvalidPolicy, match=r"spec\.rules\.forbiddenPackages: .*is not an OS package name"):
        rules(forbiddenPackages=["gcc", name])


def test_an_empty_list_of_forbidden_packages_sets_no_rule() -> None:
    with pytest.raises(InvalidPolicy, match="rules must set at least one rule"):
        rules(forbiddenPackages=[])


# --- minEfficiency and maxWastedBytes ------------------------------------------------------------------


def test_low_efficiency_is_a_violation_in_dives_terms() -> None:
    (finding,) = run(rules(minEfficiency=0.95), image_with(content(efficiency=0.9012, wasted=50 * MiB)))
    assert finding.message.startswith(
        f'{SUBJECT} is 90.12% efficient as dive counts it (50 MiB wasted, linux/amd64); ImagePolicy "slim" '
        "requires at least 95%. Delete what a step downloads or builds in that same RUN step"
    )
    assert (finding.limit, finding.actual) == ("95%", "90.12%")


def test_an_efficiency_just_short_of_the_limit_never_reads_as_the_limit() -> None:
    (finding,) = run(rules(minEfficiency=1), image_with(content(efficiency=0.99999)))
    assert finding.actual == "99.99%"


def test_too_many_wasted_bytes_is_a_violation() -> None:
    (finding,) = run(rules(maxWastedBytes="20Mi"), image_with(content(wasted=50 * MiB)))
    assert "wastes 50 MiB as dive counts it" in finding.message
    assert (finding.rule, finding.limit, finding.actual, finding.excess_bytes) == (
        "maxWastedBytes",
        "20 MiB",
        "50 MiB",
        30 * MiB,
    )
    assert run(rules(maxWastedBytes="50Mi"), image_with(content(wasted=50 * MiB))) == []


def test_no_waste_at_all_can_be_demanded() -> None:
    assert len(run(rules(maxWastedBytes=0), image_with(content(wasted=1)))) == 1


@pytest.mark.parametrize(
    ("given", "field"),
    [
        ({"minEfficiency": 1.5}, "minEfficiency"),
        ({"minEfficiency": -0.1}, "minEfficiency"),
        ({"maxWastedBytes": "-1"}, "maxWastedBytes"),
        ({"maxWastedBytes": "10m"}, "maxWastedBytes"),
        ({"maxPackages": -1}, "maxPackages"),
    ],
)
def test_out_of_range_content_limits_are_invalid(given: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidPolicy, match=rf"spec\.rules\.{field}"):
        rules(**given)


# --- layer blame -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("created_by", "shown"),
    [
        ("/bin/sh -c #(nop) COPY file:abc in /app ", "COPY file:abc in /app"),
        ("/bin/sh -c apt-get install -y gcc", "RUN apt-get install -y gcc"),
        ("RUN /bin/sh -c apt-get install -y gcc # buildkit", "RUN apt-get install -y gcc"),
        ("RUN |2 VERSION=1 MODE=x /bin/sh -c make   install # buildkit", "RUN make install"),
        ("COPY /out /app # buildkit", "COPY /out /app"),
        (None, "(no build history)"),
        ("RUN " + "x" * 200, "RUN " + "x" * 75 + "…"),
    ],
)
def test_instructions_are_shown_as_the_dockerfile_says_them(created_by: str | None, shown: str) -> None:
    assert short_command(created_by) == shown
