"""The reasons an image or a rule could not be checked are one enum (``core.errors.InspectionReason``): public
strings (PolicyReports, the check JSON, metric labels), so the README's table of them is held to it here."""

from __future__ import annotations

import ast
from pathlib import Path

from slimguard.core.errors import InspectionError, InspectionReason

REPO = Path(__file__).resolve().parents[3]


def test_the_readme_table_of_reasons_is_the_enum() -> None:
    section = (REPO / "README.md").read_text().split("### Reasons\n", 1)[1].split("\n#", 1)[0]
    listed = [line.split("|")[1].strip().strip("`") for line in section.splitlines() if line.startswith("| `")]
    assert listed == [reason.value for reason in InspectionReason]


def test_every_reason_is_its_own_camel_case_word_and_the_default_is_inspection_failed() -> None:
    assert len({reason.value for reason in InspectionReason}) == len(InspectionReason)
    assert all(reason.value[0].isupper() and reason.value.isalpha() for reason in InspectionReason)
    assert InspectionError("x").reason is InspectionReason.INSPECTION_FAILED


def test_the_product_gives_reasons_from_the_enum_only() -> None:
    """No ``reason="..."`` literal is left in slimguard's code: a new reason is a member of the enum, and so a row of
    the README's table."""
    literals = []
    for path in (REPO / "operator" / "slimguard").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and any(
                keyword.arg == "reason" and isinstance(keyword.value, ast.Constant) for keyword in node.keywords
            ):
                name = getattr(node.func, "attr", getattr(node.func, "id", ""))
                if name in ("InspectionError", "error", "LayerRefused", "RefusedAddress", "labels"):
                    literals.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert literals == []
