"""Errors a user has to act on carry their message; inspection errors also say why, for metrics and events."""

from __future__ import annotations

from slimguard.core.errors import InspectionError, InvalidPolicy, InvalidReference, SlimguardError


def test_every_user_facing_error_is_a_slimguard_error_whose_text_is_the_message() -> None:
    for error_type in (InvalidReference, InvalidPolicy, InspectionError):
        error = error_type("registry.example.com refused the pull: 401")
        assert isinstance(error, SlimguardError)
        assert str(error) == "registry.example.com refused the pull: 401"


def test_an_inspection_error_has_a_reason_defaulting_to_inspection_failed() -> None:
    assert InspectionError("boom").reason == "InspectionFailed"
    assert InspectionError("late", reason="InspectionDeadline").reason == "InspectionDeadline"
