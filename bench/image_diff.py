"""`slimguard diff` on the two fat fixtures: time and registry requests, in one run.

The fixtures are the test bed's cached debootstrap images: base/debian:bookworm (~337 MB compressed, one layer)
and base/node:20-bookworm (the same layer plus node's), pushed to a fresh token-authenticated registry on
127.0.0.1. `slimguard diff DEBIAN NODE -f json` runs as a user runs it, a new process each round, and the
registry's access log counts what each round asked for: manifests, config blobs, layer blobs, and the token
issuer's tokens. The target is what the issue names: manifests and configs only, 6 requests, no layer blob.
Each round's wall time includes the interpreter's start; `slimguard --version` alone is measured beside it.
Figures are reported against the target, never asserted: this is a benchmark, not a test.

    python -m bench.image_diff                    # 5 rounds (~1 min with the fixture cache warm; the push is most)
    python -m bench.image_diff --rounds 9 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench.common.processes import log, workdir
from bench.common.tables import met, table
from slimguard_testbed import CertificateAuthority, Registry
from slimguard_testbed.images import warm_fixture_cache
from slimguard_testbed.oci.push_client import IndependentRegistryClient

TARGET_REQUESTS = 6
REPO = Path(__file__).resolve().parents[1]


@dataclass
class Round:
    seconds: float
    requests: int
    by_kind: dict[str, int]
    layer_blobs: int
    config_blobs: int
    tokens: int


@dataclass
class Results:
    machine: str
    old: str
    new: str
    old_compressed: int
    new_compressed: int
    rounds: list[Round] = field(default_factory=list)
    startup_seconds: list[float] = field(default_factory=list)
    reported_delta: int | None = None


def slimguard(*argv: str, env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "slimguard.cli.main", *argv], capture_output=True, text=True, env=env, check=False
    )
    return time.perf_counter() - started, result


def run(rounds: int, work: Path) -> Results:
    artifacts = warm_fixture_cache(log=log)
    debian, node = artifacts.debian, artifacts.node
    ca = CertificateAuthority("slimguard diff bench CA")
    with Registry(storage_dir=work / "storage", ca=ca, auth="token", workdir=work / "registry") as registry:
        log(f"registry on {registry.host}; pushing the two fat fixtures (node's first layer mounted from debian's)")
        with IndependentRegistryClient(registry.endpoint) as client:
            client.push("base/debian", "bookworm", debian)
            client.push("base/node", "20-bookworm", node, mount_from=["base/debian"])
        old, new = f"{registry.host}/base/debian:bookworm", f"{registry.host}/base/node:20-bookworm"
        layers = {layer.blob.digest for image in (debian, node) for layer in image.layers}
        configs = {image.config.digest for image in (debian, node)}
        config_dir = work / "docker-config"  # no credentials of the user's: the fixtures' repositories are public
        config_dir.mkdir()
        (config_dir / "config.json").write_text("{}")
        env = {**os.environ, "PYTHONPATH": str(REPO / "operator"), "DOCKER_CONFIG": str(config_dir)}
        flags = ["--allow-loopback-registries", "--ca-file", str(registry.ca_file)]
        results = Results(
            machine=f"{platform.node()} ({os.cpu_count()} cores)",
            old=old,
            new=new,
            old_compressed=debian.size,
            new_compressed=node.size,
        )
        issuer = registry.token_issuer
        for number in range(rounds):
            seconds, _ = slimguard("--version", env=env)
            results.startup_seconds.append(seconds)
            mark, tokens = registry.mark(), issuer.token_requests if issuer else 0
            seconds, result = slimguard("diff", old, new, "-f", "json", *flags, env=env)
            if result.returncode != 0:
                raise SystemExit(f"slimguard diff failed ({result.returncode}): {result.stderr}")
            requests = [r for r in registry.requests(since=mark) if r.repository in ("base/debian", "base/node")]
            blobs = [r.path.rsplit("/", 1)[-1] for r in requests if r.kind == "blobs"]
            done = Round(
                seconds=seconds,
                requests=len(requests),
                by_kind=dict(sorted(Counter(f"{r.method} {r.kind} {r.status}" for r in requests).items())),
                layer_blobs=sum(1 for digest in blobs if digest in layers),
                config_blobs=sum(1 for digest in blobs if digest in configs),
                tokens=(issuer.token_requests if issuer else 0) - tokens,
            )
            results.rounds.append(done)
            (platform_diff,) = json.loads(result.stdout)["platforms"]
            results.reported_delta = platform_diff["compressedDelta"]
            log(f"round {number + 1}/{rounds}: {seconds:.2f} s, {done.requests} requests {done.by_kind}")
    return results


def report(results: Results) -> str:
    times = [r.seconds for r in results.rounds]
    requests = [r.requests for r in results.rounds]
    layer_blobs = max(r.layer_blobs for r in results.rounds)
    startup = statistics.median(results.startup_seconds)
    within = all(n <= TARGET_REQUESTS for n in requests) and layer_blobs == 0
    rows = [
        ["Rounds", str(len(times)), "", ""],
        [
            "Wall time per diff (s), median [min, max]",
            f"{statistics.median(times):.2f} [{min(times):.2f}, {max(times):.2f}]",
            "",
            "",
        ],
        ["`slimguard --version` alone (s), median", f"{startup:.2f}", "", ""],
        ["Registry requests per diff", ", ".join(str(n) for n in requests), f"<= {TARGET_REQUESTS}", met(within)],
        ["  of which, by method, kind and status", str(results.rounds[-1].by_kind), "", ""],
        ["  config blobs / layer blobs read", f"{results.rounds[-1].config_blobs} / {layer_blobs}", "0 layers", ""],
        ["Token requests per diff", ", ".join(str(r.tokens) for r in results.rounds), "", ""],
        [
            "Compressed size old → new (bytes), delta reported",
            f"{results.old_compressed} → {results.new_compressed}, {results.reported_delta}",
            "",
            "",
        ],
    ]
    head = f"`slimguard diff` {results.old} → {results.new} on {results.machine}"
    return head + "\n\n" + table(["Measure", "Value", "Target", "Met"], rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="diffs run, each a new process (default 5)")
    parser.add_argument("--json", type=Path, help="write every figure to this file")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (the registry's storage, logs)")
    args = parser.parse_args(argv)
    with workdir("slimguard-diff-bench-", keep=args.keep) as work:
        results = run(args.rounds, work)
    print(report(results))
    if args.json:
        args.json.write_text(json.dumps(asdict(results), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
