"""SCPI program-message syntax, as the virtual B2900 parses it.

A program message is one line of ``;``-separated commands
(:func:`split_commands`), each a header of ``:``-separated mnemonics and an
optional comma-separated parameter list (:func:`split_params`). A mnemonic
matches in its short form (the upper-case letters of its spec, ``SENS`` for
``SENSe``) or its long form, case-insensitively; nodes in brackets are
optional (:func:`compile_pattern`, :func:`match`). Character parameters
match mnemonic specs the same way (:func:`keyword`); numeric parameters accept
NR1/NR2/NR3 numbers and ``MIN``/``MAX``/``DEF`` (:func:`number`), booleans
``ON|OFF|1|0`` (:func:`boolean`); numeric replies are NR3 (:func:`fmt`) and
arrays are ASCII lists or IEEE 488.2 definite-length blocks
(:func:`format_values`).

Errors are :class:`ScpiError` carrying the standard SCPI error code and
message: -102 syntax error, -104 data type error, -108 parameter not allowed,
-109 missing parameter, -113 undefined header, -114 header suffix out of
range, -121 invalid character in number, -222 data out of range, -224 illegal
parameter value, and whatever code the instrument raises.

Headers: :func:`header_parts` splits a header into mnemonics and their
numeric suffixes (``SOUR2`` -> ``("SOUR", 2)``); which suffixes mean a channel
is the instrument's business.

Helpers for a command's parameters: :func:`one_param`, :func:`no_params`,
:func:`channel_list` (``(@1)``, ``(@1,2)``, ``(@1:2)``), :func:`split_channel_list`
(a channel list after other parameters), :func:`query_number` (the
``[MIN|MAX|DEF]`` of a query), :func:`string_list`, :func:`parse_format` and
:func:`data_window` (the ``[offset[,size]]`` of buffer queries).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np

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
    "boolean",
    "format_values",
    "data_window",
    "one_param",
    "string_list",
    "parse_format",
    "no_params",
    "channel_list",
    "split_channel_list",
    "query_number",
    "parse_command",
    "header_parts",
    "NOT_A_NUMBER",
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


def number(param: str, lo: float, hi: float, default: float | None = None, *, clamp: bool = False) -> float:
    """A numeric parameter in ``[lo, hi]``: outside it is -222, or the nearest
    bound with ``clamp`` (settings the instrument sets "automatically to MIN or
    MAX", such as the aperture)."""
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
    if clamp:
        return min(max(v, lo), hi)
    if not (lo <= v <= hi):
        raise out_of_range()
    return v


def query_number(params: Sequence[str], value: float, lo: float, hi: float, default: float) -> float:
    """What a numeric query answers: the present ``value``, or with a
    ``MINimum``/``MAXimum``/``DEFault`` parameter the value assigned to it (a
    number there is -224: queries take no value)."""
    if not params:
        return value
    p = one_param(params).strip().upper()
    if p in ("MIN", "MINIMUM"):
        return lo
    if p in ("MAX", "MAXIMUM"):
        return hi
    if p in ("DEF", "DEFAULT"):
        return default
    raise illegal()


def boolean(param: str) -> bool:
    """``ON``/``1`` -> True, ``OFF``/``0`` -> False; anything else is -224."""
    p = param.strip().upper()
    if p in ("1", "ON"):
        return True
    if p in ("0", "OFF"):
        return False
    raise illegal()


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


#: What the instrument sends in ASCII for "no data" (NaN in the binary formats).
NOT_A_NUMBER = 9.91e37


def format_values(values: np.ndarray, data_format: str, byte_order: str) -> bytes:
    """Response data of ``:FORMat`` ``data_format`` (``ASC``, ``REAL64`` or
    ``REAL32``) and ``:FORMat:BORDer`` ``byte_order`` (``NORM``: big-endian,
    ``SWAP``: little-endian). NaN (no data) is ``+9.910000E+37`` in ASCII."""
    values = np.asarray(values, dtype=float)
    if data_format == "ASC":
        return ",".join(fmt(NOT_A_NUMBER if v != v else v) for v in values.tolist()).encode("ascii")
    dtype = "f8" if data_format == "REAL64" else "f4"
    order = ">" if byte_order == "NORM" else "<"
    payload = values.astype(order + dtype).tobytes()
    length = str(len(payload))
    return b"#" + str(len(length)).encode() + length.encode() + payload


def data_window(params: Sequence[str], count: int, maximum: int) -> tuple[int, int] | None:
    """Points ``[start, stop)`` selected by the ``[offset[,size]]`` parameters of
    a buffer query among ``count`` stored points (at most ``maximum``).

    ``offset`` is ``n`` (the (n+1)th point), ``STARt`` (0) or ``CURRent`` (the
    latest point); ``size`` (1..) defaults to every point from the offset. A
    window beyond the stored points is -222; None means "no data" (no
    parameters and nothing stored)."""
    if len(params) > 2:
        raise ScpiError(-108, "Parameter not allowed")
    if not params:
        return (0, count) if count else None
    offset = params[0].strip().upper()
    if offset in ("STAR", "START"):
        start = 0
    elif offset in ("CURR", "CURRENT"):
        start = count - 1
    else:
        start = int(round(number(params[0], 0, maximum)))
    if not 0 <= start < count:
        raise out_of_range()
    stop = count
    if len(params) == 2:
        stop = start + int(round(number(params[1], 1, maximum)))
        if stop > count:
            raise out_of_range()
    return start, stop


def one_param(params: Sequence[str]) -> str:
    """The single parameter of a command (-109 if none, -108 if more)."""
    if not params:
        raise ScpiError(-109, "Missing parameter")
    if len(params) > 1:
        raise ScpiError(-108, "Parameter not allowed")
    return params[0]


def no_params(params: Sequence[str]) -> None:
    if params:
        raise ScpiError(-108, "Parameter not allowed")


_CHANNEL_LIST_RE = re.compile(r"\(\s*@(.*)\)", re.S)
_CHANNEL_RANGE_RE = re.compile(r"(\d+)(?:\s*:\s*(\d+))?")


def channel_list(params: Sequence[str], channels: int = 1) -> tuple[int, ...] | None:
    """An optional channel-list parameter -> the channels it names, ascending
    (None when absent). ``(@1)``, ``(@2)``, ``(@1,2)``, ``(@1:2)``, ``(@2,1)``
    and ``(@2:1)`` as the B2900 guide lists them; whatever the order given,
    data come channel 1 first. A channel beyond the instrument's ``channels``
    is -224, a malformed list -104."""
    if not params:
        return None
    if len(params) > 1:
        raise ScpiError(-108, "Parameter not allowed")
    m = _CHANNEL_LIST_RE.fullmatch(params[0].strip())
    if not m:
        raise ScpiError(-104, "Data type error")
    chosen: set[int] = set()
    for item in m.group(1).split(","):
        r = _CHANNEL_RANGE_RE.fullmatch(item.strip())
        if not r:
            raise ScpiError(-104, "Data type error")
        a, b = int(r.group(1)), int(r.group(2) or r.group(1))
        lo, hi = min(a, b), max(a, b)
        # The guide names no error for a channel the model lacks; -224, the
        # error of a parameter outside its allowed set, is this simulator's choice.
        if lo < 1 or hi > channels:
            raise illegal()
        chosen.update(range(lo, hi + 1))
    return tuple(sorted(chosen))


def split_channel_list(params: Sequence[str], channels: int = 1) -> tuple[list[str], tuple[int, ...] | None]:
    """Parameters ending in an optional channel list (``TIM,(@1)``) -> the
    other parameters and the channels."""
    params = list(params)
    if params and params[-1].lstrip().startswith("("):
        return params[:-1], channel_list(params[-1:], channels)
    return params, None


def parse_command(cmd: str) -> tuple[str, bool, list[str]]:
    """``"SENS:CURR:APER? MAX"`` -> ``("SENS:CURR:APER", True, ["MAX"])``."""
    m = re.match(r"(\S+)(?:\s+(.*))?$", cmd, re.S)
    if not m:
        raise syntax()
    header, param_text = m.group(1), (m.group(2) or "")
    is_query = header.endswith("?")
    if is_query:
        header = header[:-1]
    if "?" in header:
        raise syntax()
    return header, is_query, split_params(param_text)


def header_parts(header: str) -> list[tuple[str, int | None]]:
    """The upper-case mnemonics of a (leading-colon-less) header with their
    numeric suffixes: ``"SOUR2:VOLT"`` -> ``[("SOUR", 2), ("VOLT", None)]``."""
    parts = []
    for part in header.split(":"):
        tm = TOKEN_RE.fullmatch(part)
        if not tm:
            raise syntax()
        name, suffix = tm.group(1).upper(), tm.group(2)
        parts.append((name, int(suffix) if suffix else None))
    return parts


def string_list(params: Sequence[str], *specs: str, optional_dc: bool = False) -> list[str]:
    """Quoted parameters holding comma-separated mnemonics (``"CURR","VOLT"`` or
    ``"CURR,VOLT"``) -> their short forms. With ``optional_dc`` an item may end
    in ``:DC`` (``"CURRent[:DC]"``)."""
    if not params:
        raise ScpiError(-109, "Missing parameter")
    out = []
    for p in params:
        inner = p.strip()
        if not (len(inner) >= 2 and inner[0] == inner[-1] and inner[0] in "\"'"):
            raise ScpiError(-104, "Data type error")
        for item in inner[1:-1].split(","):
            head, sep, tail = item.strip().partition(":")
            if sep and not (optional_dc and tail.strip().upper() == "DC"):
                raise illegal()
            out.append(keyword(head, *specs))
    return out


def parse_format(params: Sequence[str]) -> str:
    """``:FORMat[:DATA]`` parameters (``ASCii``, ``REAL[,64]``, ``REAL,32``) ->
    ``ASC``, ``REAL64`` or ``REAL32``."""
    if not params:
        raise ScpiError(-109, "Missing parameter")
    if len(params) > 2:
        raise ScpiError(-108, "Parameter not allowed")
    if keyword(params[0], "ASCii", "REAL") == "ASC":
        if len(params) != 1:
            raise ScpiError(-108, "Parameter not allowed")
        return "ASC"
    bits = int(number(params[1], 32, 64)) if len(params) == 2 else 64
    if bits not in (32, 64):
        raise out_of_range()
    return f"REAL{bits}"
