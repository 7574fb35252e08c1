"""Where a webhook's CPU goes, stage by stage, from py-spy's collapsed stacks (`--format raw`, one stack per line
ending in its sample count).

Each stack is read from the root to the leaf and takes the stage of the deepest frame that names one: so JSON
decoding under the server's `validate` is "parse the review", while the same decoder under kopf's watch is "kopf
watches". What names no stage is "event loop and other".
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

# (stage, frame markers): a frame names the stage when it contains one of the markers. Later rows win over earlier
# ones in the same stack only by depth: the deepest matching frame decides.
STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("HTTP and TLS (aiohttp, ssl)", ("aiohttp/", "asyncio/sslproto.py", "ssl.py", "asyncio/selector_events.py")),
    ("kopf watches (policies, namespaces)", ("kopf/",)),
    ("slimguard's own watches (reports, nodes)", ("slimguard/kube/informer.py", "slimguard/engine/report_feed.py")),
    (
        "the review: other",
        (
            "validate (slimguard/admission/server.py",
            "review (slimguard/admission/decision.py",
            "AlwaysAllow.validate (",  # bench/always_allow.py: the floor, profiled the same way
        ),
    ),
    ("normalise", ("normalise (slimguard/core/model/workload.py", "_judged (slimguard/admission/decision.py")),
    ("plan", ("plan (slimguard/core/evaluation/plan.py",)),
    ("facts lookup", ("gather (slimguard/engine/evaluator.py", "for_workload (slimguard/engine/credentials.py")),
    (
        "evaluate",
        (
            "evaluate (slimguard/core/evaluation/evaluate.py",
            "outcome_of (slimguard/core/evaluation/outcome.py",
            "decisions (slimguard/core/evaluation/enforcement.py",
            "record (slimguard/core/evaluation/enforcement.py",
        ),
    ),
    ("metrics", ("prometheus_client/",)),
)
# Library frames that mean something only under the review: the review's JSON in and out.
UNDER_THE_REVIEW: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("parse the review", ("loads (json/", "decode (json/", "read (aiohttp/web_request.py")),
    ("respond", ("json_response (aiohttp/", "dumps (json/", "response (slimguard/admission/decision.py")),
)
REVIEW_STAGES = {"the review: other"}
OTHER = "event loop and other"
IDLE_LEAVES = ("(selectors.py:", "_worker (concurrent/futures/thread.py:")
"""A stack ending here is a thread waiting (the event loop in epoll, an idle pool thread on its queue, the metrics
server's select): py-spy samples them, they cost no CPU, and they are left out."""


def stage_of(frames: Iterable[str]) -> str:
    """The stage of one stack (its frames from the root)."""
    stage = OTHER
    for frame in frames:
        if stage in REVIEW_STAGES:
            found = next((name for name, markers in UNDER_THE_REVIEW if any(m in frame for m in markers)), None)
            if found is not None:
                stage = found
                continue
        for name, markers in STAGES:
            if any(marker in frame for marker in markers):
                # aiohttp's own frames above `validate` are HTTP; under it (the handler's await), the review.
                if not (stage in REVIEW_STAGES and name.startswith("HTTP")):
                    stage = name
                break
    return stage


def stage_samples(collapsed: str) -> Counter[str]:
    """Samples per stage in a py-spy raw profile."""
    counts: Counter[str] = Counter()
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        if any(marker in stack.rpartition(";")[2] for marker in IDLE_LEAVES):
            continue
        counts[stage_of(stack.split(";"))] += int(count)
    return counts


def stage_table(collapsed: str, cpu_ms_per_review: float) -> list[tuple[str, str, str]]:
    """(stage, share of the samples, CPU ms per review at that share), largest first, and the total."""
    counts = stage_samples(collapsed)
    total = sum(counts.values())
    if not total:
        return []
    rows = [
        (stage, f"{count / total * 100:.1f} %", f"{cpu_ms_per_review * count / total:.3f}")
        for stage, count in counts.most_common()
    ]
    rows.append(("all", f"100 % ({total} samples)", f"{cpu_ms_per_review:.3f}"))
    return rows
