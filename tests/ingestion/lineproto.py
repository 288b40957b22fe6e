"""A small line-protocol reader for checking the file target's output in tests."""

from __future__ import annotations

import re
from dataclasses import dataclass

LINE = re.compile(
    r"^(?P<measurement>[^ ,]+),(?P<tags>(?:[^ \\]|\\.)+) (?P<fields>[^ ]+) (?P<timestamp>\d+)$"
)
FIELD_VALUE = re.compile(r"^(?:-?\d+i|-?\d+(?:\.\d+)?(?:e[+-]?\d+)?)$")


@dataclass(frozen=True)
class ParsedLine:
    measurement: str
    tags: dict[str, str]
    fields: dict[str, str]
    timestamp_s: int


def parse_line(line: str) -> ParsedLine:
    match = LINE.match(line)
    assert match is not None, f"not line protocol: {line!r}"
    tags = dict(pair.split("=", 1) for pair in match.group("tags").split(","))
    fields = dict(pair.split("=", 1) for pair in match.group("fields").split(","))
    for name, value in fields.items():
        assert FIELD_VALUE.match(value), f"invalid value {name}={value!r} in {line!r}"
    return ParsedLine(match.group("measurement"), tags, fields, int(match.group("timestamp")))
