"""``forbiddenPackages``: OS packages, by name, that must not be installed in what runs (``gcc``, ``openssh-server``).

Read from the final file system's package databases (dpkg, apk, rpm), the names ``maxPackages`` counts: a finding
per forbidden package installed, with the layer that installed it when slimguard keeps it (for the packages of a
``core.model.tools`` category, which ImageReports keep with their layer; for others it is not kept). When a package
database cannot be read, a forbidden package not found in the others is undecided, never absent.
"""

from __future__ import annotations

from slimguard.core.errors import InspectionReason
from slimguard.core.evaluation.rules.blame import layer_step
from slimguard.core.evaluation.rules.common import PolicyRule, Reads, Subject, content_or_pending, reads_contents
from slimguard.core.facts.content import ContentFacts
from slimguard.core.model.policy import Rules

HINT = (
    "Install it in a builder stage only and COPY the result into a final stage without it, or remove it "
    "(apt-get purge, apk del, dnf remove) in the RUN step that installs it."
)
FORBIDDEN_PACKAGES = PolicyRule(
    "forbiddenPackages",
    summary="No forbidden OS packages are installed",
    description="Each required platform's final file system has none of the forbiddenPackages installed, by "
    "name as its package database (dpkg, apk, rpm) lists it.",
    fix=HINT,
)
RULE = FORBIDDEN_PACKAGES.name


def reads(rules: Rules) -> Reads:
    return reads_contents(rules, when=bool(rules.forbidden_packages))


def installed_by(content: ContentFacts) -> dict[str, int]:
    """Package name → the layer that installed it, for the packages whose layer slimguard keeps."""
    return {tool.what: tool.layer_index for tool in content.tools if tool.by_package}


def check(subject: Subject) -> None:
    forbidden = subject.rules.forbidden_packages
    if not forbidden:
        return
    report = subject.report
    for image in subject.images:
        content = content_or_pending(report, RULE, image)
        if content is None:
            continue
        packages = content.packages
        installed = set(packages.names)
        layers = installed_by(content)
        for name in forbidden:
            if name not in installed:
                continue
            layer = layers.get(name)
            added = f", added by {layer_step(image, layer)}" if layer is not None else ""
            report.violation(
                RULE,
                f"has package {name} installed ({image.platform}{added}); {report.policy_name} forbids it in the "
                f"final image. {HINT}",
                limit=name,
                actual="installed",
            )
        undecided = [name for name in forbidden if name not in installed]
        if packages.count is None and undecided:
            report.error(
                RULE,
                f"has OS packages slimguard cannot list ({image.platform}), so whether {', '.join(undecided)} "
                f"{'is' if len(undecided) == 1 else 'are'} installed is unknown: {packages.unknown_reason}",
                reason=InspectionReason.UNKNOWN_PACKAGE_COUNT,
            )
