"""The configuration's reference, written from the config classes themselves.

Each key's description lives with its field (the ``Attributes:`` of its class's
docstring), its default is the field's, and its allowed values are its type or declared
:class:`~edge.config.checks.Range`. From them, ``python -m edge.config.reference`` writes
``config.yaml`` (every key with its default and its description as a comment) and
``docs/configuration.md``; ``--check`` exits 1 when either differs from what the classes
say, so the two cannot drift from the code.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import textwrap
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from edge.config.checks import Range
from edge.config.loader import Config

ROOT = Path(__file__).resolve().parents[2]
WIDTH = 88

#: Keys whose value in the example file is not the built-in default, and why.
EXAMPLE = {"source.uri": ("models/sample/astronaut.mp4",
                          "Built-in default: 0 (the first camera); here the bundled sample "
                          "clip.")}
#: Keys the example file leaves commented out (their default depends on the machine).
COMMENTED = {"device": "hall"}

_HEADER = """\
# emotion-edge device configuration. Every key is optional; the values below are the
# built-in defaults, except source.uri, which here points at the bundled sample clip.
# `python -m edge --config config.yaml` validates the whole file at start-up and exits
# with code 2 and one line naming the key when something is wrong.
#
# Written by `python -m edge.config.reference` from the config classes
# (edge/config/sections.py, outputs.py, loader.py); docs/configuration.md is the same
# reference as a page.
"""


@dataclasses.dataclass(frozen=True)
class Key:
    """One configuration key: where it is, what it holds, and what it means."""

    path: str
    field: dataclasses.Field
    default: Any
    doc: str
    section: type | None  # the key's own config class, for a section


def field_docs(cls: type) -> dict[str, str]:
    """The ``Attributes:`` entries of ``cls``'s docstring, one line of text each.

    Raises:
        ValueError: a field of ``cls`` has no entry.
    """
    docs: dict[str, str] = {}
    current = None
    inside = False
    for line in textwrap.dedent("\n".join((cls.__doc__ or "").split("\n")[1:])).split("\n"):
        if line.strip() == "Attributes:":
            inside = True
        elif inside and line.startswith("    ") and not line.startswith("        "):
            name, _, text = line.strip().partition(": ")
            current = name
            docs[name] = text.strip()
        elif inside and line.startswith("        ") and current:
            docs[current] += " " + line.strip()
        elif inside and line.strip():
            inside = False
    missing = [f.name for f in dataclasses.fields(cls) if f.name not in docs]
    if missing:
        raise ValueError(f"{cls.__name__}: no description of {', '.join(missing)} in its "
                         "docstring's Attributes")
    return docs


def summary(cls: type) -> str:
    """The class docstring's text before its ``Attributes:``, as one paragraph per line."""
    text = (cls.__doc__ or "").split("Attributes:")[0]
    first, _, rest = text.partition("\n")
    paragraphs = [first.strip(), *(" ".join(p.split()) for p in
                                  textwrap.dedent(rest).split("\n\n"))]
    return "\n".join(p for p in paragraphs if p)


def keys(cls: type = Config, prefix: str = "", defaults: Any = None) -> Iterator[Key]:
    """Every key of ``cls``, sections before the keys inside them, in field order.

    ``defaults``: the section's default as its parent makes it (the MQTT sink's
    ``reconnect`` waits longer than a camera's), else the class's own.
    """
    docs = field_docs(cls)
    for f in dataclasses.fields(cls):
        if defaults is not None:
            default = getattr(defaults, f.name)
        else:
            default = (f.default_factory() if f.default_factory is not dataclasses.MISSING
                       else f.default)
        section = type(default) if dataclasses.is_dataclass(default) else None
        yield Key(prefix + f.name, f, default, docs[f.name], section)
        if section is not None:
            yield from keys(section, f"{prefix}{f.name}.", default)


def render_yaml() -> str:
    """``config.yaml``: every key with its default (or :data:`EXAMPLE`'s value)."""
    out = [_HEADER]
    for key in keys():
        depth = key.path.count(".")
        pad = "  " * depth
        name = key.path.rsplit(".", 1)[-1]
        if key.section is not None:
            if depth == 0:
                out.append("")
            out += _comment(key.doc, pad)
            out += _comment(summary(key.section), pad, skip_first=True)
            out.append(f"{pad}{name}:")
            continue
        value, note = EXAMPLE.get(key.path, (key.default, ""))
        out += _comment(f"{key.doc} {note}".strip(), pad)
        if key.path in COMMENTED:
            out.append(f"{pad}# {name}: {COMMENTED[key.path]}")
        else:
            out.append(f"{pad}{name}: {_scalar(value)}".rstrip())
    return "\n".join(out).strip() + "\n"


def render_markdown() -> str:
    """``docs/configuration.md``: one table per section."""
    out = ["# Configuration reference", "",
           "Every key of the device's YAML configuration (`python -m edge --config FILE`), "
           "with its default, the values it may take and what it does. All keys are "
           "optional. Written by `python -m edge.config.reference` from the config classes; "
           "`config.yaml` is the same reference as a file to copy.", ""]
    rows: list[str] = []
    for key in keys():
        if key.section is not None:
            if key.path.count(".") == 0:
                out += _table(rows)
                rows = []
                out += [f"## {key.path}", "", key.doc, ""]
                body = summary(key.section).split("\n")[1:]
                out += [*(line for b in body for line in (b, "")), ]
            continue
        rows.append(f"| `{key.path}` | {_md_default(key)} | {_allowed(key)} | "
                    f"{key.doc.replace('|', '/')} |")
    return "\n".join([*out, *_table(rows)]).strip() + "\n"


def _table(rows: list[str]) -> list[str]:
    if not rows:
        return []
    return ["| key | default | values | what it does |", "|---|---|---|---|", *rows, ""]


def _comment(text: str, pad: str, skip_first: bool = False) -> list[str]:
    paragraphs = text.split("\n")[1:] if skip_first else text.split("\n")
    return [f"{pad}# {line}" for p in paragraphs if p
            for line in textwrap.wrap(p, WIDTH - len(pad) - 2, break_on_hyphens=False)]


def _scalar(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("\n...")


def _md_default(key: Key) -> str:
    if key.path in COMMENTED:
        return "this machine's host name"
    shown = _scalar(key.default)
    return f"`{shown}`" if shown else "(empty)"


def _allowed(key: Key) -> str:
    bound = key.field.metadata.get("range")
    if isinstance(bound, Range):
        return bound.describe() if not bound.amount else (
            (f"> {bound.lo:g}" if bound.lo_open else f">= {bound.lo:g}")
            + (f", at most {bound.hi:g}" if bound.hi is not None else ""))
    hint = typing.get_type_hints(_owner(key))[key.field.name]
    options = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) is typing.Literal:
        return " / ".join(f"`{a}`" for a in options)
    names = [getattr(a, "__name__", str(a)) for a in (options or [hint])]
    return " or ".join(names) + (" or empty" if type(None) in typing.get_args(hint) else "")


def _owner(key: Key) -> type:
    cls: type = Config
    for part in key.path.split(".")[:-1]:
        cls = typing.get_type_hints(cls)[part]
    return cls


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m edge.config.reference",
                                description="Write config.yaml and docs/configuration.md "
                                            "from the config classes.")
    p.add_argument("--check", action="store_true",
                   help="write nothing; exit 1 if either file differs from the classes")
    args = p.parse_args(argv)
    wanted = {ROOT / "config.yaml": render_yaml(),
              ROOT / "docs/configuration.md": render_markdown()}
    stale = [path for path, text in wanted.items()
             if not path.is_file() or path.read_text(encoding="utf-8") != text]
    if args.check:
        for path in stale:
            print(f"{path.relative_to(ROOT)}: differs from the config classes; run "
                  "python -m edge.config.reference", file=sys.stderr)
        return 1 if stale else 0
    for path in stale:
        path.write_text(wanted[path], encoding="utf-8")
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
