"""``maxPackages``: how many OS packages the final file system holds (dpkg, apk, rpm)."""

from __future__ import annotations

from slimguard.core.errors import InspectionReason
from slimguard.core.evaluation.rules.blame import largest_layers
from slimguard.core.evaluation.rules.common import PolicyRule, Reads, Subject, content_or_pending, reads_contents
from slimguard.core.model.policy import Rules

HINT = (
    "Install only what the app needs at run time (apt-get install --no-install-recommends), or build in one "
    "stage and copy the result onto a slim or distroless base."
)
MAX_PACKAGES = PolicyRule(
    "maxPackages",
    summary="The OS package count is within the limit",
    description="Each required platform's final file system holds at most maxPackages OS packages (dpkg, apk, "
    "rpm), read from the layers.",
    fix=HINT,
)
RULE = MAX_PACKAGES.name


def reads(rules: Rules) -> Reads:
    return reads_contents(rules, when=rules.max_packages is not None)


def check(subject: Subject) -> None:
    limit = subject.rules.max_packages
    if limit is None:
        return
    report = subject.report
    for image in subject.images:
        content = content_or_pending(report, RULE, image)
        if content is None:
            continue
        packages = content.packages
        if packages.count is None:
            report.error(
                RULE,
                f"has OS packages slimguard cannot count ({image.platform}): {packages.unknown_reason}",
                reason=InspectionReason.UNKNOWN_PACKAGE_COUNT,
            )
            continue
        if packages.count <= limit:
            continue
        managers = "/".join(str(manager) for manager in packages.managers)
        blame = largest_layers(image, uncompressed=True)
        report.violation(
            RULE,
            f"has {packages.count} OS packages ({managers}, {image.platform}); {report.policy_name} allows "
            f"{limit}. {blame + ' ' if blame else ''}{HINT}",
            limit=str(limit),
            actual=str(packages.count),
        )
