"""AdmissionReviews carry whatever a client sent: every review gets a clear admission or denial, never a 500.

The Reviewer runs with an in-memory ClusterView and a FactsSource that answers from fixed facts or fails, so
hypothesis drives the whole decision path (normalise, match, gather, evaluate, modes) without a network.
"""

from __future__ import annotations

import asyncio
import base64
import json
import zlib
from collections.abc import Sequence
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from slimguard import metrics
from slimguard.admission.decision import Answer, Reviewer
from slimguard.core.errors import InspectionError, InvalidReference
from slimguard.core.facts.image_facts import FactsNeeds, ImageFacts, Layer, PlatformImage
from slimguard.core.facts.media_types import OCI_MANIFEST
from slimguard.core.model.kinds import WORKLOAD_KINDS
from slimguard.core.model.platform import Platform
from slimguard.core.model.reference import ImageReference
from slimguard.core.model.workload import Workload
from slimguard.engine.evaluator import Evaluator
from slimguard.engine.view import ClusterView
from slimguard.registry.credentials import Credential, decode_secret_data

from .strategies import json_values, references, scalars

MiB = 1024**2


def _image(size: int, user: str) -> ImageFacts:
    digest = "sha256:" + f"{size:x}".rjust(64, "0")
    layer = Layer(digest=digest, size=size, media_type="application/vnd.oci.image.layer.v1.tar+gzip")
    platform = PlatformImage(
        platform=Platform("linux", "amd64"),
        manifest_digest=digest,
        config_digest=digest,
        config_size=0,
        layers=(layer,),
        user=user,
    )
    return ImageFacts(digest=digest, media_type=OCI_MANIFEST, platforms=(platform,))


SLIM, FAT = _image(MiB, "10001"), _image(900 * MiB, "")


def kind_of(image: str) -> str:
    """What the fixed registry holds for ``image``: decided by its text, the same every run."""
    try:
        ImageReference.parse(image)
    except InvalidReference:
        return "invalid"
    return ("slim", "fat", "unreachable")[zlib.crc32(image.encode()) % 3]


class FixedFacts:
    """A FactsSource: slim or fat facts, or the registry unreachable, as ``kind_of`` says."""

    def cached(
        self, image: str, needs: FactsNeeds, *, credentials: Sequence[Credential]
    ) -> ImageFacts | InspectionError | None:
        return None  # always the asynchronous path, where the deadline and gather live

    async def inspect(self, image: str, needs: FactsNeeds, *, credentials: Sequence[Credential]) -> ImageFacts:
        found = kind_of(image)
        if found == "invalid":
            raise InspectionError(f"{image!r} is no reference", reason="InvalidReference")
        if found == "unreachable":
            raise InspectionError("registry is unreachable", reason="RegistryUnreachable")
        return SLIM if found == "slim" else FAT


async def _no_credentials(workload: Workload) -> list[Credential]:
    return []


def _reviewer() -> Reviewer:
    view = ClusterView()
    view.observe_policy(
        {
            "metadata": {"name": "enforce", "generation": 1},
            "spec": {"mode": "Enforce", "onUnknown": "Deny", "rules": {"maxCompressedSize": "100Mi"}},
        }
    )
    view.observe_policy(
        {"metadata": {"name": "warn", "generation": 1}, "spec": {"mode": "Warn", "rules": {"requireNonRootUser": True}}}
    )
    view.policies_synced = True
    evaluator = Evaluator(inspector=FixedFacts(), view=view, credentials=_no_credentials)
    return Reviewer(evaluator=evaluator, view=view, deadline=5.0)


def _review(request: Any) -> Answer:
    answer = asyncio.run(_reviewer().review(request))
    assert isinstance(answer.allowed, bool)
    body = json.loads(json.dumps(answer.response("uid-1")))  # what the server writes must serialise
    assert body["response"]["allowed"] is answer.allowed
    if not answer.allowed:
        assert answer.code == 403
        assert answer.message
    assert all(isinstance(warning, str) and len(warning) <= 256 for warning in answer.warnings)
    return answer


def _failures() -> float:
    return float(metrics.ADMISSION_FAILURES._value.get())


_KEYS = st.one_of(
    st.sampled_from(
        [
            "kind",
            "operation",
            "object",
            "oldObject",
            "namespace",
            "name",
            "metadata",
            "spec",
            "template",
            "jobTemplate",
            "containers",
            "initContainers",
            "ephemeralContainers",
            "image",
            "securityContext",
            "runAsUser",
            "runAsNonRoot",
            "imagePullSecrets",
            "ownerReferences",
            "controller",
            "labels",
        ]
    ),
    st.text(max_size=5),
)
anything = json_values(keys=_KEYS, leaves=st.one_of(scalars, st.sampled_from([*WORKLOAD_KINDS, "CREATE", "UPDATE"])))


@given(anything)
@example({"kind": {"kind": "Pod"}, "operation": "CREATE", "object": {"spec": {"containers": ["nginx"]}}})
@example({"kind": {"kind": "Pod"}, "operation": "CREATE", "object": {"spec": {"containers": {"a": 1}}}})
@example({"kind": "Pod", "operation": "CREATE", "object": {}})
def test_any_request_is_answered(request: Any) -> None:
    _review(request if isinstance(request, dict) else {"object": request})


images = st.one_of(references(), st.text(max_size=12))
containers = st.lists(
    st.fixed_dictionaries(
        {"name": st.text(max_size=5), "image": images},
        optional={
            "securityContext": st.fixed_dictionaries(
                {}, optional={"runAsUser": st.integers(-1, 2**31), "runAsNonRoot": st.booleans()}
            )
        },
    ),
    max_size=3,
)
pod_specs = st.fixed_dictionaries(
    {"containers": containers},
    optional={
        "initContainers": containers,
        "imagePullSecrets": st.lists(st.fixed_dictionaries({"name": st.text(max_size=4)}), max_size=2),
    },
)


def _wrapped(kind: str, pod_spec: dict[str, Any]) -> dict[str, Any]:
    if kind == "Pod":
        return pod_spec
    template = {"template": {"spec": pod_spec}}
    return {"jobTemplate": {"spec": template}} if kind == "CronJob" else template


@st.composite
def typed_reviews(draw: st.DrawFn) -> tuple[dict[str, Any], list[str]]:
    """Reviews the apiserver can send: kinds and shapes as its schema allows, any names, images and owners."""
    kind = draw(st.sampled_from(WORKLOAD_KINDS))
    pod_spec = draw(pod_specs)
    owners = draw(
        st.lists(
            st.fixed_dictionaries(
                {
                    "kind": st.sampled_from(["Deployment", "Job", "Node"]),
                    "name": st.text(max_size=4),
                    "controller": st.booleans(),
                }
            ),
            max_size=1,
        )
    )
    metadata = {"name": draw(st.text(max_size=8)), "namespace": draw(st.text(max_size=8)), "ownerReferences": owners}
    request = {
        "uid": "uid-1",
        "kind": {"group": "", "version": "v1", "kind": kind},
        "operation": draw(st.sampled_from(["CREATE", "UPDATE", "DELETE", "CONNECT"])),
        "namespace": metadata["namespace"],
        "object": {"metadata": metadata, "spec": _wrapped(kind, pod_spec)},
    }
    if request["operation"] == "UPDATE":
        request["oldObject"] = {"metadata": metadata, "spec": _wrapped(kind, draw(pod_specs))}
    every = [c["image"] for group in ("initContainers", "containers") for c in pod_spec.get(group, [])]
    return request, every


@given(typed_reviews())
def test_a_review_the_apiserver_can_send_is_decided_by_the_rules_without_an_internal_failure(
    review: tuple[dict[str, Any], list[str]],
) -> None:
    request, every = review
    before = _failures()
    answer = _review(request)
    assert _failures() == before, "a well-formed review fell into the catch-all"
    old = request.get("oldObject")
    unchanged = old is not None and json.dumps(old["spec"]) == json.dumps(request["object"]["spec"])
    if request["operation"] not in ("CREATE", "UPDATE") or unchanged:
        assert answer.allowed
        return
    kinds = {kind_of(image) for image in every}
    if kinds & {"fat", "unreachable", "invalid"} and request["operation"] == "CREATE":
        assert not answer.allowed, (every, kinds)
    if kinds <= {"slim"}:
        assert answer.allowed, answer.message


def test_a_hostile_pull_secret_does_not_turn_an_enforce_denial_into_an_unchecked_admission() -> None:
    """Found by test_fuzz_credentials: ``{"auth": 5}`` in a Secret the workload names raised TypeError, which the
    Reviewer's catch-all turned into "admitted unchecked": anyone who can write a Secret bypassed Enforce."""
    hostile = base64.b64encode(json.dumps({"auths": {"r.io": {"auth": 5}}}).encode()).decode()

    async def from_secret(workload: Workload) -> list[Credential]:
        return decode_secret_data({".dockerconfigjson": hostile})

    reviewer = _reviewer()
    reviewer.evaluator.credentials = from_secret
    fat = next(f"r.io/app:{n}" for n in range(100) if kind_of(f"r.io/app:{n}") == "fat")
    request = {
        "kind": {"kind": "Pod"},
        "operation": "CREATE",
        "namespace": "shop",
        "object": {"metadata": {"name": "api"}, "spec": {"containers": [{"name": "api", "image": fat}]}},
    }
    answer = asyncio.run(reviewer.review(request))
    assert not answer.allowed
    assert "compressed" in (answer.message or "")
