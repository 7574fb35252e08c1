"""``python -m slimguard_testbed.node up`` runs the real node until Ctrl-C (for trying things by hand);
``python -m slimguard_testbed.node down`` undoes what a node killed outright left on this machine."""

from __future__ import annotations

import argparse
import contextlib
import shutil
import signal
import sys
import tempfile
from pathlib import Path

from slimguard_testbed.node.cluster import RealNode, clean_leftovers, release_node_lock, take_node_lock
from slimguard_testbed.process import TestbedError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m slimguard_testbed.node", description=__doc__)
    parser.add_argument("command", choices=("up", "down"))
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="slimguard-node-"))
    node = RealNode(workdir=workdir)
    if args.command == "down":
        try:  # a node that runs is its own session's to stop: never undo under it
            lock = take_node_lock(node.state / "lock", timeout=0)
        except TestbedError as error:
            print(error, file=sys.stderr)
            return 1
        try:
            failed = clean_leftovers(node)
        finally:
            release_node_lock(lock)
        for line in failed:
            print(f"undo failed: {line}", file=sys.stderr)
        left = node.leftovers()
        print("clean" if not left else f"still there: {'; '.join(left)}")
        return 1 if failed or left else 0
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with node:
        print(f"node up in {node.ready_seconds:.1f}s: KUBECONFIG={node.admin_kubeconfig}")
        print(f"its registry: {node.registry.host} (CA {node.registry.ca_file})")
        print("Ctrl-C stops it and undoes every change to this machine.")
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the undo short
    shutil.rmtree(workdir, ignore_errors=True)  # kept when the stop failed: its logs say why
    return 0


if __name__ == "__main__":
    sys.exit(main())
