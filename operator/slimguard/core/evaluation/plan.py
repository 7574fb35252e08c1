"""One plan per decision: which policies select which containers, and all that evaluation will read.

``plan`` matches the policies to the workload once. Everything downstream takes the plan instead of matching
again: the engine fetches what it says (one needs object per image, the bases, the reports, the base versions),
evaluation checks the containers it selected, and the controller reads its selection afterwards (hints per
digest, exemption wake-ups, PolicyReports). Each rule declares what it reads (``core.evaluation.rules``,
``Reads``); the plan unites the declarations per policy and per image, so what is fetched and what is checked
never disagree.

It also decides which platforms a policy that lists none measures (``core.model.placement``): those the
cluster's Ready nodes run, as the decision's caller knows them, narrowed by the pod's pin. Each selected policy is
handed down judging those, so every rule, the facts read and the slimmer-base hints agree on them.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

from slimguard.core.evaluation.matching import selected_containers
from slimguard.core.evaluation.rules import NOTHING, RULES, Reads
from slimguard.core.facts.image_facts import FactsNeeds
from slimguard.core.model.placement import WITHOUT_NODES, JudgedPlatforms, judged_platforms
from slimguard.core.model.platform import Platform
from slimguard.core.model.policy import ImagePolicy, Rules
from slimguard.core.model.workload import Container, Workload

_KNOWN_READS: dict[int, tuple[Rules, Reads]] = {}
"""``reads_of`` per rules object (held, so its id cannot be reused): asking every rule on every decision was a
quarter of an admission review's own CPU (bench/README.md, issue 29). Bounded: emptied when full."""
_KNOWN_READS_MAX = 1024


def reads_of(rules: Rules) -> Reads:
    """What ``rules`` read: the union of every rule's declaration."""
    known = _KNOWN_READS.get(id(rules))
    if known is not None and known[0] is rules:
        return known[1]
    found = NOTHING
    for rule in RULES:
        found = found | rule.reads(rules)
    if len(_KNOWN_READS) >= _KNOWN_READS_MAX:
        _KNOWN_READS.clear()
    _KNOWN_READS[id(rules)] = (rules, found)
    return found


def needs_of(rules: Rules) -> FactsNeeds | None:
    """What ``rules`` read about an image: the union of every rule's needs; None when none reads a registry."""
    return reads_of(rules).facts


def policy_reads(policy: ImagePolicy) -> Reads:
    """What a policy reads: its rules', and the bases its slimmer-base hints (``slimmerBases``) are found from."""
    found = reads_of(policy.spec.rules)
    return found | Reads(bases=True) if policy.spec.slimmer_bases is not None else found


def base_candidates(policies: Sequence[ImagePolicy]) -> tuple[str, ...]:
    """The concrete base references every policy names, read for layer comparison when something reads bases
    (a base rule, requireCurrentBase, slimmer-base hints).

    The references are pooled: a base one policy names identifies an image for another policy's rule too.
    """
    if not any(policy_reads(policy).bases for policy in policies):
        return ()
    return tuple(dict.fromkeys(reference for policy in policies for reference in policy.base_image_candidates))


@dataclass(frozen=True, slots=True)
class Selected:
    """One policy, the containers of the workload it checks (matched and not excluded), and what it reads.

    ``policy`` judges the plan's platforms when its rules list none (``ImagePolicy.judged_on``)."""

    policy: ImagePolicy
    containers: tuple[Container, ...]
    reads: Reads


@dataclass(frozen=True)
class Plan:
    """A workload, the policies that select it and what evaluating them reads; made by ``plan``, read by all."""

    workload: Workload
    selection: tuple[Selected, ...] = ()
    """Every policy that selects at least one container, in the order the policies were given."""
    needs: Mapping[str, FactsNeeds] = field(default_factory=dict)
    """Per image, what to read about it: one needs object, united across the policies that select it. An image
    no selecting policy reads a registry for is absent."""
    bases: tuple[str, ...] = ()
    """The base references to read for layer comparison, pooled across the selecting policies; none when no
    image is read or nothing reads bases."""
    reads: Reads = NOTHING
    """All that the selecting policies read, united: whether bases, base versions and reports are gathered."""
    policies_by_image: Mapping[str, tuple[ImagePolicy, ...]] = field(default_factory=dict)
    """Per image, the policies that select a container running it (what base lookups are asked for)."""
    platforms: JudgedPlatforms = WITHOUT_NODES
    """What the policies that list no ``platforms`` judge, and why: the nodes', the pin's, or the default."""

    @property
    def policies(self) -> tuple[ImagePolicy, ...]:
        return tuple(selected.policy for selected in self.selection)

    @property
    def base_needs(self) -> FactsNeeds:
        """What to read about each base: every platform any image is read on (a base is compared per platform)."""
        return FactsNeeds(frozenset().union(*(need.platforms for need in self.needs.values())))


def plan(
    policies: Sequence[ImagePolicy],
    workload: Workload,
    namespace_labels: Mapping[str, str],
    *,
    node_platforms: Collection[Platform] = (),
) -> Plan:
    """Match ``policies`` to ``workload`` (in a namespace with these labels) once, and say what to read.

    ``node_platforms``: the platforms the cluster's Ready nodes run (none known: outside a cluster, or before
    the watch has told any), which a policy listing no ``platforms`` judges.
    """
    judged = judged_platforms(workload.platform_pin, frozenset(node_platforms))
    selection: list[Selected] = []
    needs: dict[str, FactsNeeds] = {}
    by_image: dict[str, tuple[ImagePolicy, ...]] = {}
    everything = NOTHING
    for given in policies:
        containers = selected_containers(given, workload, namespace_labels)
        if not containers:
            continue
        policy = given.judged_on(judged.platforms)
        reads = policy_reads(policy)
        selection.append(Selected(policy, containers, reads))
        everything = everything | reads
        for container in containers:
            if reads.facts is not None:
                before = needs.get(container.image)
                needs[container.image] = reads.facts if before is None else before | reads.facts
            selecting = by_image.get(container.image, ())
            if policy not in selecting:
                by_image[container.image] = (*selecting, policy)
    chosen = [selected.policy for selected in selection]
    return Plan(
        workload=workload,
        selection=tuple(selection),
        needs=needs,
        bases=base_candidates(chosen) if needs else (),
        reads=everything,
        policies_by_image=by_image,
        platforms=judged,
    )


__all__ = ["Plan", "Selected", "base_candidates", "needs_of", "plan", "policy_reads", "reads_of"]
