"""The tool categories ``forbiddenTools`` names, and what each holds by default.

A tool is found two ways: an executable in a ``bin`` or ``sbin`` directory of the final file system
(``usr/bin``, ``usr/local/bin``, ``opt/x/bin`` …) whose name matches one of the category's names, and a
package of the OS package database whose name matches one of its packages. The README's rules table lists
these; a team that needs another name adds a path glob to ``forbiddenTools``.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from fnmatch import fnmatchcase


@dataclass(frozen=True, slots=True)
class ToolCategory:
    name: str
    executables: tuple[str, ...]
    """Globs matched against an executable's file name."""
    packages: tuple[str, ...]
    """Globs matched against installed package names (dpkg, apk, rpm)."""


# fmt: off
CATEGORIES: tuple[ToolCategory, ...] = (
    ToolCategory(
        "compilers",
        executables=(
            "gcc", "g++", "make", "cc", "c++", "clang", "clang++", "gcc-[0-9]*", "g++-[0-9]*", "clang-[0-9]*",
            "clang++-[0-9]*", "*-gcc", "*-gcc-[0-9]*", "*-g++", "*-g++-[0-9]*", "c89", "c99", "tcc", "gmake",
            "cmake", "ninja", "rustc", "cargo", "javac", "ld", "ld.bfd", "ld.gold", "ld.lld", "*-ld", "*-ld.bfd",
            "*-ld.gold", "as", "*-as",
        ),
        packages=(
            # Exact version names: gcc-12-base and libgcc-s1 are in every Debian, slim ones too.
            "build-essential", "gcc", "g++", "make", "clang", "gcc-[0-9]", "gcc-[0-9][0-9]", "g++-[0-9]",
            "g++-[0-9][0-9]", "clang-[0-9]", "clang-[0-9][0-9]", "cmake", "ninja-build", "build-base", "rust",
            "rustc", "cargo", "binutils", "binutils-*-linux-gnu*",
        ),
    ),
    ToolCategory(
        "packageManagers",
        executables=(
            "apt", "apt-get", "aptitude", "dpkg", "apk", "dnf", "dnf[0-9]", "microdnf", "yum", "rpm", "zypper",
            "pip", "pip[0-9]", "pip[0-9].*", "npm", "npx", "pnpm", "yarn", "corepack",
        ),
        packages=("apt", "dpkg", "apk-tools", "dnf", "microdnf", "yum", "rpm", "zypper", "python3-pip", "py3-pip",
                  "npm", "yarn"),
    ),
    ToolCategory(
        "shells",
        executables=("sh", "bash", "dash", "ash", "zsh", "ksh", "mksh", "csh", "tcsh", "fish", "busybox"),
        packages=("bash", "dash", "zsh", "ksh", "mksh", "tcsh", "fish", "busybox", "busybox-*"),
    ),
    ToolCategory(
        "vcs",
        executables=("git", "svn", "hg", "bzr", "cvs"),
        packages=("git", "subversion", "mercurial", "bzr", "cvs"),
    ),
    ToolCategory(
        "downloaders",
        executables=("curl", "wget", "aria2c"),
        packages=("curl", "wget", "aria2"),
    ),
)
# fmt: on
CATEGORY_NAMES: tuple[str, ...] = tuple(category.name for category in CATEGORIES)
_BIN_DIRECTORIES = frozenset({"bin", "sbin"})


def on_path(path: str) -> bool:
    """Is ``path`` in a ``bin`` or ``sbin`` directory, where a shell would find it by name?"""
    return posixpath.basename(posixpath.dirname(path)) in _BIN_DIRECTORIES


def executable_category(category: ToolCategory, path: str) -> bool:
    return on_path(path) and executable_rank(category, path) is not None


def package_category(category: ToolCategory, package: str) -> bool:
    return package_rank(category, package) is not None


def executable_rank(category: ToolCategory, path: str) -> int | None:
    """The position of the first of the category's names ``path``'s file name matches: the most telling first."""
    return _rank(category.executables, posixpath.basename(path))


def package_rank(category: ToolCategory, package: str) -> int | None:
    return _rank(category.packages, package)


def _rank(globs: tuple[str, ...], name: str) -> int | None:
    return next((position for position, glob in enumerate(globs) if fnmatchcase(name, glob)), None)


def category_named(name: str) -> ToolCategory | None:
    return next((category for category in CATEGORIES if category.name == name), None)
