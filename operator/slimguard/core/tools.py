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
            "gcc", "gcc-[0-9]*", "*-gcc", "*-gcc-[0-9]*", "g++", "g++-[0-9]*", "*-g++", "*-g++-[0-9]*",
            "cc", "c++", "c89", "c99", "clang", "clang-[0-9]*", "clang++", "clang++-[0-9]*", "tcc",
            "ld", "ld.bfd", "ld.gold", "ld.lld", "*-ld", "*-ld.bfd", "*-ld.gold", "as", "*-as",
            "make", "gmake", "cmake", "ninja", "rustc", "cargo", "javac",
        ),
        packages=(
            # Exact version names: gcc-12-base and libgcc-s1 are in every Debian, slim ones too.
            "build-essential", "gcc", "gcc-[0-9]", "gcc-[0-9][0-9]", "g++", "g++-[0-9]", "g++-[0-9][0-9]",
            "clang", "clang-[0-9]", "clang-[0-9][0-9]", "binutils", "binutils-*-linux-gnu*", "make", "cmake",
            "ninja-build", "build-base", "rust", "rustc", "cargo",
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
    name = posixpath.basename(path)
    return on_path(path) and any(fnmatchcase(name, glob) for glob in category.executables)


def package_category(category: ToolCategory, package: str) -> bool:
    return any(fnmatchcase(package, glob) for glob in category.packages)
