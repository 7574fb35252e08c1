"""Dockerfile lint: the lesson behind slimguard as rules with stable IDs (SG1xx), before anything is built.

``parse_dockerfile`` reads the text; ``lint`` runs every rule of ``RULES`` and drops what an inline
``# slimguard ignore=SG1xx`` comment (right above the instruction) or ``# slimguard global ignore=SG1xx`` waives.
"""

from __future__ import annotations

from dataclasses import dataclass

from slimguard.core.lint.dockerfile import Dockerfile, UnparsableDockerfile, parse_dockerfile
from slimguard.core.lint.rules import ERROR, RULES, WARNING, LintRule

RULES_BY_ID = {rule.id: rule for rule in RULES}


@dataclass(frozen=True, slots=True)
class LintFinding:
    rule: LintRule
    path: str
    line: int
    message: str

    @property
    def text(self) -> str:
        """``Dockerfile:3 SG101 error: <message>. <hint>``: one line, as compilers and hadolint print."""
        return f"{self.path}:{self.line} {self.rule.id} {self.rule.level}: {self.message}. {self.rule.hint}"


def lint(dockerfile: Dockerfile) -> tuple[LintFinding, ...]:
    findings: list[LintFinding] = []
    for rule in RULES:
        if rule.id in dockerfile.global_ignores:
            continue
        for hit in rule.check(dockerfile):
            if hit.instruction is not None and rule.id in hit.instruction.ignored:
                continue
            findings.append(LintFinding(rule, dockerfile.path, hit.line, hit.message))
    return tuple(sorted(findings, key=lambda finding: (finding.line, finding.rule.id)))


def lint_exit_status(findings: tuple[LintFinding, ...], *, strict: bool = False) -> int:
    """1 for any error-level finding (or any finding with ``strict``), else 0."""
    failing = [f for f in findings if f.rule.level == ERROR or strict]
    return 1 if failing else 0


__all__ = [
    "ERROR",
    "RULES",
    "RULES_BY_ID",
    "WARNING",
    "Dockerfile",
    "LintFinding",
    "LintRule",
    "UnparsableDockerfile",
    "lint",
    "lint_exit_status",
    "parse_dockerfile",
]
