"""A Dockerfile as the lint rules read it: stages, instructions with their lines, inline ignores.

Parsed by dockerfile-parse (a maintained parser; given the text, it reads no file), then resolved the way the
builder resolves it: ARGs declared before the first FROM substitute into FROM lines, and a stage built FROM
an earlier stage inherits that stage's base and USER.
"""

from __future__ import annotations

import io
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field

from dockerfile_parse import DockerfileParser

from slimguard.core.errors import SlimguardError

_IGNORE_RE = re.compile(r"^\s*slimguard\s+(global\s+)?ignore\s*=\s*([A-Za-z0-9_,\s]+)$")
_VARIABLE_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?[-+]([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)")
_KNOWN_INSTRUCTIONS = {
    "ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK", "LABEL", "MAINTAINER",
    "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR",
}  # fmt: skip


class UnparsableDockerfile(SlimguardError):
    """Text that is not a Dockerfile; the message names the file and why."""


@dataclass(frozen=True, slots=True)
class Instruction:
    keyword: str
    value: str
    line: int
    """1-based, the instruction's first line."""
    ignored: frozenset[str] = frozenset()
    """Rule IDs a ``# slimguard ignore=SG1xx`` comment right above it waives."""


@dataclass(frozen=True, slots=True)
class Stage:
    index: int
    source: Instruction
    """The FROM instruction."""
    base: str
    """The base as the builder resolves it (ARG defaults and build args substituted); an earlier stage's
    name resolves to that stage's own base (see ``from_stage``)."""
    name: str | None
    from_stage: int | None
    """The index of the earlier stage this one is built FROM, if any."""
    instructions: tuple[Instruction, ...]
    """Its instructions after FROM."""

    def of(self, keyword: str) -> tuple[Instruction, ...]:
        return tuple(instruction for instruction in self.instructions if instruction.keyword == keyword)


@dataclass(frozen=True)
class Dockerfile:
    path: str
    instructions: tuple[Instruction, ...]
    stages: tuple[Stage, ...]
    global_ignores: frozenset[str] = frozenset()
    dockerignore: str | None = None
    """The text of the .dockerignore beside it; None when there is none."""
    global_args: Mapping[str, str] = field(default_factory=dict)

    @property
    def final(self) -> Stage:
        return self.stages[-1]

    def lineage(self, stage: Stage) -> tuple[Stage, ...]:
        """The stage and the earlier stages it is built FROM, itself first."""
        chain = [stage]
        while chain[-1].from_stage is not None:
            chain.append(self.stages[chain[-1].from_stage])
        return tuple(chain)


def parse_dockerfile(
    text: str, *, path: str, dockerignore: str | None = None, build_args: Mapping[str, str] | None = None
) -> Dockerfile:
    """The Dockerfile in ``text``; UnparsableDockerfile when it has no FROM or an instruction no builder knows."""
    if "\x00" in text:
        raise UnparsableDockerfile(f"{path}: not a Dockerfile (binary content)")
    parser = DockerfileParser(fileobj=io.BytesIO(text.encode()))
    instructions: list[Instruction] = []
    comments: list[str] = []
    global_ignores: set[str] = set()
    for item in parser.structure:
        keyword = str(item["instruction"]).upper()
        if keyword == "COMMENT":
            comment = str(item["value"])
            match = _IGNORE_RE.match(comment)
            if match and match.group(1):
                global_ignores |= _ids(match.group(2))
            comments.append(comment)
            continue
        if keyword not in _KNOWN_INSTRUCTIONS:
            raise UnparsableDockerfile(
                f"{path}:{int(item['startline']) + 1}: {keyword} is not a Dockerfile instruction"
            )
        ignored: set[str] = set()
        for comment in comments:
            match = _IGNORE_RE.match(comment)
            if match and not match.group(1):
                ignored |= _ids(match.group(2))
        comments = []
        instructions.append(Instruction(keyword, str(item["value"]), int(item["startline"]) + 1, frozenset(ignored)))
    args = _global_args(instructions, build_args or {})
    stages = _stages(instructions, args, path)
    return Dockerfile(path, tuple(instructions), stages, frozenset(global_ignores), dockerignore, args)


def _ids(text: str) -> set[str]:
    return {part.strip().upper() for part in text.split(",") if part.strip()}


def _global_args(instructions: list[Instruction], build_args: Mapping[str, str]) -> dict[str, str]:
    """ARGs before the first FROM, with their defaults unless a build arg overrides them."""
    args: dict[str, str] = {}
    for instruction in instructions:
        if instruction.keyword == "FROM":
            break
        if instruction.keyword == "ARG":
            for name, value in key_values(instruction.value):
                args[name] = build_args.get(name, substitute(value, args) if value is not None else "")
    return args


def _stages(instructions: list[Instruction], args: Mapping[str, str], path: str) -> tuple[Stage, ...]:
    stages: list[Stage] = []
    names: dict[str, int] = {}
    current: tuple[Instruction, str, str | None, int | None] | None = None
    body: list[Instruction] = []
    seen_from = False
    for instruction in instructions:
        if instruction.keyword != "FROM":
            if not seen_from and instruction.keyword != "ARG":
                raise UnparsableDockerfile(
                    f"{path}:{instruction.line}: {instruction.keyword} before the first FROM (only ARG may be)"
                )
            if seen_from:
                body.append(instruction)
            continue
        if current is not None:
            stages.append(Stage(len(stages), current[0], current[1], current[2], current[3], tuple(body)))
        seen_from, body = True, []
        words = [word for word in instruction.value.split() if not word.startswith("--")]
        if not words:
            raise UnparsableDockerfile(f"{path}:{instruction.line}: FROM names no image")
        reference = substitute(words[0], args)
        name = words[2].lower() if len(words) >= 3 and words[1].lower() == "as" else None
        earlier = names.get(reference.lower())
        base = stages[earlier].base if earlier is not None else reference
        current = (instruction, base, name, earlier)
        if name is not None:
            names[name] = len(stages)
    if current is None:
        raise UnparsableDockerfile(f"{path}: not a Dockerfile (no FROM instruction)")
    stages.append(Stage(len(stages), current[0], current[1], current[2], current[3], tuple(body)))
    return tuple(stages)


def substitute(text: str, variables: Mapping[str, str]) -> str:
    """``${NAME}``, ``$NAME`` and ``${NAME:-default}`` replaced as the builder does; unknown names stay."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(3)
        if name in variables and variables[name] != "":
            return variables[name]
        if match.group(2) is not None and "-" in match.group(0):
            return match.group(2)
        return variables.get(name, match.group(0))

    return _VARIABLE_RE.sub(value, text)


def key_values(text: str) -> list[tuple[str, str | None]]:
    """``A=1 B="two words"`` (or the legacy ``A value``) → [(A, 1), (B, two words)]; ``ARG X`` → [(X, None)]."""
    try:
        words = shlex.split(text, posix=True)
    except ValueError:
        words = text.split()
    if not words:
        return []
    if "=" not in words[0]:
        # ENV NAME value (the legacy form); ARG NAME (no default).
        return [(words[0], " ".join(words[1:]) if len(words) > 1 else None)]
    pairs: list[tuple[str, str | None]] = []
    for word in words:
        name, equals, value = word.partition("=")
        pairs.append((name, value if equals else None))
    return pairs
