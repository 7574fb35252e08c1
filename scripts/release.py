"""A slimguard release, built and published from one version: `make release REGISTRY=host/namespace`.

    python scripts/release.py --registry ghcr.io/slimguard              # what the tag workflow runs
    python scripts/release.py --registry 127.0.0.1:5000/slimguard --plain-http    # a local registry

The version is slimguard.__version__ (operator/slimguard/__init__.py); --version, Chart.yaml's version and
appVersion and its artifacthub.io/images tag must all say the same, or nothing is built. From it and the commit:

  OUT (dist/release/)
    slimguard-V.tar.gz, slimguard-V-py3-none-any.whl   python -m build: what PyPI gets
    slimguard-V.spdx.json                                the image's SBOM (SPDX 2.3), by syft
    slimguard-V.tgz                                      the chart, as helm package makes it
    RELEASE_NOTES.md                                     CHANGELOG.md's section for V
    release.json, SHA256SUMS                             what was pushed where, by digest
  REGISTRY/slimguard:V              the image: docker build of ./Dockerfile with its OCI labels, pushed
  oci://REGISTRY/charts/slimguard   the chart (version V), pushed with helm; its values name that image by the
                                    digest the push returned, so `helm install ... --version V` runs exactly it

Reproducible, with SOURCE_DATE_EPOCH (default: the commit's time) where the tools honour it:
- the wheel: byte for byte (bdist_wheel clamps its zip times to SOURCE_DATE_EPOCH);
- the sdist and the chart archive: byte for byte, once rewritten here with every time, owner and the gzip
  header set from SOURCE_DATE_EPOCH (neither setuptools nor helm does it: they write the build's time);
- the chart in the registry: the same manifest digest for the same archive (helm push takes the
  org.opencontainers.image.created annotation from the archive's modification time, set to SOURCE_DATE_EPOCH);
- the SBOM: the same for the same image (its creation time and namespace are set here from the version, the
  commit time and the image digest; syft writes the time of the scan and a random namespace);
- the image: NOT bit for bit. Its labels (created is the commit's time) and its runtime base (pulled once,
  then built FROM it by digest) are fixed, but its layers hold the build's file times, and the builder stage's
  Debian base and the wheels pip resolves are what the mirrors serve that day. Two builds of one commit carry the
  same slimguard and labels under different digests; the chart and the SBOM of a release name the digest it
  pushed. Under BuildKit (where buildx is installed, as on GitHub's runners) SOURCE_DATE_EPOCH is passed too, for
  the config's own times; that path is not exercised here (the test bed's dockerd 20.10 has no buildx).

Credentials: none are handled here. `docker login REGISTRY-HOST` first (helm push reads docker's credentials).
"""

from __future__ import annotations

import argparse
import datetime
import functools
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
VERSION_FILE = REPO / "operator" / "slimguard" / "__init__.py"
CHART = REPO / "deploy" / "helm" / "slimguard"
CHANGELOG = REPO / "CHANGELOG.md"
DEFAULT_RUNTIME = "gcr.io/distroless/python3-debian12:nonroot"  # the Dockerfile's RUNTIME default
PUBLISHED_REPOSITORY = "ghcr.io/slimguard/slimguard"  # what the chart in the repository names
# The tools' versions: the ones scripts/bootstrap.sh builds (syft is also the test bed's anchor, anchors.py).
SYFT_VERSION = os.environ.get("SYFT_VERSION", "v1.57.1")
SYFT_PACKAGE = "github.com/anchore/syft/cmd/syft"
# Keep a Changelog's kinds of change, as ArtifactHub's artifacthub.io/changes names them.
CHANGE_KINDS = {
    "Added": "added",
    "Changed": "changed",
    "Deprecated": "deprecated",
    "Removed": "removed",
    "Fixed": "fixed",
    "Security": "security",
}
SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z.-]+)?$")


class ReleaseError(Exception):
    """What stops a release, said in one line (the script prints it and exits 2)."""


def say(message: str) -> None:
    print(f"==> {message}", file=sys.stderr, flush=True)


def run(
    argv: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    cwd: Path = REPO,
    quiet: bool = False,
    stream: bool = False,
) -> str:
    """Run a command; its stdout, or a ReleaseError with the end of its output. ``stream``: its output goes to
    stderr as it comes (a long build shows its progress) and is not returned."""
    if not quiet:
        say("$ " + " ".join(argv))
    if stream:
        streamed = subprocess.run(list(argv), stdout=sys.stderr, stderr=sys.stderr, env=env, cwd=cwd, check=False)
        if streamed.returncode != 0:
            raise ReleaseError(f"{argv[0]} {argv[1]} failed ({streamed.returncode}); its output is above")
        return ""
    result = subprocess.run(list(argv), capture_output=True, text=True, env=env, cwd=cwd, check=False)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-40:])
        raise ReleaseError(f"{argv[0]} {argv[1] if len(argv) > 1 else ''} failed ({result.returncode}):\n{tail}")
    return result.stdout


# -- the one version and what must agree with it ------------------------------------------------------------


def source_version() -> str:
    match = re.search(r'^__version__ = "([^"]+)"$', VERSION_FILE.read_text(), re.MULTILINE)
    if not match:
        raise ReleaseError(f'no __version__ = "..." line in {VERSION_FILE.relative_to(REPO)}')
    return match[1]


def check_versions(version: str, *, chart: Path = CHART) -> None:
    """Everything that names the version names the same one."""
    if not SEMVER.match(version):
        raise ReleaseError(f"version {version!r} is not semantic (x.y.z, optionally -pre)")
    meta = yaml.safe_load((chart / "Chart.yaml").read_text())
    wrong = [
        f"Chart.yaml {key} is {meta.get(key)!r}" for key in ("version", "appVersion") if str(meta.get(key)) != version
    ]
    images = yaml.safe_load((meta.get("annotations") or {}).get("artifacthub.io/images") or "[]")
    wanted = f"{PUBLISHED_REPOSITORY}:{version}"
    if [image.get("image") for image in images] != [wanted]:
        wrong.append(f"Chart.yaml artifacthub.io/images names {[i.get('image') for i in images]}, not [{wanted!r}]")
    if wrong:
        raise ReleaseError(f"slimguard.__version__ is {version}, but " + "; ".join(wrong))


@dataclass(frozen=True)
class Source:
    """The commit a release is built from."""

    revision: str  # the commit, with -dirty when tracked files differ from it
    epoch: int  # SOURCE_DATE_EPOCH: the environment's, else the commit's time

    @property
    def created(self) -> str:
        return datetime.datetime.fromtimestamp(self.epoch, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    @property
    def dirty(self) -> bool:
        return self.revision.endswith("-dirty")


def source() -> Source:
    git = ["git", "-C", str(REPO)]
    commit = run([*git, "rev-parse", "HEAD"], quiet=True).strip()
    dirty = bool(run([*git, "status", "--porcelain", "--untracked-files=no"], quiet=True).strip())
    epoch = os.environ.get("SOURCE_DATE_EPOCH") or run([*git, "log", "-1", "--format=%ct"], quiet=True).strip()
    return Source(revision=commit + ("-dirty" if dirty else ""), epoch=int(epoch))


def check_tagged(version: str, src: Source) -> None:
    """A release from a tag: the tree is the commit, and the tag v<version> points at it."""
    untracked = run(["git", "-C", str(REPO), "status", "--porcelain"], quiet=True).strip()
    if src.dirty or untracked:
        raise ReleaseError(
            "the working tree differs from HEAD (git status --porcelain lists it): a tagged release is built from "
            "the commit alone, and an untracked file under operator/ would go into the sdist"
        )
    tags = run(["git", "-C", str(REPO), "tag", "--points-at", "HEAD"], quiet=True).split()
    if f"v{version}" not in tags:
        raise ReleaseError(f"HEAD is not tagged v{version} (its tags: {', '.join(tags) or 'none'})")


# -- release notes from CHANGELOG.md -----------------------------------------------------------------------


@dataclass(frozen=True)
class Notes:
    heading: str  # "## [0.1.0] - 2027-01-15"
    body: str  # the section's text under its heading
    dated: bool

    def changes(self) -> list[dict[str, str]]:
        """The section's entries as ArtifactHub's artifacthub.io/changes lists them: kind and one line each."""
        changes: list[dict[str, str]] = []
        kind: str | None = None
        entry: list[str] = []

        def flush() -> None:
            if kind and entry:
                changes.append({"kind": kind, "description": " ".join(entry)})
            entry.clear()

        for line in self.body.splitlines():
            if line.startswith("### "):
                flush()
                kind = CHANGE_KINDS.get(line[4:].strip())
            elif line.startswith("- "):
                flush()
                entry.append(line[2:].strip())
            elif line.startswith("  ") and entry:
                entry.append(line.strip())
            elif not line.strip():
                continue
        flush()
        return changes


def release_notes(version: str, changelog: str) -> Notes:
    """CHANGELOG.md's section `## [version] ...`, up to the next `## ` heading or the link references."""
    lines = changelog.splitlines()
    starts = [n for n, line in enumerate(lines) if line.startswith(f"## [{version}]")]
    if not starts:
        raise ReleaseError(f"CHANGELOG.md has no section '## [{version}]': move the Unreleased entries into one")
    start = starts[0]
    end = next(
        (n for n in range(start + 1, len(lines)) if lines[n].startswith("## ") or re.match(r"^\[[^\]]+\]: ", lines[n])),
        len(lines),
    )
    heading = lines[start]
    body = "\n".join(lines[start + 1 : end]).strip("\n")
    dated = re.fullmatch(rf"## \[{re.escape(version)}\] - \d{{4}}-\d{{2}}-\d{{2}}", heading) is not None
    return Notes(heading=heading, body=body, dated=dated)


# -- reproducible archives -------------------------------------------------------------------------------


def normalise_tar_gz(path: Path, epoch: int) -> None:
    """Rewrite a .tar.gz with every member's time set to ``epoch``, owner root with no names, the same order and
    modes, and a gzip header that holds ``epoch`` and no file name: the bytes then depend on the content alone."""
    members: list[tuple[tarfile.TarInfo, bytes | None]] = []
    with tarfile.open(path, "r:gz") as archive:
        for member in archive.getmembers():
            extracted = archive.extractfile(member) if member.isfile() else None
            members.append((member, extracted.read() if extracted else None))
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as out:
        for member, data in members:
            member.mtime = epoch
            member.uid = member.gid = 0
            member.uname = member.gname = ""
            member.pax_headers = {}
            out.addfile(member, io.BytesIO(data) if data is not None else None)
    with path.open("wb") as raw, gzip.GzipFile(filename="", fileobj=raw, mode="wb", compresslevel=9, mtime=epoch) as gz:
        gz.write(buffer.getvalue())
    os.utime(path, (epoch, epoch))


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# -- the steps -----------------------------------------------------------------------------------------


@dataclass
class Options:
    registry: str
    version: str
    out: Path
    push: bool = True
    tagged: bool = False
    build_isolation: bool = True
    runtime: str = DEFAULT_RUNTIME
    pull_runtime: bool = True
    build_args: list[str] = field(default_factory=list)
    network: str | None = None
    plain_http: bool = False
    ca_file: str | None = None

    @property
    def image_repository(self) -> str:
        return f"{self.registry}/slimguard"

    @property
    def image_tag(self) -> str:
        return f"{self.image_repository}:{self.version}"

    @property
    def chart_repository(self) -> str:
        return f"oci://{self.registry}/charts"


def build_python(options: Options, src: Source) -> list[Path]:
    """python -m build: the sdist, then the wheel from it; the sdist normalised (see the module's docstring)."""
    outdir = options.out
    for old in [*outdir.glob("slimguard-*.tar.gz"), *outdir.glob("slimguard-*.whl")]:
        old.unlink()
    isolation = [] if options.build_isolation else ["--no-isolation"]
    env = {**os.environ, "SOURCE_DATE_EPOCH": str(src.epoch)}
    run([sys.executable, "-m", "build", *isolation, "--outdir", str(outdir), str(REPO)], env=env)
    sdist, wheel = (
        outdir / f"slimguard-{options.version}.tar.gz",
        outdir / f"slimguard-{options.version}-py3-none-any.whl",
    )
    for path in (sdist, wheel):
        if not path.is_file():
            raise ReleaseError(f"python -m build made no {path.name}")
    normalise_tar_gz(sdist, src.epoch)
    return [sdist, wheel]


def image_build_args(version: str, src: Source) -> dict[str, str]:
    """The label arguments of the Dockerfile that come from the version and the commit."""
    return {"VERSION": version, "REVISION": src.revision, "CREATED": src.created}


@functools.cache
def buildkit() -> bool:
    """Whether docker builds with BuildKit: where buildx is installed (the workflow's runners)."""
    if os.environ.get("DOCKER_BUILDKIT") == "0":
        return False
    return subprocess.run(["docker", "buildx", "version"], capture_output=True, check=False).returncode == 0


def _docker_env() -> dict[str, str]:
    """docker's environment: without buildx, the classic builder (docker refuses a BuildKit build it cannot do)."""
    env = dict(os.environ)
    if not buildkit():
        env["DOCKER_BUILDKIT"] = "0"
    return env


def resolve_runtime(options: Options, env: dict[str, str]) -> tuple[str, str]:
    """The runtime base as the image will name it: (name, digest), pulled once to learn the digest; the image is
    then built FROM name@digest, so the label names exactly the base it was built on."""
    name, _, pinned = options.runtime.partition("@")
    if pinned:
        return name, pinned
    if options.pull_runtime:
        run(["docker", "pull", "--quiet", options.runtime], env=env)
    digests = json.loads(run(["docker", "image", "inspect", "--format", "{{json .RepoDigests}}", name], env=env))
    repository = name.rsplit(":", 1)[0] if ":" in name.rsplit("/", 1)[-1] else name
    for entry in digests or []:
        entry_repository, _, digest = entry.partition("@")
        if _same_repository(entry_repository, repository):
            return name, digest
    raise ReleaseError(f"the runtime base {name} has no digest from a registry (RepoDigests: {digests})")


def _same_repository(a: str, b: str) -> bool:
    def full(name: str) -> str:
        first = name.split("/", 1)[0]
        if "/" not in name or ("." not in first and ":" not in first and first != "localhost"):
            name = "docker.io/" + (name if "/" in name else "library/" + name)
        return name

    return full(a) == full(b)


@dataclass(frozen=True)
class PushedImage:
    reference: str  # REGISTRY/slimguard:V
    digest: str
    labels: dict[str, str]
    base: str


def build_and_push_image(options: Options, src: Source) -> PushedImage:
    env = _docker_env()
    base_name, base_digest = resolve_runtime(options, env)
    args = {
        **image_build_args(options.version, src),
        "RUNTIME": f"{base_name}@{base_digest}",
        "BASE_NAME": base_name,
        "BASE_DIGEST": base_digest,
    }
    argv = ["docker", "build", "--file", str(REPO / "Dockerfile"), "--tag", options.image_tag]
    for key, value in args.items():
        argv += ["--build-arg", f"{key}={value}"]
    if buildkit():
        # BuildKit (>= 0.11) sets the image config's and history's times from it; the classic builder has no use
        # for it. Not in the build stage's arguments: its pip steps would miss the cache at every commit.
        argv += ["--build-arg", f"SOURCE_DATE_EPOCH={src.epoch}"]
    else:
        say("docker buildx is not installed: the classic builder builds the image (the config holds its own times)")
    for extra in options.build_args:
        argv += ["--build-arg", extra]
    if options.network:
        argv += ["--network", options.network]
    run([*argv, str(REPO)], env=env, stream=True)
    labels = json.loads(
        run(["docker", "image", "inspect", "--format", "{{json .Config.Labels}}", options.image_tag], env=env)
    )
    digest = ""
    if options.push:
        pushed = run(["docker", "push", options.image_tag], env=env)
        match = re.search(r"digest: (sha256:[0-9a-f]{64})", pushed)
        if not match:
            raise ReleaseError(f"docker push printed no digest:\n{pushed[-2000:]}")
        digest = match[1]
    return PushedImage(reference=options.image_tag, digest=digest, labels=labels, base=f"{base_name}@{base_digest}")


def tool(name: str, script: str, *args: str) -> str:
    """A tool from $NAME (e.g. $HELM), else built once by the repository's script (which returns at once when its
    build is cached in ~/.cache/slimguard)."""
    given = os.environ.get(name.upper())
    if given:
        return given
    return run(["bash", str(REPO / "scripts" / script), *args], quiet=True).strip().splitlines()[-1]


def write_sbom(options: Options, src: Source, image: PushedImage) -> tuple[Path, dict[str, int]]:
    """syft over `docker save` of the image: SPDX 2.3 JSON; returns it and its package count per purl type."""
    syft = tool("syft", "build-go-tool.sh", "syft", SYFT_PACKAGE, SYFT_VERSION)
    sbom = options.out / f"slimguard-{options.version}.spdx.json"
    with tempfile.TemporaryDirectory(prefix="slimguard-sbom-") as work:
        archive = Path(work) / "image.tar"
        run(["docker", "save", "--output", str(archive), options.image_tag], env=_docker_env())
        # A home of its own: no config of the machine's user is read, and syft never checks for updates.
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": work, "TMPDIR": work,
               "SYFT_CHECK_FOR_APP_UPDATE": "false"}  # fmt: skip
        run(
            [syft, "scan", f"docker-archive:{archive}", "--quiet", "--source-name", "slimguard",
             "--source-version", options.version, "--output", f"spdx-json={sbom}"],
            env=env,
        )  # fmt: skip
    document = json.loads(sbom.read_text())
    # What syft leaves to chance: the scan's time, a random namespace, and its own version when built without
    # its release ldflags (`syft-[not provided]`). Set from the release, so one image gives one SBOM.
    subject = image.digest or image.labels.get("org.opencontainers.image.revision", "")
    document["documentNamespace"] = (
        f"https://github.com/slimguard/slimguard/releases/v{options.version}/sbom/{subject or 'unpushed'}"
    )
    info = document.setdefault("creationInfo", {})
    info["created"] = src.created
    info["creators"] = [
        f"Tool: syft-{SYFT_VERSION}" if creator.startswith("Tool: syft") else creator
        for creator in info.get("creators", [])
    ]
    sbom.write_text(json.dumps(document, indent=1, sort_keys=True) + "\n")
    counts: Counter[str] = Counter()
    for package in document.get("packages", []):
        for ref in package.get("externalRefs", []):
            if ref.get("referenceType") == "purl":
                counts[ref["referenceLocator"].split(":", 1)[1].split("/", 1)[0]] += 1
                break
    return sbom, dict(sorted(counts.items()))


def _set_to(value: str) -> Callable[[re.Match[str]], str]:
    """A substitution keeping the matched key (group 1), its value then ``value`` as a YAML (JSON) string."""
    return lambda match: f"{match[1]} {json.dumps(value)}"


def stage_chart(options: Options, notes: Notes, image: PushedImage, into: Path) -> Path:
    """The chart as published: its values name the pushed image (repository and digest), and Chart.yaml's
    ArtifactHub annotations name it and this version's changes."""
    staged = into / "slimguard"
    shutil.copytree(CHART, staged)
    values = staged / "values.yaml"
    text = values.read_text()
    replacements = {"repository": options.image_repository, "digest": image.digest}
    for key, value in replacements.items():
        # Only the top-level image: block's keys (two-space indent, directly under `image:`); comments stay.
        pattern = re.compile(rf"^(image:\n(?:(?:  .*|#.*|[ \t]*)\n)*?  {key}:) .*$", re.MULTILINE)
        text, count = pattern.subn(_set_to(value), text)
        if count != 1:
            raise ReleaseError(f"values.yaml: no image.{key} line to set")
    values.write_text(text)
    chart_yaml = staged / "Chart.yaml"
    meta = yaml.safe_load(chart_yaml.read_text())
    annotations = meta.setdefault("annotations", {})
    annotations["artifacthub.io/images"] = yaml.safe_dump(
        [{"name": "slimguard", "image": options.image_tag}], sort_keys=False
    )
    annotations["artifacthub.io/changes"] = yaml.safe_dump(notes.changes(), sort_keys=False, width=1000)
    annotations["artifacthub.io/prerelease"] = "true" if "-" in options.version else "false"
    chart_yaml.write_text(yaml.safe_dump(meta, sort_keys=False, width=1000))
    return staged


@dataclass(frozen=True)
class PushedChart:
    reference: str
    digest: str
    archive: Path


def package_and_push_chart(options: Options, src: Source, notes: Notes, image: PushedImage) -> PushedChart:
    helm = tool("helm", "build-helm.sh")
    with tempfile.TemporaryDirectory(prefix="slimguard-chart-") as work:
        staged = stage_chart(options, notes, image, Path(work))
        run([helm, "lint", "--strict", str(staged)])
        run([helm, "package", str(staged), "--destination", str(options.out),
             "--version", options.version, "--app-version", options.version])  # fmt: skip
    archive = options.out / f"slimguard-{options.version}.tgz"
    normalise_tar_gz(archive, src.epoch)  # also its mtime, which helm push takes as the created annotation
    reference = f"{options.chart_repository}/slimguard:{options.version}"
    if not options.push:
        return PushedChart(reference=reference, digest="", archive=archive)
    tls = ["--plain-http"] if options.plain_http else ["--ca-file", options.ca_file] if options.ca_file else []
    result = subprocess.run(
        [helm, "push", str(archive), options.chart_repository, *tls], capture_output=True, text=True, check=False
    )
    say(f"$ helm push {archive.name} {options.chart_repository}")
    if result.returncode != 0:
        raise ReleaseError(f"helm push failed ({result.returncode}):\n{result.stdout}{result.stderr}")
    match = re.search(r"Digest: (sha256:[0-9a-f]{64})", result.stdout + result.stderr)
    if not match:
        raise ReleaseError(f"helm push printed no digest:\n{result.stdout}{result.stderr}")
    return PushedChart(reference=reference, digest=match[1], archive=archive)


def release(options: Options) -> dict[str, Any]:
    src = source()
    check_versions(options.version)
    notes = release_notes(options.version, CHANGELOG.read_text())
    if options.tagged:
        check_tagged(options.version, src)
        if not notes.dated:
            raise ReleaseError(
                f"CHANGELOG.md's heading {notes.heading!r} has no date: '## [{options.version}] - YYYY-MM-DD'"
            )
    if src.dirty:
        say(f"the working tree differs from {src.revision[:12]}: the image's revision label says -dirty")
    options.out.mkdir(parents=True, exist_ok=True)
    (options.out / "RELEASE_NOTES.md").write_text(notes.body + "\n")
    say(f"slimguard {options.version} from {src.revision} (SOURCE_DATE_EPOCH={src.epoch}, {src.created})")
    python = build_python(options, src)
    image = build_and_push_image(options, src)
    sbom, sbom_counts = write_sbom(options, src, image)
    chart = package_and_push_chart(options, src, notes, image)
    files = [*python, sbom, chart.archive, options.out / "RELEASE_NOTES.md"]
    summary: dict[str, Any] = {
        "version": options.version,
        "revision": src.revision,
        "sourceDateEpoch": src.epoch,
        "created": src.created,
        "image": {"reference": image.reference, "digest": image.digest, "base": image.base, "labels": image.labels},
        "chart": {"reference": chart.reference, "digest": chart.digest, "archive": chart.archive.name},
        "sbom": {"file": sbom.name, "format": "spdx-json", "packages": sbom_counts},
        "files": {path.name: sha256_of(path) for path in files},
    }
    (options.out / "release.json").write_text(json.dumps(summary, indent=2) + "\n")
    (options.out / "SHA256SUMS").write_text("".join(f"{sha}  {name}\n" for name, sha in summary["files"].items()))
    pushed = f"{image.reference}@{image.digest} and {chart.reference} ({chart.digest})" if options.push else "nothing"
    say(f"released slimguard {options.version}: pushed {pushed}; files in {options.out}")
    return summary


# -- the command line ----------------------------------------------------------------------------------


COMMANDS = {
    "all": "build everything and push the image and the chart (the default)",
    "dist": "only the sdist and the wheel, printed with their sha256",
    "image-args": "print the Dockerfile's label arguments as JSON (the test bed's build of the image takes them)",
    "notes": "print the release notes: CHANGELOG.md's section for the version",
}


def parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scripts/release.py",
        description=__doc__.split("\n", 1)[0],
        epilog="; ".join(f"{name}: {what}" for name, what in COMMANDS.items()),
    )
    parser.add_argument("command", nargs="?", default="all", choices=COMMANDS)
    parser.add_argument("--version", help="must equal slimguard.__version__ (default: it); a leading v is dropped")
    parser.add_argument(
        "--registry",
        default="ghcr.io/slimguard",
        help="host/namespace: the image goes to REGISTRY/slimguard, the chart to oci://REGISTRY/charts",
    )
    parser.add_argument("--out", type=Path, default=REPO / "dist" / "release", help="where the files go")
    parser.add_argument(
        "--tagged",
        action="store_true",
        help="a release from a tag: a clean tree, the tag v<version> at HEAD, a dated CHANGELOG section",
    )
    parser.add_argument("--no-push", action="store_true", help="build everything, push nothing")
    parser.add_argument("--no-build-isolation", action="store_true", help="python -m build --no-isolation")
    parser.add_argument("--runtime", default=DEFAULT_RUNTIME, help="the runtime base (the Dockerfile's RUNTIME)")
    parser.add_argument("--no-pull-runtime", action="store_true", help="take the runtime base already in the engine")
    parser.add_argument("--build-arg", action="append", default=[], help="more docker build arguments (KEY=VALUE)")
    parser.add_argument("--network", help="docker build --network (e.g. host, for a package index on loopback)")
    parser.add_argument("--plain-http", action="store_true", help="helm push over plain HTTP (a local registry)")
    parser.add_argument("--ca-file", help="helm push trusts this CA bundle (a registry with its own CA)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    try:
        version = source_version()
        if args.version and args.version.removeprefix("v") != version:
            raise ReleaseError(
                f"VERSION={args.version}, but slimguard.__version__ is {version}: one version, one place"
            )
        if args.command == "image-args":
            print(json.dumps(image_build_args(version, source())))
            return 0
        if args.command == "notes":
            print(release_notes(version, CHANGELOG.read_text()).body)
            return 0
        options = Options(
            registry=args.registry.rstrip("/"),
            version=version,
            out=args.out.resolve(),
            push=not args.no_push,
            tagged=args.tagged,
            build_isolation=not args.no_build_isolation,
            runtime=args.runtime,
            pull_runtime=not args.no_pull_runtime,
            build_args=args.build_arg,
            network=args.network,
            plain_http=args.plain_http,
            ca_file=args.ca_file,
        )
        if args.command == "dist":
            options.out.mkdir(parents=True, exist_ok=True)
            for path in build_python(options, source()):
                print(f"{sha256_of(path)}  {path}")
            return 0
        release(options)
    except ReleaseError as error:
        print(f"release: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
