"""Parse-time types for numeric command-line options, and the rule that an option must matter in its mode.

Every command (`edge ...`, `edge-export`, `python -m export.fp16|export.train|export.cpu_precision`) takes its
numbers through these types, so `--hz 0`, `--duration -3`, `--seed -1`, `--samples 0` or `--tolerance nan` stop at
the parser with argparse's one-line usage error (exit 2) instead of running, silently falling back, or tracing
back later. `only_with` refuses an option that does nothing in the chosen mode (`--merge` without `--async`).
It sits beside edge/exit_status.py, outside edge/commands/, because export's command lines use it too.
"""

from __future__ import annotations

import argparse
import math
from typing import Callable, Iterable

SEED_MAX = 2 ** 32 - 1  # numpy's legacy seeding and torch both take 0..2**32-1


def _number(text: str, kind: type) -> float:
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, "
                                         f"got {text[:40]!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text[:40]!r}")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0: rates (Hz), durations and periods (s), tolerances, temperatures."""
    value = _number(text, float)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def non_negative_float(text: str) -> float:
    """A finite number >= 0: margins and slacks, where 0 means none."""
    value = _number(text, float)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def count(text: str) -> int:
    """An integer >= 1: episodes, samples, steps, repeats, servos."""
    value = int(_number(text, int))
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text}")
    return value


def non_negative_int(text: str) -> int:
    """An integer >= 0, where 0 means "the default" (e.g. --workspace-mb 0: TensorRT's own limit)."""
    value = int(_number(text, int))
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text}")
    return value


def seed(text: str) -> int:
    """A random seed: an integer in 0..2**32-1."""
    value = int(_number(text, int))
    if not 0 <= value <= SEED_MAX:
        raise argparse.ArgumentTypeError(f"must be an integer in 0..{SEED_MAX}, got {text}")
    return value


def int_in(low: int, high: int) -> Callable[[str], int]:
    """An integer in low..high (an ONNX opset, a baud-rate index, ...)."""
    def parse(text: str) -> int:
        value = int(_number(text, int))
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be an integer in {low}..{high}, got {text}")
        return value
    parse.__name__ = f"integer {low}..{high}"
    return parse


def int_choice(values: Iterable[int]) -> Callable[[str], int]:
    """An integer among `values` (a Dynamixel baud rate, ...)."""
    allowed = sorted(set(values))

    def parse(text: str) -> int:
        value = int(_number(text, int))
        if value not in allowed:
            raise argparse.ArgumentTypeError(f"must be one of {', '.join(map(str, allowed))}, got {text}")
        return value
    parse.__name__ = "integer choice"
    return parse


def counts(text: str) -> list[int]:
    """A comma-separated list of counts (each >= 1), e.g. --steps 1,2,4."""
    items = [t.strip() for t in text.split(",")]
    if not all(items):
        raise argparse.ArgumentTypeError(f"expected comma-separated integers >= 1, got {text[:40]!r}")
    return [count(t) for t in items]


def int_list(low: int, high: int) -> Callable[[str], tuple[int, ...]]:
    """A comma-separated list of distinct integers in low..high, ascending (e.g. --serve-batch 2,4,8)."""
    item = int_in(low, high)

    def parse(text: str) -> tuple[int, ...]:
        values = [item(t.strip()) for t in text.split(",")]
        if len(set(values)) != len(values):
            raise argparse.ArgumentTypeError(f"lists a value twice: {text[:40]!r}")
        return tuple(sorted(values))
    parse.__name__ = f"list of integers {low}..{high}"
    return parse


def only_with(parser: argparse.ArgumentParser, option: str, needs: str,
              when: Callable[[argparse.Namespace], bool] | None = None) -> None:
    """Refuse `option` set away from its default unless its mode is chosen: `needs` (a flag of the same parser)
    given, or `when(args)` true (then `needs` only words the mode). An option that would do nothing in the chosen
    mode is an error, not a silent no-op. Call after the options are added."""
    actions = {a.option_strings[0]: a for a in parser._actions if a.option_strings}
    applies = when or (lambda args, dest=actions[needs].dest: bool(getattr(args, dest)))
    rules = list(parser.get_default("_only_with") or [])
    rules.append((option, actions[option].dest, actions[option].default, needs, applies))
    parser.set_defaults(_only_with=rules)


def check_modes(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Apply the `only_with` rules of the parser that parsed `args` (argparse's usage error, exit 2)."""
    for option, dest, default, needs, applies in getattr(args, "_only_with", None) or ():
        if getattr(args, dest) != default and not applies(args):
            parser.error(f"{option} only applies with {needs}")
