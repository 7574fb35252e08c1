"""Layer walk: slimguard's layer walker against `gzip -dc BLOB | tar -t` on the same blobs, in one run.

The blobs are the fat image's layers as the test bed caches them (base/node:20-bookworm: the debootstrap
Debian rootfs, ~337 MB of gzip inflating to ~700 MB of tar, and the node binary's layer), read from the OCI
layout on disk, so neither side waits for a network. Each round runs both on every blob, alternating which
goes first, and measures:

- CPU seconds: `gzip` + `tar` from the children's rusage (`os.wait4`), the walker from `time.process_time()`
  around `walk_layer` (all of this process's threads). CPU is the figure the 1.5x target is judged by: the
  machine's 2 cores are shared, and wall time moves with whatever else runs;
- wall seconds, for the record.

`walk_layer` does more than `tar -t`: it verifies the blob's sha256, keeps every entry's path, size and kind,
and reads package databases whole. A third line, `sha256sum BLOB`, shows what the digest check alone costs.
Targets are reported beside the figures, never asserted: this is a benchmark, not a test.

    python -m bench.layer_walk                     # 5 rounds
    python -m bench.layer_walk --rounds 9 --json out.json
    python -m bench.layer_walk --profile /tmp/walk.svg   # py-spy flame graph of the walker alone (bench extras)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from slimguard_testbed.images import warm_fixture_cache
from slimguard_testbed.oci import Image, Layer

CHUNK = 1 << 20  # what the registry client hands the walker (httpx's stream chunks are of this order)
TARGET_RATIO = 1.5


@dataclass
class Sample:
    tool: str
    blob: str
    cpu_seconds: float
    wall_seconds: float
    entries: int


def chunks_of(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            yield chunk


def run_pipeline(argv: str, blob: Path) -> tuple[float, float, int]:
    """(CPU of every process of the shell pipeline, wall, lines printed) for `argv` with BLOB substituted."""
    started = time.perf_counter()
    process = subprocess.Popen(["bash", "-c", argv, "bench", str(blob)], stdout=subprocess.PIPE)
    assert process.stdout is not None
    lines = sum(1 for _ in process.stdout)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{argv!r} failed with {process.returncode}")
    return usage.ru_utime + usage.ru_stime, wall, lines


def run_walker(layer: Layer) -> tuple[float, float, int]:
    from slimguard.layers.walker import walk_layer

    assert layer.blob.path is not None
    cpu_started, started = time.process_time(), time.perf_counter()
    content = walk_layer(chunks_of(layer.blob.path), digest=layer.blob.digest, media_type=LAYER_MEDIA_TYPE)
    return time.process_time() - cpu_started, time.perf_counter() - started, len(content.entries)


LAYER_MEDIA_TYPE = "application/vnd.docker.image.rootfs.diff.tar.gzip"
TOOLS = {
    "gzip -dc | tar -t": 'gzip -dc "$1" | tar -t',
    "sha256sum": 'sha256sum "$1"',
}


def measure(layers: Sequence[Layer], rounds: int) -> list[Sample]:
    samples: list[Sample] = []
    for round_number in range(rounds):
        for layer in layers:
            assert layer.blob.path is not None
            order = ["walker", *TOOLS] if round_number % 2 == 0 else [*TOOLS, "walker"]
            for tool in order:
                if tool == "walker":
                    cpu, wall, entries = run_walker(layer)
                else:
                    cpu, wall, entries = run_pipeline(TOOLS[tool], layer.blob.path)
                samples.append(Sample(tool, layer.blob.digest, cpu, wall, entries))
        print(f"round {round_number + 1}/{rounds} done", file=sys.stderr)
    return samples


def summarise(samples: Sequence[Sample], layers: Sequence[Layer]) -> dict[str, object]:
    per_tool: dict[str, dict[str, float]] = {}
    rounds = len(samples) // (len(layers) * (len(TOOLS) + 1))
    for tool in ("walker", *TOOLS):
        mine = [s for s in samples if s.tool == tool]
        # One figure per round: every blob of the image, summed.
        cpu = [sum(s.cpu_seconds for s in mine[r * len(layers) : (r + 1) * len(layers)]) for r in range(rounds)]
        wall = [sum(s.wall_seconds for s in mine[r * len(layers) : (r + 1) * len(layers)]) for r in range(rounds)]
        per_tool[tool] = {
            "cpu_median": statistics.median(cpu),
            "cpu_min": min(cpu),
            "wall_median": statistics.median(wall),
            "wall_min": min(wall),
        }
    baseline = per_tool["gzip -dc | tar -t"]
    walker = per_tool["walker"]
    entries_walker = sum(s.entries for s in samples if s.tool == "walker") // max(rounds, 1)
    entries_tar = sum(s.entries for s in samples if s.tool == "gzip -dc | tar -t") // max(rounds, 1)
    return {
        "per_tool": per_tool,
        "ratio_cpu_median": walker["cpu_median"] / baseline["cpu_median"],
        "ratio_cpu_min": walker["cpu_min"] / baseline["cpu_min"],
        "ratio_wall_median": walker["wall_median"] / baseline["wall_median"],
        "entries": {"walker": entries_walker, "tar -t": entries_tar},
        "compressed_bytes": sum(layer.blob.size for layer in layers),
        "uncompressed_bytes": sum(layer.uncompressed_size for layer in layers),
    }


def profile(layers: Sequence[Layer], out: Path) -> None:
    """Re-run the walker alone under py-spy (in a child, so the profile holds nothing of the baseline)."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    # The child is this file itself with --walk-only: the walker and nothing else.
    paths = [str(layer.blob.path) for layer in layers]
    digests = [layer.blob.digest for layer in layers]
    fmt = "speedscope" if out.suffix == ".json" else "flamegraph"
    raw = out.with_suffix(".txt")
    argv = [sys.executable, __file__, "--walk-only", *(f"{d}={p}" for d, p in zip(digests, paths, strict=True))]
    subprocess.run([py_spy, "record", "-o", str(out), "-f", fmt, "-r", "200", "--", *argv], check=True)
    subprocess.run([py_spy, "record", "-o", str(raw), "-f", "raw", "-r", "200", "--", *argv], check=True)
    print(f"profile: {out} (and collapsed stacks in {raw})", file=sys.stderr)
    print(top_frames(raw), file=sys.stderr)


def top_frames(collapsed: Path, count: int = 15) -> str:
    """The functions that are on the CPU most often (self time), from py-spy's collapsed stacks."""
    self_time: dict[str, int] = {}
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, samples = line.rpartition(" ")
        if not stack:
            continue
        leaf = stack.split(";")[-1]
        self_time[leaf] = self_time.get(leaf, 0) + int(samples)
        total += int(samples)
    rows = sorted(self_time.items(), key=lambda item: -item[1])[:count]
    return "\n".join(f"{100 * n / max(total, 1):5.1f}%  {frame}" for frame, n in rows)


def walk_only(specs: Sequence[str]) -> None:
    from slimguard.layers.walker import walk_layer

    for spec in specs:
        digest, _, path = spec.partition("=")
        walk_layer(chunks_of(Path(path)), digest=digest, media_type=LAYER_MEDIA_TYPE)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path, help="write every sample and the summary here")
    parser.add_argument("--profile", type=Path, help="also profile the walker with py-spy into this file")
    parser.add_argument("--walk-only", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.walk_only is not None:
        walk_only(args.walk_only)
        return 0

    artifacts = warm_fixture_cache(log=lambda message: print(message, file=sys.stderr))
    image: Image = artifacts.node
    layers = list(image.layers)
    samples = measure(layers, args.rounds)
    summary = summarise(samples, layers)
    machine = f"{platform.node()} ({os.cpu_count()} cores, {platform.processor() or platform.machine()})"
    print(f"\nlayer walk of {image.digest} ({len(layers)} layers, {summary['compressed_bytes']:,} bytes of gzip,")
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(f"{summary['uncompressed_bytes']:,} bytes of tar), {args.rounds} rounds, {when}")
    print(f"machine: {machine}, load average {os.getloadavg()[0]:.1f}\n")
    print(f"| {'':22} | CPU s (median) | CPU s (min) | wall s (median) |")
    print(f"|{'-' * 24}|----------------|-------------|-----------------|")
    per_tool = summary["per_tool"]
    assert isinstance(per_tool, dict)
    for tool, figures in per_tool.items():
        cpu_median, cpu_min, wall_median = figures["cpu_median"], figures["cpu_min"], figures["wall_median"]
        print(f"| {tool:22} | {cpu_median:14.2f} | {cpu_min:11.2f} | {wall_median:15.2f} |")
    ratio = summary["ratio_cpu_median"]
    assert isinstance(ratio, float)
    met = "yes" if ratio <= TARGET_RATIO else "no"
    print(f"\nwalker / (gzip -dc | tar -t), CPU: {ratio:.2f}x (min/min {summary['ratio_cpu_min']:.2f}x); ", end="")
    print(f"target <= {TARGET_RATIO}x: {met}. Wall: {summary['ratio_wall_median']:.2f}x.")
    entries = summary["entries"]
    assert isinstance(entries, dict)
    print(f"entries: walker {entries['walker']:,}, tar -t {entries['tar -t']:,}")
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "samples": [asdict(s) for s in samples]}, indent=1))
    if args.profile:
        profile(layers, args.profile)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
