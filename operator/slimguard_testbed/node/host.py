"""What the real node changes on this machine, written down as it is made and undone in reverse.

The node needs root-level changes no other part of the test bed makes: a bridge, routes, an nftables fence,
sysctls, iptables chains (kube-proxy's and the kubelet's), cgroups, mounts. Each change that needs undoing is
appended to a journal file *when it is made*, so a run that is killed outright is cleaned up by the next one
(``undo_leftovers``) or by ``python -m slimguard_testbed.node down``, and a stopped node leaves the host as
it found it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from slimguard_testbed.process import TestbedError, pid_alive

# Paths the kubelet and libcni create on the host whatever their configuration says (container log symlinks,
# the CNI result cache, the device-plugin socket directory): removed on stop unless they were there before.
KUBELET_HOST_PATHS = (Path("/var/log/containers"), Path("/var/lib/cni"), Path("/var/lib/kubelet"))
# The chains the kubelet creates in every table and `kube-proxy --cleanup` does not remove.
_KUBELET_CHAINS = ("KUBE-FIREWALL", "KUBE-KUBELET-CANARY", "KUBE-IPTABLES-HINT")


def run(argv: Sequence[str], *, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    """A host command; a failure names the command and what it printed."""
    result = subprocess.run(list(argv), input=input, capture_output=True, text=True, check=False, timeout=60)
    if check and result.returncode != 0:
        raise TestbedError(f"{' '.join(argv)} failed ({result.returncode}): {(result.stderr or result.stdout).strip()}")
    return result


class HostChanges:
    """A journal of undo commands (one JSON argv per line), replayed bottom-up by ``undo_all``."""

    def __init__(self, journal: Path) -> None:
        self.journal = journal

    @property
    def pending(self) -> bool:
        """True when changes were made and not undone (also those of a run that was killed)."""
        return self.journal.exists() and bool(self._entries())

    def make(self, argv: Sequence[str], *, undo: Sequence[str] | None, input: str | None = None) -> None:
        """Run ``argv``; once it succeeded, remember ``undo``."""
        run(argv, input=input)
        if undo is not None:
            self.remember(undo)

    def remember(self, undo: Sequence[str]) -> None:
        """Remember an undo command for a change made by someone else (the kubelet, kube-proxy)."""
        self.journal.parent.mkdir(parents=True, exist_ok=True)
        with self.journal.open("a") as journal:
            journal.write(json.dumps(list(undo)) + "\n")
            journal.flush()
            os.fsync(journal.fileno())

    def undo_all(self) -> list[str]:
        """Undo every remembered change, newest first; returns the undo commands that failed (and goes on)."""
        failed = []
        for undo in reversed(self._entries()):
            result = run(undo, check=False)
            if result.returncode != 0:
                failed.append(f"{' '.join(undo)}: {(result.stderr or result.stdout).strip()}")
        self.journal.unlink(missing_ok=True)
        return failed

    def restore_sysctls(self, names: Iterable[str]) -> None:
        """Give these sysctls their remembered values now (they stay remembered): for those the kubelet sets when
        it starts and never reads again."""
        wanted = set(names)
        restored: set[str] = set()
        for undo in self._entries():  # oldest first: the value from before anything changed it
            if undo[:2] == ["sysctl", "-qw"] and (name := undo[2].split("=", 1)[0]) in wanted - restored:
                run(undo)
                restored.add(name)

    def _entries(self) -> list[list[str]]:
        try:
            lines = self.journal.read_text().splitlines()
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in lines if line.strip()]


class ProcessRecord:
    """The node's processes, by PID and start time (a PID reused by another program is not ours): a run killed
    outright leaves them exiting slowly, or not at all, still bound to the node's addresses."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def remember(self, pid: int | None) -> None:
        if pid is not None and (started := _start_time(pid)) is not None:
            with self.path.open("a") as record:
                record.write(json.dumps([pid, started]) + "\n")

    def survivors(self) -> list[int]:
        try:
            lines = self.path.read_text().splitlines()
        except FileNotFoundError:
            return []
        return [pid for pid, started in map(json.loads, lines) if _start_time(pid) == started]

    def kill_survivors(self) -> None:
        """SIGKILL whatever is left, wait for it to be gone, forget them all."""
        survivors = self.survivors()
        for pid in survivors:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while any(pid_alive(pid) for pid in survivors) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.path.unlink(missing_ok=True)


def _start_time(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def read_sysctl(name: str) -> str:
    return Path("/proc/sys", *name.split(".")).read_text().strip()


def nft_tables() -> set[str]:
    """The nftables tables now, as ``family name`` strings."""
    listed = run(["nft", "list", "tables"]).stdout.splitlines()
    return {line.removeprefix("table ").strip() for line in listed if line.startswith("table ")}


def remove_kubelet_chains() -> None:
    """The kubelet's own iptables chains (ip and ip6), with the INPUT/OUTPUT jumps into KUBE-FIREWALL."""
    for tool in ("iptables", "ip6tables"):
        for table in ("filter", "nat", "mangle"):
            for hook in ("INPUT", "OUTPUT"):
                while run([tool, "-t", table, "-D", hook, "-j", "KUBE-FIREWALL"], check=False).returncode == 0:
                    pass
            for chain in _KUBELET_CHAINS:
                if run([tool, "-t", table, "-F", chain], check=False).returncode == 0:
                    run([tool, "-t", table, "-X", chain], check=False)


def remove_empty_nft_tables(*, keep: Iterable[str]) -> list[str]:
    """Delete nft tables that hold no rule and are not in ``keep`` (what was there before the node started):
    iptables-nft leaves its tables behind, empty, when the last rule goes."""
    deleted = []
    kept = set(keep)
    for table in sorted(nft_tables() - kept):
        family, name = table.split(maxsplit=1)
        listing = run(["nft", "list", "table", family, name], check=False).stdout
        rules = [
            line
            for line in listing.splitlines()
            if line.strip() and not re.match(r"\s*(table|chain|type|policy|\}|#)", line)
        ]
        if not rules and run(["nft", "delete", "table", family, name], check=False).returncode == 0:
            deleted.append(table)
    return deleted


def mounts_below(*roots: Path) -> list[str]:
    """Mount points below ``roots`` (symlinks in them resolved), sorted."""
    prefixes = tuple(f"{os.path.realpath(root)}/" for root in roots)
    # /proc/mounts escapes spaces as \040; none of our paths has one.
    targets = {line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()}
    return sorted(target for target in targets if target.startswith(prefixes))


def unmount_below(*roots: Path) -> list[str]:
    """Unmount everything mounted below ``roots``, deepest first (lazily if busy); returns what was mounted."""
    mounted = mounts_below(*roots)
    for target in reversed(mounted):
        if run(["umount", target], check=False).returncode != 0:
            run(["umount", "--lazy", target], check=False)
    return mounted


def processes_with_argument(fragment: str) -> list[int]:
    """PIDs whose command line contains ``fragment`` (the containerd shims of one containerd, by its address)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if fragment in cmdline:
            found.append(int(proc.name))
    return found


def kubepods_cgroups() -> list[Path]:
    """The kubelet's ``kubepods`` cgroup in every hierarchy (cgroupfs driver; v1 and v2 layouts)."""
    root = Path("/sys/fs/cgroup")
    candidates = [root / "kubepods", *(hierarchy / "kubepods" for hierarchy in root.iterdir() if hierarchy.is_dir())]
    return [path for path in candidates if path.is_dir()]


def kill_cgroup_members(cgroups: Iterable[Path]) -> int:
    """SIGKILL every process in these cgroups and their children (containers whose shim is gone); returns how many."""
    pids: set[int] = set()
    for cgroup in cgroups:
        for procs in cgroup.rglob("cgroup.procs"):
            try:
                pids.update(int(pid) for pid in procs.read_text().split())
            except OSError:
                continue
    for pid in pids:
        if pid_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    return len(pids)


def remove_cgroups(cgroups: Iterable[Path]) -> list[Path]:
    """rmdir each cgroup tree, deepest first; returns those still there (a process still in them)."""
    left = []
    for cgroup in cgroups:
        for directory in sorted((p for p in cgroup.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):
                directory.rmdir()
        try:
            cgroup.rmdir()
        except OSError:
            left.append(cgroup)
    return left


def host_snapshot(*, sysctls: Iterable[str], mount_roots: Iterable[Path], address: str) -> dict[str, object]:
    """What of this machine a node touches, as comparable data: links, routes, nft tables, iptables rules,
    sysctls, kubepods cgroups, mounts below ``mount_roots`` (and netns mounts), the host paths the kubelet makes,
    TCP listeners on ``address`` (a process still bound to the node's address after its bridge went)."""
    iptables = []  # rules and chain names, without the packet counters
    for tool in ("iptables-save", "ip6tables-save"):
        for line in run([tool], check=False).stdout.splitlines():
            if line.startswith("-A"):
                iptables.append(line)
            elif line.startswith((":", "*")):
                iptables.append(line.split()[0])
    return {
        "links": sorted(line.split()[0] for line in run(["ip", "-br", "link"]).stdout.splitlines()),
        "routes": sorted(run(["ip", "route", "show", "table", "all"]).stdout.splitlines()),
        "nft tables": sorted(nft_tables()),
        "iptables": iptables,
        "sysctls": {name: read_sysctl(name) for name in sysctls},
        "cgroups": [str(path) for path in kubepods_cgroups()],
        "mounts": mounts_below(*mount_roots, Path("/run/netns"), Path("/var/run/netns")),
        "host paths": [str(path) for path in KUBELET_HOST_PATHS if path.exists()],
        "listeners": tcp_listeners(address),
    }


def tcp_listeners(address: str) -> list[int]:
    """The TCP ports something listens on at this IPv4 address (from /proc/net/tcp)."""
    wanted = socket.inet_aton(address)[::-1].hex().upper()  # /proc/net/tcp writes addresses little-endian
    ports = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, state = fields[1], fields[3]
        ip, port = local.split(":")
        if state == "0A" and ip == wanted:  # 0A: LISTEN
            ports.append(int(port, 16))
    return sorted(ports)


__all__ = [
    "KUBELET_HOST_PATHS",
    "HostChanges",
    "ProcessRecord",
    "host_snapshot",
    "kill_cgroup_members",
    "kubepods_cgroups",
    "mounts_below",
    "nft_tables",
    "processes_with_argument",
    "read_sysctl",
    "remove_cgroups",
    "remove_empty_nft_tables",
    "remove_kubelet_chains",
    "run",
    "unmount_below",
]
