"""Strategies shared by the fuzz tests: the distribution reference grammar, and JSON-ish values of any shape."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

# --- the reference grammar of github.com/distribution/reference (regexp.go), as generators -----------------

_ALNUM = "abcdefghijklmnopqrstuvwxyz0123456789"
domain_component = st.from_regex(r"[a-zA-Z0-9]([a-zA-Z0-9-]{0,8}[a-zA-Z0-9])?", fullmatch=True)
port = st.integers(min_value=1, max_value=65535).map(str)
domain = st.one_of(
    st.builds(lambda parts: ".".join(parts), st.lists(domain_component, min_size=2, max_size=4)),
    st.just("localhost"),
    st.builds(lambda a, b, c, d: f"{a}.{b}.{c}.{d}", *[st.integers(0, 255)] * 4),
    st.sampled_from(["[::1]", "[fe80::1]", "[2001:db8::7]"]),
).flatmap(lambda host: st.one_of(st.just(host), port.map(lambda p: f"{host}:{p}")))
path_component = st.from_regex(r"[a-z0-9]{1,6}((\.|_|__|-{1,3})[a-z0-9]{1,6}){0,2}", fullmatch=True)
path = st.lists(path_component, min_size=1, max_size=4).map("/".join)
tag = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}", fullmatch=True)
sha256_digest = st.binary(min_size=32, max_size=32).map(lambda raw: "sha256:" + raw.hex())


@st.composite
def references(draw: st.DrawFn) -> str:
    """A reference the grammar accepts: ``[domain/]path[:tag][@digest]``."""
    text = draw(path)
    if draw(st.booleans()):
        text = f"{draw(domain)}/{text}"
    if draw(st.booleans()):
        text += f":{draw(tag)}"
    if draw(st.booleans()):
        text += f"@{draw(sha256_digest)}"
    return text


# Pieces that matter to a reference parser, so mutated text lands near the grammar's edges.
_REFERENCE_ALPHABET = st.sampled_from([*_ALNUM, "A", "Z", ".", "_", "-", "/", ":", "@", "[", "]", " ", "\n", "é", "*"])
reference_like_text = st.one_of(
    st.text(_REFERENCE_ALPHABET, max_size=80),
    st.builds(
        lambda ref, junk, at: ref[:at] + junk + ref[at:],
        references(),
        st.text(_REFERENCE_ALPHABET, max_size=3),
        st.integers(0, 80),
    ),
    st.text(max_size=40),
)

# --- JSON as a parser may receive it -----------------------------------------------------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
)


def json_values(
    keys: st.SearchStrategy[str] | None = None, leaves: st.SearchStrategy[Any] = scalars
) -> st.SearchStrategy[Any]:
    """Nested lists and objects; ``keys`` biases object keys towards the field names a parser looks up."""
    key_strategy = keys if keys is not None else st.text(max_size=10)
    return st.recursive(
        leaves,
        lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(key_strategy, children, max_size=5)),
        max_leaves=25,
    )


# --- ImagePolicy specs: values people plausibly write, right and wrong, shared with the e2e CRD agreement test ---

plausible = st.one_of(
    st.sampled_from(
        [
            "Enforce",
            "Warn",
            "Audit",
            "Allow",
            "Deny",
            "In",
            "NotIn",
            "Exists",
            "200Mi",
            "1e999999",
            "0",
            "-1",
            "9999999999999999999d",
            "999999999d",
            "168h",
            "0h",
            "linux/amd64",
            "linux",
            "*",
            "team-*",
            "Deployment",
            "2027-01-01T00:00:00Z",
            "2027-01-01T00:00:00",
            "not-a-date",
            "",
            " ",
        ]
    ),
    st.integers(min_value=-3, max_value=2**64),
    st.booleans(),
    st.none(),
    references(),
)

rules = st.fixed_dictionaries(
    {},
    optional={
        "maxCompressedSize": plausible,
        "maxUncompressedSize": plausible,
        "maxLayers": plausible,
        "allowedBaseImages": st.lists(plausible, max_size=2),
        "deniedBaseImages": st.lists(plausible, max_size=2),
        "requireNonRootUser": plausible,
        "requireDigest": plausible,
        "platforms": st.lists(plausible, max_size=2),
        "vulnerabilities": st.fixed_dictionaries(
            {"maxCritical": st.integers(0, 3)},
            optional={"maxReportAge": plausible, "onMissingReport": plausible, "ignoreUnfixed": plausible},
        ),
    },
)
near_valid_specs = st.fixed_dictionaries(
    {"rules": rules},
    optional={
        "mode": plausible,
        "onUnknown": plausible,
        "exemptions": st.lists(
            st.fixed_dictionaries(
                {"reason": plausible}, optional={"images": st.lists(plausible), "expires": plausible}
            ),
            max_size=2,
        ),
        "knownBaseImages": st.lists(plausible, max_size=2),
    },
)
