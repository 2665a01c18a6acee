"""Command lines generated from config dataclasses: one field, one option, its docstring the help.

A field ``critic_every: int = 10`` of the top dataclass becomes ``--critic-every`` (underscores written as
dashes); a field of a nested dataclass field ``tracker`` becomes ``--tracker.critic-every``. The help of an
option is the field's docstring (a string literal on the line after the field, as cleanrl writes its ``Args``;
else the field's entry under ``Attributes:`` in the class docstring), followed by its default, so ``--help``
shows every default. Field types decide the conversion:

* ``int``, ``float``, ``str``, ``pathlib.Path``: one value, converted; a value of the wrong type is one line
  naming the option, the value and the type expected (exit status 2, argparse's code for bad usage);
* ``bool``: ``--name`` / ``--no-name`` (nested: ``--tracker.terminate`` / ``--tracker.no-terminate``);
* ``X | None``: ``X``, or ``none`` for None;
* ``Literal["a", "b"]``: one of the listed values;
* ``tuple[X, ...]`` and ``list[X]``: any number of values; ``tuple[X, Y]``: exactly that many.

Field metadata adjusts a field: ``{"cli": False}`` leaves it out; ``{"exclude": ("gamma",)}`` on a nested
dataclass field leaves out some of its fields (set by the program, not the user); ``{"options": Cls, "prefix":
"sb3"}`` on a ``dict`` field exposes the fields of the dataclass ``Cls`` as ``--sb3.name`` and collects the ones
given into the dict; ``{"key_value": "critic-option"}`` on a ``dict`` field makes it a repeatable
``--critic-option KEY=VALUE`` (for open-ended options, such as a critic backend's own).

>>> from dataclasses import dataclass
>>> @dataclass
... class Args:
...     steps: int = 100
...     '''env steps'''
>>> parse_dataclass(Args, ["--steps", "5"])
Args(steps=5)
"""
from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import re
import sys
import textwrap
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, Union

NONE_WORDS = ("none", "null")
_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line on stderr (no usage block), exit status 2."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def field_docs(cls: type) -> dict[str, str]:
    """Each field's docstring: the string literal right after it in the class body, else its entry under
    ``Attributes:`` in the class docstring (indented continuation lines joined)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        docs.update(_attributes_section(klass.__doc__ or ""))
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError, SyntaxError):
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for node, after in zip(body, body[1:]):
            if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                    and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                    and isinstance(after.value.value, str)):
                docs[node.target.id] = " ".join(inspect.cleandoc(after.value.value).split())
    return docs


def _attributes_section(doc: str) -> dict[str, str]:
    lines = inspect.cleandoc(doc).splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == "Attributes:")
    except StopIteration:
        return {}
    out: dict[str, str] = {}
    names: list[str] = []
    for line in lines[start + 1:]:
        if line and not line.startswith(" "):
            break  # the next section
        m = re.match(r"^ {4}([\w /]+?):\s*(.*)$", line)
        if m:
            names = [n.strip() for n in m.group(1).split("/")]
            for n in names:
                out[n] = m.group(2).strip()
        elif line.strip() and names:
            for n in names:
                out[n] += " " + line.strip()
    return out


def _flag(name: str) -> str:
    return name.replace("_", "-")


def _describe(tp: Any) -> str:
    return {int: "an integer", float: "a number", str: "a string", Path: "a path"}.get(tp, getattr(tp, "__name__",
                                                                                                    str(tp)))


def _converter(tp: Any, optional: bool):
    """A function text -> value for one value of type ``tp`` (``none`` -> None when ``optional``)."""
    def convert(text: str) -> Any:
        if optional and text.lower() in NONE_WORDS:
            return None
        if tp is bool:
            low = text.lower()
            if low in _TRUE or low in _FALSE:
                return low in _TRUE
            raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
        try:
            return tp(text)
        except (TypeError, ValueError):
            extra = " or none" if optional else ""
            raise argparse.ArgumentTypeError(f"expected {_describe(tp)}{extra}, got {text!r}") from None

    convert.__name__ = _describe(tp)
    return convert


def _metavar(tp: Any) -> str:
    return _describe(tp).split()[-1].upper()


class _BoolAction(argparse.Action):
    """``--name`` sets True, ``--no-name`` sets False."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any):
        kwargs.pop("nargs", None)
        super().__init__(option_strings, dest, nargs=0, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        setattr(namespace, self.dest, ".no-" not in option_string and not option_string.startswith("--no-"))


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    if typing.get_origin(tp) in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        optional = len(args) < len(typing.get_args(tp))
        seqs = [a for a in args if typing.get_origin(a) in (list, tuple)]
        return (seqs[0] if seqs else args[0] if len(args) == 1 else str), optional
    return tp, False


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return " ".join(map(str, value)) or "(none)"
    return "none" if value is None else str(value)


def _default_of(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def add_dataclass_options(parser: argparse.ArgumentParser, cls: type, *, prefix: str = "",
                          exclude: Sequence[str] = (), required: Sequence[str] = (),
                          defaults: Any = None) -> None:
    """Add one option per field of ``cls`` (recursing into nested dataclass fields) to ``parser``.

    Args:
        parser: the parser to extend.
        cls: a dataclass.
        prefix: option prefix of nested fields (``"tracker."``).
        exclude: field names left out.
        required: field names that must be given (their default is not used).
        defaults: an instance whose values are the defaults (a nested field's default object).
    """
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    group = parser.add_argument_group(f"{prefix.rstrip('.')} options ({cls.__name__})") if prefix else parser
    for f in dataclasses.fields(cls):
        if f.name in exclude or not f.metadata.get("cli", True):
            continue
        default = _default_of(f)
        if defaults is not None and default is not None:  # a declared None stays None (__post_init__ resolves it)
            default = getattr(defaults, f.name)
        tp, optional = _unwrap_optional(hints[f.name])
        help_text = docs.get(f.name, "")
        dest = prefix + f.name
        if dataclasses.is_dataclass(tp):
            add_dataclass_options(parser, tp, prefix=f"{dest}.", exclude=f.metadata.get("exclude", ()),
                                  defaults=default)
            continue
        if "options" in f.metadata:
            add_dataclass_options(parser, f.metadata["options"], prefix=f"{f.metadata['prefix']}.")
            continue
        flag = "--" + (_flag(prefix) + _flag(f.name) if prefix else _flag(f.name))
        if "key_value" in f.metadata:
            group.add_argument("--" + f.metadata["key_value"], dest=dest, action="append", default=[],
                               metavar="KEY=VALUE", help=f"{help_text} (default: none; repeat for more)")
            continue
        kw: dict[str, Any] = {"dest": dest}
        if f.name in required or default is dataclasses.MISSING:
            kw["required"] = True
        else:
            kw["default"] = default
            help_text = f"{help_text} (default: {_show(default)})".strip()
        kw["help"] = help_text.replace("%", "%%")
        origin = typing.get_origin(tp)
        if tp is bool:
            negative = "--" + (_flag(prefix) + "no-" + _flag(f.name) if prefix else "no-" + _flag(f.name))
            group.add_argument(flag, negative, action=_BoolAction, **kw)
            continue
        if origin is Literal:
            choices = typing.get_args(tp)
            group.add_argument(flag, choices=list(choices), metavar="{" + ",".join(map(str, choices)) + "}",
                               type=_converter(type(choices[0]), optional), **kw)
            continue
        if origin in (list, tuple):
            args = typing.get_args(tp) or (str, ...)
            if origin is tuple and Ellipsis not in args:
                kw["nargs"] = len(args)
            else:
                kw["nargs"] = "*"
            group.add_argument(flag, type=_converter(args[0], optional), metavar=_metavar(args[0]), **kw)
            continue
        group.add_argument(flag, type=_converter(tp, optional), metavar=_metavar(tp), **kw)


def from_namespace(cls: type, ns: argparse.Namespace, *, prefix: str = "", **fixed: Any) -> Any:
    """The ``cls`` instance of the options :func:`add_dataclass_options` added (``fixed``: fields given by the
    program, overriding the command line)."""
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        dest = prefix + f.name
        tp, _ = _unwrap_optional(hints[f.name])
        if dataclasses.is_dataclass(tp) and f.metadata.get("cli", True):
            values[f.name] = from_namespace(tp, ns, prefix=f"{dest}.")
        elif "options" in f.metadata:
            sub = f.metadata["options"]
            given = {g.name: getattr(ns, f"{f.metadata['prefix']}.{g.name}") for g in dataclasses.fields(sub)}
            given = {k: v for k, v in given.items() if v is not None}
            values[f.name] = sub.to_kwargs(given) if hasattr(sub, "to_kwargs") else given
        elif "key_value" in f.metadata:
            from primo_loop.cli import parse_options

            values[f.name] = parse_options(getattr(ns, dest, []))
        elif hasattr(ns, dest):
            value = getattr(ns, dest)
            values[f.name] = tuple(value) if isinstance(value, list) and typing.get_origin(tp) is tuple else value
    values.update(fixed)
    return cls(**values)


def parse_dataclass(cls: type, argv: Sequence[str] | None = None, **parser_kw: Any) -> Any:
    """Parse ``argv`` (default: ``sys.argv[1:]``) into a ``cls`` instance."""
    parser = OneLineParser(**parser_kw)
    add_dataclass_options(parser, cls)
    return from_namespace(cls, parser.parse_args(sys.argv[1:] if argv is None else argv))


def count_options(parser: argparse.ArgumentParser) -> int:
    """How many options ``parser`` has (``--name``/``--no-name`` count once; ``--help`` is not counted)."""
    return sum(1 for a in parser._actions if a.option_strings and not isinstance(a, argparse._HelpAction))
