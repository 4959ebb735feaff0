"""Bounded YAML: PyYAML's safe loader with the limits a plan needs, nothing a plan does not.

A plan is a small document typed by a person. Anything else is refused before it can cost
memory or time: text over :data:`MAX_BYTES`, nesting deeper than :data:`MAX_DEPTH`, anchors and
aliases (a 0.5 KB "billion laughs" document expands to gigabytes), and a key given twice in one
mapping (PyYAML would silently keep the second).

>>> load_text("backfill: {start: 2024-12-01, concurrency: 2}")
{'backfill': {'start': datetime.date(2024, 12, 1), 'concurrency': 2}}
>>> load_text("end: 2024-02-30")
Traceback (most recent call last):
...
backfill_lab.errors.ConfigError: '2024-02-30' at line 1 is not a real date (...); write ...
>>> load_text("a: &x [1]\\nb: *x")
Traceback (most recent call last):
...
backfill_lab.errors.ConfigError: plan uses a YAML anchor or alias ('&x' / '*x') at line 1; ...
"""

from __future__ import annotations

from typing import Any

import yaml

from .errors import ConfigError

__all__ = ["MAX_BYTES", "MAX_DEPTH", "load_text", "shorten"]

MAX_BYTES = 64 * 1024
"""The largest plan text accepted (a real plan is well under 2 KB)."""
MAX_DEPTH = 16
"""The deepest nesting of mappings and lists accepted (a plan nests 3 deep)."""


def shorten(value: object, limit: int = 60) -> str:
    """``repr(value)``, cut to ``limit`` characters so an error line stays one short line.

    >>> shorten("x" * 100, 10)
    "'xxxxx...'"
    """
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses aliases, deep nesting and duplicate keys while composing."""

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        """Refuse an alias or anchor before it is resolved, and nesting past the limit."""
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise _refuse_alias(event.anchor, event.start_mark)
        event = self.peek_event()  # type: ignore[no-untyped-call]
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            raise _refuse_alias(anchor, event.start_mark)
        self._depth = getattr(self, "_depth", 0) + 1
        try:
            if self._depth > MAX_DEPTH:
                raise ConfigError(f"plan nests deeper than {MAX_DEPTH} levels at line "
                                  f"{event.start_mark.line + 1}; a plan nests 3 levels deep")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        """Refuse a key given twice in one mapping (the second would silently win)."""
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, list | dict):
                raise ConfigError(f"plan has a list or mapping as a key at line "
                                  f"{key_node.start_mark.line + 1}; keys are names")
            if key in seen:
                raise ConfigError(f"plan gives key {shorten(key)} twice at line "
                                  f"{key_node.start_mark.line + 1}; keep one of them")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_timestamp(self, node: yaml.ScalarNode) -> Any:
        """An unquoted date that does not exist (``2024-02-30``) is an error naming it."""
        try:
            return super().construct_yaml_timestamp(node)
        except ValueError as exc:
            raise ConfigError(f"{node.value!r} at line {node.start_mark.line + 1} is not a real "
                              f"date ({exc}); write an existing day as YYYY-MM-DD") from None


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _Loader.construct_yaml_timestamp)


def _refuse_alias(anchor: str, mark: yaml.Mark) -> ConfigError:
    return ConfigError(f"plan uses a YAML anchor or alias ('&{anchor}' / '*{anchor}') at line "
                       f"{mark.line + 1}; write each value out in full")


def load_text(text: str) -> Any:
    """Parse ``text`` as one YAML document within the limits above, or raise :class:`ConfigError`.

    Never opens a file: ``text`` is the document itself.
    """
    if not isinstance(text, str):
        raise ConfigError.invalid("plan text", "a string of YAML", type(text).__name__)
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_BYTES:
        raise ConfigError(f"plan is {size} bytes of text; at most {MAX_BYTES} are accepted "
                          f"(a plan is a few lines of YAML)")
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise ConfigError(f"plan is not valid YAML{where}: {problem}") from None
    except RecursionError:
        raise ConfigError(f"plan nests deeper than {MAX_DEPTH} levels") from None
