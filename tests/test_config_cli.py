"""The dataclass -> command-line generator: one option per field, its docstring the help, every default shown,
typed conversion with one-line errors."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest

from primo_loop.config_cli import (
    OneLineParser,
    add_dataclass_options,
    count_options,
    field_docs,
    from_namespace,
    parse_dataclass,
)


@dataclass
class Inner:
    """Nested settings.

    Attributes:
        rate: documented in the class docstring (the Google style)
            over two lines.
    """

    rate: float = 0.5
    frame_every: int | None = None
    on: bool = True
    """turn it on"""


@dataclass
class Args:
    steps: int = 100
    """env steps"""
    mode: Literal["fast", "slow"] = "fast"
    """how to run"""
    limit: float | None = None
    """an optional limit"""
    sizes: tuple[int, ...] = (64, 64)
    """layer sizes"""
    pair: tuple[int, int] = (1, 2)
    """exactly two"""
    names: list[str] = field(default_factory=list)
    """some names"""
    verbose: bool = False
    """talk more"""
    out: str = "runs/x"
    """where to write"""
    inner: Inner = field(default_factory=lambda: Inner(rate=0.25), metadata={"exclude": ("frame_every",)})
    """nested"""
    hidden: int = 3
    """never on the command line"""
    extra: dict = field(default_factory=dict, metadata={"key_value": "extra-option"})
    """free-form options"""

    def __post_init__(self):
        self.hidden = 3


def parser() -> OneLineParser:
    p = OneLineParser(prog="prog")
    add_dataclass_options(p, Args)
    return p


def test_field_docs_read_attribute_docstrings_and_the_attributes_section():
    assert field_docs(Args)["steps"] == "env steps"
    docs = field_docs(Inner)
    assert docs["rate"] == "documented in the class docstring (the Google style) over two lines."
    assert docs["on"] == "turn it on"


def test_every_type_converts_and_nested_fields_get_a_prefix():
    args = parse_dataclass(Args, ["--steps", "7", "--mode", "slow", "--limit", "2.5", "--sizes", "8", "16", "32",
                                  "--pair", "3", "4", "--names", "a", "b", "--verbose", "--inner.rate", "0.75",
                                  "--inner.no-on", "--extra-option", "k=1"])
    assert args == Args(steps=7, mode="slow", limit=2.5, sizes=(8, 16, 32), pair=(3, 4), names=["a", "b"],
                        verbose=True, inner=Inner(rate=0.75, on=False), extra={"k": 1})
    assert parse_dataclass(Args, ["--limit", "none", "--no-verbose"]).limit is None
    # defaults: the nested factory's own values, not the nested class's
    assert parse_dataclass(Args, []).inner == Inner(rate=0.25)


def test_help_shows_every_default_and_each_docstring(capsys):
    with pytest.raises(SystemExit):
        parser().parse_args(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    for piece in ("env steps (default: 100)", "how to run (default: fast)", "an optional limit (default: none)",
                  "layer sizes (default: 64 64)", "talk more (default: false)", "(default: 0.25)",
                  "turn it on (default: true)", "free-form options (default: none; repeat for more)"):
        assert piece in text, piece
    assert "--inner.frame-every" not in text  # excluded by the field's metadata


@pytest.mark.parametrize("argv, message", [
    (["--steps", "abc"], "argument --steps: expected an integer, got 'abc'"),
    (["--limit", "x"], "argument --limit: expected a number or none, got 'x'"),
    (["--mode", "medium"], "argument --mode: invalid choice: 'medium'"),
    (["--inner.rate", "fast"], "argument --inner.rate: expected a number, got 'fast'"),
    (["--pair", "1"], "argument --pair: expected 2 arguments"),
])
def test_a_value_of_the_wrong_type_is_one_line_and_exit_2(capsys, argv, message):
    with pytest.raises(SystemExit) as exc:
        parser().parse_args(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert err.count("\n") == 1 and err.startswith("prog: error: ") and message in err, err


def test_count_options_counts_a_bool_pair_once():
    # steps mode limit sizes pair names verbose out hidden extra, inner.rate inner.on (frame_every excluded)
    p = parser()
    assert count_options(p) == 12
    assert from_namespace(Args, p.parse_args([]), steps=5).steps == 5


@dataclass
class Resolved:
    every: int = 10
    """query every N steps"""
    frame_every: int | None = None
    """frame stride (none: every)"""

    def __post_init__(self):
        if self.frame_every is None:
            self.frame_every = self.every


@dataclass
class Outer:
    inner: Resolved = field(default_factory=Resolved)
    """nested, resolving a None in __post_init__"""


def test_a_nested_none_default_stays_none_so_post_init_resolves_it_from_the_options_given():
    # the default instance holds frame_every=10 (resolved); passing that on would pin it to the old `every`
    assert parse_dataclass(Outer, ["--inner.every", "5"]).inner.frame_every == 5
