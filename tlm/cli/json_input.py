"""``--input``: inline JSON, a JSON file or ``-`` for stdin, read strictly with located errors.

The bytes must be UTF-8 (RFC 8259; a UTF-8 byte-order mark is skipped) and hold one JSON value
that TLM can carry (:mod:`tlm.engine.json_values`: no NaN or Infinity, nesting at most
``MAX_DEPTH`` deep, integers Python can print). Anything else is one line naming the source and
where — ``input.json: line 3 column 7: ...`` or ``input.json: $.a.b: ...`` — and exit status 1.
"""

from __future__ import annotations

import codecs
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from tlm.cli.params import InputError
from tlm.engine.json_values import MAX_DEPTH, json_value_problems

__all__ = ("read_input", "decode_json_bytes", "parse_json_text")

_BOMS = (
    (codecs.BOM_UTF32_LE, "UTF-32"),
    (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"),
    (codecs.BOM_UTF16_BE, "UTF-16"),
)
_TOKEN = re.compile(
    r'"[^"\\]*(?:\\.[^"\\]*)*"'  # a string (skipped)
    r"|-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"  # a number
    r"|[\[\]{}]|NaN|-?Infinity"
)
_INT_DIGITS = sys.get_int_max_str_digits()


def read_input(value: str) -> Any:
    """The task input from ``--input``: inline JSON, a JSON file's path, or ``-`` for stdin.

    Raises:
        click.BadParameter: no such file.
        InputError: the content is not UTF-8, not JSON, or not JSON TLM can carry (one line).
    """
    if value == "-":
        raw = click.get_binary_stream("stdin").read()
        text, source = decode_json_bytes(raw, "<stdin>"), "<stdin>"
    elif value.lstrip().startswith(("{", "[")):
        text, source = value, "--input"
    else:
        path = Path(value)
        if not path.is_file():
            raise click.BadParameter(f"{value}: no such file (give JSON, a file, or -)")
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise InputError(f"{value}: cannot read: {exc.strerror}") from None
        text, source = decode_json_bytes(raw, str(path)), str(path)
    return parse_json_text(text, source)


def decode_json_bytes(raw: bytes, source: str) -> str:
    """``raw`` decoded as UTF-8 (a UTF-8 BOM skipped); other encodings are refused, located."""
    for bom, name in _BOMS:
        if raw.startswith(bom):
            raise InputError(
                f"{source}: the file is {name} (it starts with a {name} byte-order mark); "
                "JSON input must be UTF-8: save it as UTF-8"
            )
    if raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8) :]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        bad = raw[exc.start : exc.end].hex(" ")
        raise InputError(
            f"{source}: line {line} column {column} (byte {exc.start}): not valid UTF-8 "
            f"(bytes {bad}); JSON input must be UTF-8"
        ) from None


def parse_json_text(text: str, source: str) -> Any:
    """One JSON value from ``text``, checked to be JSON TLM can carry; errors are located."""
    try:
        value = json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise InputError(f"{source}: line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except (RecursionError, ValueError):  # too deep, a constant, or an integer too long
        raise InputError(f"{source}: {_locate_failure(text)}") from None
    problems = json_value_problems(value, source=source)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise InputError(f"{problems[0]}{more}")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(name)


def _tokens(text: str) -> Iterator[re.Match[str]]:
    return _TOKEN.finditer(text)


def _locate_failure(text: str) -> str:
    """Where ``text`` nests too deep, holds NaN/Infinity or an over-long integer."""
    depth = 0
    for token in _tokens(text):
        kind = token.group()[0]
        if kind in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                where = _where(text, token.start())
                return f"{where}: nested deeper than {MAX_DEPTH} arrays/objects"
        elif kind in "]}":
            depth -= 1
        elif kind in "NI" or token.group().startswith("-I"):
            return (
                f"{_where(text, token.start())}: {token.group()} is not a JSON number "
                "(JSON has no NaN or Infinity)"
            )
        elif kind != '"':
            digits = len(token.group().lstrip("-"))
            if token.group().lstrip("-").isdigit() and digits > _INT_DIGITS:
                return (
                    f"{_where(text, token.start())}: an integer of {digits} digits is longer "
                    f"than the {_INT_DIGITS} digits allowed"
                )
    return "cannot read this JSON"


def _where(text: str, position: int) -> str:
    line = text.count("\n", 0, position) + 1
    column = position - (text.rfind("\n", 0, position) + 1) + 1
    return f"line {line} column {column}"
