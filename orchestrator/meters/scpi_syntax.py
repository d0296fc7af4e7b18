"""SCPI program-message syntax, as the virtual B2900 parses it.

A program message is one line of ``;``-separated commands
(:func:`split_commands`), each a header of ``:``-separated mnemonics and an
optional comma-separated parameter list (:func:`split_params`). A mnemonic
matches in its short form (the upper-case letters of its spec, ``SENS`` for
``SENSe``) or its long form, case-insensitively; nodes in brackets are
optional (:func:`compile_pattern`, :func:`match`). Character parameters
match mnemonic specs the same way (:func:`keyword`); numeric parameters accept
NR1/NR2/NR3 numbers and ``MIN``/``MAX``/``DEF`` (:func:`number`); numeric
replies are NR3 (:func:`fmt`).

Errors are :class:`ScpiError` carrying the standard SCPI error code and
message: -102 syntax error, -104 data type error, -113 undefined header,
-121 invalid character in number, -222 data out of range, -224 illegal
parameter value, and whatever code the instrument raises.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

__all__ = [
    "ScpiError",
    "syntax",
    "undefined",
    "out_of_range",
    "illegal",
    "Node",
    "compile_pattern",
    "match",
    "keyword",
    "number",
    "split_params",
    "split_commands",
    "TOKEN_RE",
    "fmt",
]


class ScpiError(Exception):
    def __init__(self, code: int, message: str):
        super().__init__(f"{code},{message}")
        self.code = code
        self.message = message


def syntax() -> ScpiError:
    return ScpiError(-102, "Syntax error")


def undefined() -> ScpiError:
    return ScpiError(-113, "Undefined header")


def out_of_range() -> ScpiError:
    return ScpiError(-222, "Data out of range")


def illegal() -> ScpiError:
    return ScpiError(-224, "Illegal parameter value")


@dataclass(frozen=True)
class Node:
    short: str
    long: str
    optional: bool

    def matches(self, token: str) -> bool:
        return token == self.short or token == self.long


def _mnemonic(spec: str) -> tuple[str, str]:
    """``"SENSe"`` -> ``("SENS", "SENSE")``: short form = the upper-case letters."""
    short = "".join(ch for ch in spec if not ch.islower())
    return short.upper(), spec.upper()


def compile_pattern(pattern: str) -> tuple[Node, ...]:
    nodes = []
    for m in re.finditer(r"(\[)?:([A-Za-z]+)\]?", pattern):
        short, long = _mnemonic(m.group(2))
        nodes.append(Node(short, long, optional=m.group(1) is not None))
    return tuple(nodes)


def match(tokens: Sequence[str], nodes: Sequence[Node]) -> bool:
    # Iterative search over (token index, node index); patterns are short.
    stack = [(0, 0)]
    seen = set()
    while stack:
        i, j = stack.pop()
        if (i, j) in seen:
            continue
        seen.add((i, j))
        if j == len(nodes):
            if i == len(tokens):
                return True
            continue
        node = nodes[j]
        if node.optional:
            stack.append((i, j + 1))
        if i < len(tokens) and node.matches(tokens[i]):
            stack.append((i + 1, j + 1))
    return False


def keyword(param: str, *specs: str) -> str:
    """Match a character parameter against mnemonic specs; returns the short form."""
    p = param.strip().upper()
    for spec in specs:
        short, long = _mnemonic(spec)
        if p == short or p == long:
            return short
    raise illegal()


_NUMBER_RE = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def number(param: str, lo: float, hi: float, default: float | None = None) -> float:
    p = param.strip()
    up = p.upper()
    if up in ("MIN", "MINIMUM"):
        return lo
    if up in ("MAX", "MAXIMUM"):
        return hi
    if up in ("DEF", "DEFAULT") and default is not None:
        return default
    if not _NUMBER_RE.fullmatch(p):
        if p and (p[0].isdigit() or p[0] in "+-."):
            raise ScpiError(-121, "Invalid character in number")
        raise ScpiError(-104, "Data type error")
    v = float(p)
    if not (lo <= v <= hi):
        raise out_of_range()
    return v


def split_params(text: str) -> list[str]:
    """Split a parameter list on commas outside quotes and parentheses."""
    text = text.strip()
    if not text:
        return []
    out, cur, quote, depth = [], [], "", 0
    for ch in text:
        if quote:
            cur.append(ch)
            if ch == quote:
                quote = ""
            continue
        if ch in "\"'":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise syntax()
        elif ch == "," and depth == 0:
            out.append("".join(cur).strip())
            cur = []
            continue
        cur.append(ch)
    if quote or depth:
        raise syntax()
    out.append("".join(cur).strip())
    if any(p == "" for p in out):
        raise syntax()
    return out


def split_commands(line: str) -> list[str]:
    """Split a program message on ``;`` outside quotes and parentheses."""
    out, cur, quote, depth = [], [], "", 0
    for ch in line:
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth = max(0, depth - 1)
        elif ch == ";" and depth == 0:
            out.append("".join(cur))
            cur = []
            continue
        cur.append(ch)
    out.append("".join(cur))
    return out


TOKEN_RE = re.compile(r"([A-Za-z][A-Za-z_]*?)(\d*)")


def fmt(v: float) -> str:
    return f"{v:+.6E}"
