"""The lesson as Dockerfile rules: stable IDs (SG1xx), a level, and a fix hint each. Pure: a Dockerfile in,
hits out. IDs never change meaning; a retired rule's ID is never reused.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from slimguard.core.lint.dockerfile import Dockerfile, Instruction, Stage, key_values

ERROR, WARNING = "error", "warning"

# Images that ship a full OS userland (a package manager, a shell, compilers in the language images).
_FULL_BASES = {
    "debian", "ubuntu", "centos", "fedora", "rockylinux", "almalinux", "amazonlinux", "oraclelinux", "opensuse/leap",
    "opensuse/tumbleweed", "archlinux", "buildpack-deps", "node", "python", "golang", "ruby", "openjdk",
    "eclipse-temurin", "amazoncorretto", "maven", "gradle", "rust", "php", "perl", "elixir", "erlang", "haskell",
    "dotnet/sdk", "gcc", "swift", "julia", "r-base",
}  # fmt: skip
_SLIM_MARKERS = ("slim", "alpine", "distroless", "busybox", "scratch", "minimal", "micro", "chainguard", "wolfi")
_INSTALL_RE = re.compile(
    r"\b(?:apt-get|apt|aptitude)\s+(?:-\S+\s+)*install\b|\bapk\s+(?:-\S+\s+)*add\b|"
    r"\b(?:yum|dnf|microdnf|zypper)\s+(?:-\S+\s+)*install\b"
)
_BUILD_TOOLS = {
    "gcc", "g++", "make", "cmake", "clang", "build-essential", "build-base", "golang", "golang-go", "rustc", "cargo",
    "gfortran", "automake", "autoconf", "libtool", "pkg-config", "pkgconf", "musl-dev", "libc6-dev", "gcc-c++",
}  # fmt: skip
_PACKAGE_MANAGERS = {"python3-pip", "py3-pip", "python-pip", "npm", "yarn", "pnpm", "composer", "maven", "gradle"}
_DEPENDENCY_INSTALL_RE = re.compile(
    r"\bnpm\s+(?:ci|install|i)\b|\byarn(?:\s+install)?\s*(?:$|&&|;)|\bpnpm\s+install\b|"
    r"\bpip3?\s+install\s+(?:\S+\s+)*-r\b|\bpython3?\s+-m\s+pip\s+install\s+(?:\S+\s+)*-r\b|\bpoetry\s+install\b|"
    r"\bpipenv\s+install\b|\bbundle\s+install\b|\bgo\s+mod\s+download\b|\bcomposer\s+install\b|"
    r"\bmvn\b.*\bdependency:|\bcargo\s+fetch\b"
)
_SECRET_NAME_RE = re.compile(
    r"(?:^|_)(?:API_?KEY|ACCESS_?KEY|SECRET|SECRETS|TOKEN|PASSWORD|PASSWD|PWD|PASS|PRIVATE_?KEY|CREDENTIALS?|AUTH)(?:_|$)",
    re.IGNORECASE,
)
_NOT_SECRET_RE = re.compile(r"(?:_FILE|_PATH|_DIR|_URL|_NAME|_USER|_USERNAME)$|PUBLIC", re.IGNORECASE)
DOCKERIGNORE_MUST = (".git", ".env", "node_modules")


@dataclass(frozen=True, slots=True)
class Hit:
    line: int
    message: str
    instruction: Instruction | None = None
    """The instruction whose ``# slimguard ignore=`` comment may waive it."""


@dataclass(frozen=True, slots=True)
class LintRule:
    id: str
    name: str
    level: str
    summary: str
    hint: str
    check: Callable[[Dockerfile], Iterable[Hit]]


# --- what a base is -------------------------------------------------------------------------------------


def _repository_and_tag(reference: str) -> tuple[str, str]:
    text = reference.lower().split("@", 1)[0]
    parts = text.split("/")
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        parts = parts[1:]
    if parts and parts[0] == "library":
        parts = parts[1:]
    path = "/".join(parts)
    name, _, tag = path.rpartition(":") if ":" in path else (path, "", "")
    return name, tag


def is_slim_base(reference: str) -> bool:
    if reference.lower() == "scratch":
        return True
    name, tag = _repository_and_tag(reference)
    return any(marker in f"{name}:{tag}" for marker in _SLIM_MARKERS)


def is_full_os_base(reference: str) -> bool:
    """A base known to ship a full OS (debian, ubuntu, node:20, python:3.12…) and no slim variant of it.

    A base slimguard does not know (``registry.example.com/team/base``, an unresolved ``${BASE}``) is not
    called full: the rules flag what they know, and the policy's base rules check the built image.
    """
    if "$" in reference or is_slim_base(reference):
        return False
    name, _ = _repository_and_tag(reference)
    return name in _FULL_BASES or any(name.endswith(f"/{full}") for full in _FULL_BASES)


# --- the checks -----------------------------------------------------------------------------------------


def _single_stage_full_base(dockerfile: Dockerfile) -> Iterable[Hit]:
    if len(dockerfile.stages) == 1 and is_full_os_base(dockerfile.final.base):
        stage = dockerfile.final
        yield Hit(stage.source.line, f"single-stage build on {stage.base}, a full OS base", stage.source)


def _final_stage_full_base(dockerfile: Dockerfile) -> Iterable[Hit]:
    if len(dockerfile.stages) > 1 and is_full_os_base(dockerfile.final.base):
        stage = dockerfile.final
        yield Hit(
            stage.source.line,
            f"the final stage is built on {stage.base}, which is not a slim, alpine or distroless base",
            stage.source,
        )


def _runs(stage: Stage) -> tuple[Instruction, ...]:
    return stage.of("RUN")


def _installed_packages(command: str) -> set[str]:
    """The package names after each install command of a RUN (options skipped)."""
    found: set[str] = set()
    for match in _INSTALL_RE.finditer(command):
        rest = re.split(r"&&|\|\||;|\|", command[match.end() :], maxsplit=1)[0]
        found |= {word.split("=")[0] for word in rest.split() if not word.startswith("-") and word != "\\"}
    return found


def _final_stage_build_tools(dockerfile: Dockerfile) -> Iterable[Hit]:
    for run in _runs(dockerfile.final):
        packages = _installed_packages(run.value)
        tools = sorted(packages & _BUILD_TOOLS)
        managers = sorted(packages & _PACKAGE_MANAGERS)
        if tools or managers:
            what = ", ".join(tools + managers)
            kind = (
                "compilers or build tools"
                if tools and not managers
                else "package managers"
                if not tools
                else ("build tools and package managers")
            )
            yield Hit(run.line, f"the final stage installs {kind} ({what})", run)


def _stage_env(dockerfile: Dockerfile, stage: Stage) -> dict[str, str]:
    env: dict[str, str] = {}
    for member in reversed(dockerfile.lineage(stage)):
        for instruction in member.instructions:
            if instruction.keyword in ("ENV", "ARG"):
                env.update({name: value or "" for name, value in key_values(instruction.value)})
    return env


def _caches_left(dockerfile: Dockerfile) -> Iterable[Hit]:
    stage = dockerfile.final
    env = _stage_env(dockerfile, stage)
    pip_cache_off = bool(env.get("PIP_NO_CACHE_DIR"))  # pip reads any value as "no cache"
    for run in _runs(stage):
        command = run.value
        if "--mount=type=cache" in command:
            continue  # a cache mount is never part of the layer
        left: list[str] = []
        if re.search(r"\b(?:apt-get|apt)\s+(?:-\S+\s+)*install\b", command) and "/var/lib/apt/lists" not in command:
            left.append("apt's package lists (add && rm -rf /var/lib/apt/lists/*)")
        if (
            re.search(r"\bapk\s+(?:-\S+\s+)*add\b", command)
            and "--no-cache" not in command
            and "/var/cache/apk" not in command
        ):
            left.append("apk's cache (use apk add --no-cache)")
        if re.search(r"\b(?:yum|dnf|microdnf)\s+(?:-\S+\s+)*install\b", command) and not re.search(
            r"\b(?:yum|dnf|microdnf)\s+clean\s+all\b|/var/cache/(?:yum|dnf)", command
        ):
            left.append("the yum/dnf cache (add && dnf clean all)")
        if (
            re.search(r"\bpip3?\s+install\b|\bpip\s+install\b", command)
            and "--no-cache-dir" not in command
            and not pip_cache_off
            and ".cache/pip" not in command
        ):
            left.append("pip's cache (use pip install --no-cache-dir)")
        if re.search(r"\bnpm\s+(?:ci|install|i)\b", command) and "npm cache clean" not in command:
            left.append("npm's cache (add && npm cache clean --force)")
        if left:
            yield Hit(run.line, f"leaves {', '.join(left)} in the final image", run)


def _user_of(dockerfile: Dockerfile, stage: Stage) -> tuple[str | None, Instruction | None]:
    """The last USER of the stage or the stages it is built FROM."""
    for member in dockerfile.lineage(stage):
        users = member.of("USER")
        if users:
            return users[-1].value.strip(), users[-1]
    return None, None


def _root_user(dockerfile: Dockerfile) -> Iterable[Hit]:
    stage = dockerfile.final
    user, instruction = _user_of(dockerfile, stage)
    if user is None:
        yield Hit(stage.source.line, "the final stage sets no USER, so the container runs as root", stage.source)
        return
    name = user.split(":", 1)[0].strip()
    if name in ("root", "") or (name.isdigit() and int(name) == 0):
        assert instruction is not None
        yield Hit(instruction.line, f"the final stage runs as {user!r} (root)", instruction)


def _copies_context(instruction: Instruction) -> bool:
    words = [word for word in instruction.value.split() if not word.startswith("--")]
    return len(words) >= 2 and any(source in (".", "./", "*") for source in words[:-1])


def _copy_before_dependencies(dockerfile: Dockerfile) -> Iterable[Hit]:
    for stage in dockerfile.stages:
        copied: Instruction | None = None
        for instruction in stage.instructions:
            if (
                instruction.keyword in ("COPY", "ADD")
                and "--from" not in instruction.value
                and _copies_context(instruction)
            ):
                copied = copied or instruction
            elif (
                instruction.keyword == "RUN" and copied is not None and _DEPENDENCY_INSTALL_RE.search(instruction.value)
            ):
                yield Hit(
                    copied.line,
                    f"{copied.keyword} {copied.value} copies the whole context before dependencies are installed "
                    f"(line {instruction.line}), so any source change reinstalls them",
                    copied,
                )
                break


def _ignored_by(patterns: list[tuple[bool, str]], name: str) -> bool:
    ignored = False
    for negated, pattern in patterns:
        if _pattern_matches(pattern, name):
            ignored = not negated
    return ignored


def _pattern_matches(pattern: str, name: str) -> bool:
    pattern = pattern.strip("/").removeprefix("./")
    if pattern in ("*", "**", "**/*"):
        return True
    candidates = (pattern, pattern.removeprefix("**/"))
    return any(fnmatch.fnmatchcase(name, candidate) for candidate in candidates)


def _dockerignore(dockerfile: Dockerfile) -> Iterable[Hit]:
    first = dockerfile.instructions[0] if dockerfile.instructions else None
    if dockerfile.dockerignore is None:
        yield Hit(1, "there is no .dockerignore beside it, so the whole directory is sent to the build", first)
        return
    patterns = [
        (line.startswith("!"), line.removeprefix("!").strip())
        for raw in dockerfile.dockerignore.splitlines()
        if (line := raw.strip()) and not line.startswith("#")
    ]
    missing = [name for name in DOCKERIGNORE_MUST if not _ignored_by(patterns, name)]
    if missing:
        yield Hit(1, f".dockerignore does not exclude {', '.join(missing)}", first)


def _unpinned_bases(dockerfile: Dockerfile) -> Iterable[Hit]:
    for stage in dockerfile.stages:
        if stage.from_stage is not None or stage.base.lower() == "scratch" or "@sha256:" in stage.base:
            continue
        yield Hit(stage.source.line, f"the base {stage.base} is not pinned by digest", stage.source)


def _secrets(dockerfile: Dockerfile) -> Iterable[Hit]:
    for instruction in dockerfile.instructions:
        if instruction.keyword not in ("ENV", "ARG"):
            continue
        for name, value in key_values(instruction.value):
            if not _SECRET_NAME_RE.search(name) or _NOT_SECRET_RE.search(name):
                continue
            if instruction.keyword == "ENV" and not value:
                continue
            yield Hit(
                instruction.line,
                f"{instruction.keyword} {name} looks like a secret; it is stored in the image's config and history",
                instruction,
            )


RULES: tuple[LintRule, ...] = (
    LintRule(
        "SG101", "single-stage-full-base", ERROR,
        "Single-stage build on a full OS base",
        "Build in a first stage and copy only the result into a slim, alpine or distroless final stage.",
        _single_stage_full_base,
    ),
    LintRule(
        "SG102", "final-stage-full-base", ERROR,
        "Final stage on a base that is not slim, alpine or distroless",
        "Use a slim, alpine or distroless base for the final stage (e.g. node:20-alpine, "
        "gcr.io/distroless/nodejs20-debian12).",
        _final_stage_full_base,
    ),
    LintRule(
        "SG103", "final-stage-build-tools", ERROR,
        "Compilers or package managers installed in the final stage",
        "Install build tools in a build stage and COPY --from it only what the application runs.",
        _final_stage_build_tools,
    ),
    LintRule(
        "SG104", "package-manager-cache", WARNING,
        "Package-manager caches left behind",
        "Clean the cache in the same RUN that fills it (a later RUN cannot shrink an earlier layer).",
        _caches_left,
    ),
    LintRule(
        "SG105", "root-user", ERROR,
        "No USER, or a root user, in the final stage",
        "Add USER 10001 (a numeric, non-root user, so runAsNonRoot can verify it) to the final stage.",
        _root_user,
    ),
    LintRule(
        "SG106", "copy-context-before-dependencies", WARNING,
        "COPY . . before installing dependencies",
        "Copy the dependency manifests first (package.json, requirements.txt…), install, then copy the rest.",
        _copy_before_dependencies,
    ),
    LintRule(
        "SG107", "dockerignore", WARNING,
        "No .dockerignore, or one missing node_modules, .git or .env",
        "Add a .dockerignore beside the Dockerfile that excludes at least .git, .env and node_modules.",
        _dockerignore,
    ),
    LintRule(
        "SG108", "unpinned-base", WARNING,
        "Base image not pinned by digest",
        "Pin the base by digest (FROM image:tag@sha256:...) so a rebuild cannot change it silently.",
        _unpinned_bases,
    ),
    LintRule(
        "SG109", "secret-in-env-or-arg", ERROR,
        "A secret in ENV or ARG",
        "Pass secrets with RUN --mount=type=secret; ENV and ARG values stay in the image for anyone to read.",
        _secrets,
    ),
)  # fmt: skip
"""Every rule, by ID. Errors fail ``slimguard lint`` (exit 1); warnings only with ``--strict``."""
