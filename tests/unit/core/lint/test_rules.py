"""slimguard lint: each SG1xx rule flags the lesson's mistake, passes the fix, and can be waived inline."""

from __future__ import annotations

import pytest

from slimguard.core.lint import RULES, UnparsableDockerfile, lint, lint_exit_status, parse_dockerfile

IGNORE_ALL = ".git\n.env\nnode_modules\n"


def rules_of(text: str, *, dockerignore: str | None = IGNORE_ALL, **build_args: str) -> list[str]:
    parsed = parse_dockerfile(text, path="Dockerfile", dockerignore=dockerignore, build_args=build_args)
    return [finding.rule.id for finding in lint(parsed)]


SLIM = """\
FROM node:20-bookworm@sha256:{d} AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci
COPY . .
RUN npm run build

FROM gcr.io/distroless/nodejs20-debian12@sha256:{d}
COPY --from=build /src/dist /app
USER 10001
CMD ["/app/server.js"]
""".format(d="a" * 64)


def test_the_multi_stage_build_on_a_distroless_base_has_no_finding() -> None:
    assert rules_of(SLIM) == []


def test_rule_ids_are_stable_and_each_has_a_hint() -> None:
    assert [rule.id for rule in RULES] == [f"SG10{n}" for n in range(1, 10)]
    assert all(rule.hint and rule.summary and rule.level in ("error", "warning") for rule in RULES)


def test_sg101_single_stage_on_a_full_os_base_resolving_arg_defaults_and_build_args() -> None:
    text = "ARG BASE=node:20-bookworm\nFROM ${BASE}\nUSER 10001\n"
    assert "SG101" in rules_of(text)
    assert "SG101" not in rules_of(text, BASE="node:20-alpine")
    assert "SG101" not in rules_of("FROM python:3.12-slim\nUSER 10001\n")
    assert "SG101" not in rules_of("FROM registry.example.com/team/base:1\nUSER 10001\n")  # unknown: not guessed


def test_sg102_final_stage_on_a_full_base() -> None:
    text = "FROM golang:1.23 AS build\nRUN go build\nFROM debian:bookworm\nCOPY --from=build /app /app\nUSER 1\n"
    assert "SG102" in rules_of(text)
    assert "SG102" not in rules_of(text.replace("debian:bookworm", "debian:bookworm-slim"))


def test_sg103_compilers_or_package_managers_in_the_final_stage_only() -> None:
    final = "FROM alpine:3.20\nRUN apk add --no-cache gcc musl-dev\nUSER 1\n"
    assert "SG103" in rules_of(final)
    build_stage = "FROM alpine:3.20 AS b\nRUN apk add --no-cache gcc\nFROM alpine:3.20\nCOPY --from=b /x /x\nUSER 1\n"
    assert "SG103" not in rules_of(build_stage)
    assert "SG103" in rules_of("FROM debian:12-slim\nRUN apt-get install -y python3-pip && rm -rf /var/lib/apt/lists\n")


@pytest.mark.parametrize(
    ("run", "flagged"),
    [
        ("apt-get update && apt-get install -y curl", True),
        ("apt-get update && apt-get install -y curl && rm -rf /var/lib/apt/lists/*", False),
        ("apk add curl", True),
        ("apk add --no-cache curl", False),
        ("pip install flask", True),
        ("pip install --no-cache-dir flask", False),
        ("--mount=type=cache,target=/root/.cache/pip pip install flask", False),
        ("dnf install -y curl", True),
        ("dnf install -y curl && dnf clean all", False),
    ],
)
def test_sg104_package_manager_caches_left_in_the_final_stage(run: str, flagged: bool) -> None:
    assert ("SG104" in rules_of(f"FROM debian:12-slim\nRUN {run}\nUSER 1\n")) is flagged


def test_sg104_pip_no_cache_dir_in_env_counts() -> None:
    assert "SG104" not in rules_of("FROM python:3.12-slim\nENV PIP_NO_CACHE_DIR=1\nRUN pip install flask\nUSER 1\n")


@pytest.mark.parametrize(
    ("tail", "flagged"),
    [("", True), ("USER root\n", True), ("USER 0:0\n", True), ("USER 10001\n", False), ("USER app:app\n", False)],
)
def test_sg105_no_user_or_root_in_the_final_stage(tail: str, flagged: bool) -> None:
    assert ("SG105" in rules_of(f"FROM alpine:3.20\n{tail}")) is flagged


def test_sg105_a_user_set_by_the_stage_it_builds_on_counts() -> None:
    assert "SG105" not in rules_of('FROM alpine:3.20 AS base\nUSER 10001\nFROM base\nCMD ["sh"]\n')


def test_sg106_copying_the_whole_context_before_installing_dependencies() -> None:
    assert "SG106" in rules_of("FROM node:20-alpine\nCOPY . .\nRUN npm ci\nUSER 1\n")
    assert "SG106" not in rules_of("FROM node:20-alpine\nCOPY package.json .\nRUN npm ci\nCOPY . .\nUSER 1\n")
    assert "SG106" in rules_of(
        "FROM python:3.12-slim\nCOPY . /app\nRUN pip install --no-cache-dir -r req.txt\nUSER 1\n"
    )


def test_sg107_dockerignore_missing_or_incomplete() -> None:
    text = "FROM alpine:3.20\nUSER 1\n"
    assert "SG107" in rules_of(text, dockerignore=None)
    assert "SG107" in rules_of(text, dockerignore=".git\n")
    assert "SG107" not in rules_of(text, dockerignore="**/.git\n.env*\nnode_modules/\n")
    assert "SG107" not in rules_of(text, dockerignore="*\n!src\n")
    assert "SG107" in rules_of(text, dockerignore="*\n!.env\n")  # ignored, then let back in


def test_sg108_bases_not_pinned_by_digest_but_not_stages_or_scratch() -> None:
    text = "FROM alpine:3.20 AS b\nFROM b\nFROM scratch\nCOPY --from=b /x /x\nUSER 1\n"
    parsed = parse_dockerfile(text, path="Dockerfile", dockerignore=IGNORE_ALL)
    assert [(f.rule.id, f.line) for f in lint(parsed)] == [("SG108", 1)]


@pytest.mark.parametrize(
    ("line", "flagged"),
    [
        ("ENV API_TOKEN=abc", True),
        ("ARG NPM_TOKEN", True),
        ("ENV DB_PASSWORD secret", True),
        ("ENV PASSWORD_FILE=/run/secrets/db", False),
        ("ENV TOKENIZER=fast", False),
        ("ARG PUBLIC_KEY_URL=https://example.com/key", False),
    ],
)
def test_sg109_secrets_in_env_or_arg(line: str, flagged: bool) -> None:
    assert ("SG109" in rules_of(f"FROM alpine:3.20\n{line}\nUSER 1\n")) is flagged


def test_an_inline_comment_waives_a_rule_for_the_next_instruction_only() -> None:
    text = "# slimguard ignore=SG101,SG105\nFROM node:20\n"
    assert rules_of(text) == ["SG108"]
    assert rules_of("# slimguard global ignore=SG108\nFROM alpine:3.20@sha256:" + "b" * 64 + "\nUSER 1\n") == []
    assert "SG109" in rules_of("# slimguard ignore=SG109\nFROM alpine:3.20\nUSER 1\nENV TOKEN=x\n")


def test_findings_carry_the_line_and_the_hint() -> None:
    parsed = parse_dockerfile("ARG X=1\n\nFROM node:20\n", path="app/Dockerfile", dockerignore=IGNORE_ALL)
    first = lint(parsed)[0]
    assert first.text.startswith("app/Dockerfile:3 SG101 error: single-stage build on node:20, a full OS base. ")


def test_exit_status_errors_fail_warnings_only_when_strict() -> None:
    warnings_only = lint(parse_dockerfile("FROM alpine:3.20\nUSER 1\n", path="D", dockerignore=None))
    assert {f.rule.level for f in warnings_only} == {"warning"}
    assert lint_exit_status(warnings_only) == 0
    assert lint_exit_status(warnings_only, strict=True) == 1
    assert lint_exit_status(lint(parse_dockerfile("FROM node:20\n", path="D"))) == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "Dockerfile: not a Dockerfile (no FROM instruction)"),
        ("hello world\n", "Dockerfile:1: HELLO is not a Dockerfile instruction"),
        ("RUN echo\nFROM alpine\n", "Dockerfile:1: RUN before the first FROM"),
        ("FROM\n", "Dockerfile:1: FROM names no image"),
        ("FROM a\x00b\n", "Dockerfile: not a Dockerfile (binary content)"),
    ],
)
def test_text_that_is_no_dockerfile_is_one_clear_error(text: str, message: str) -> None:
    with pytest.raises(UnparsableDockerfile) as raised:
        parse_dockerfile(text, path="Dockerfile")
    assert str(raised.value).startswith(message)
