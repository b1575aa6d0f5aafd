"""Every command's numeric options are validated when parsed, and an option that does nothing in the chosen mode
is refused (edge/option_types.py): the class, over every parser the project has, not a list of examples."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from edge import option_types as options
from edge.cli import build_parser as edge_parser
from export.cli import build_eval_parser, build_parser as export_parser
from export.cpu_precision import build_parser as int8_parser
from export.fp16.__main__ import build_parser as fp16_parser
from export.train.__main__ import build_parser as train_parser

VALIDATORS = {options.positive_float, options.non_negative_float, options.count, options.non_negative_int,
              options.seed, options.counts}


def parsers() -> dict[str, argparse.ArgumentParser]:
    found = {"edge-export": export_parser(), "edge-export eval": build_eval_parser(),
             "python -m export.fp16": fp16_parser(), "python -m export.train": train_parser(),
             "python -m export.cpu_precision": int8_parser()}
    edge = edge_parser()
    sub = next(a for a in edge._actions if isinstance(a, argparse._SubParsersAction))
    found.update({f"edge {name}": p for name, p in sub.choices.items()})
    return found


def numeric_options() -> list[tuple[str, argparse.Action]]:
    return [(name, action) for name, p in parsers().items() for action in p._actions
            if action.option_strings and action.type is not None and action.type not in (str,)]


def test_no_numeric_option_takes_a_bare_int_or_float():
    bare = [f"{name} {action.option_strings[0]}" for name, action in numeric_options()
            if action.type in (int, float)]
    assert not bare, f"parse with edge/option_types.py's types: {bare}"
    assert len(numeric_options()) >= 20  # the walk found the options (rates, durations, seeds, counts, ...)


@pytest.mark.parametrize("name,option", [(n, a.option_strings[0]) for n, a in numeric_options()
                                         if a.type in VALIDATORS or getattr(a.type, "__name__", "").startswith("integer")])
def test_out_of_range_values_stop_at_the_parser(name: str, option: str, capsys):
    action = next(a for a in parsers()[name]._actions if a.option_strings[:1] == [option])
    for bad in ("-1", "nan", "inf", "1e400", "x", "-0.5"):
        with pytest.raises(argparse.ArgumentTypeError):
            action.type(bad)
    if action.type in (options.positive_float, options.count, options.counts):
        with pytest.raises(argparse.ArgumentTypeError):
            action.type("0")


@pytest.mark.parametrize("text,expected", [("0.5", 0.5), ("20", 20.0)])
def test_positive_float_takes_positive_numbers(text: str, expected: float):
    assert options.positive_float(text) == expected


def test_seed_range_and_counts():
    assert options.seed("0") == 0 and options.seed(str(2 ** 32 - 1)) == 2 ** 32 - 1
    with pytest.raises(argparse.ArgumentTypeError):
        options.seed(str(2 ** 32))
    assert options.counts("1, 2,4") == [1, 2, 4]
    for bad in ("1,,2", "1,0", ""):
        with pytest.raises(argparse.ArgumentTypeError):
            options.counts(bad)


@pytest.mark.parametrize("argv,message", [
    (["edge", "run", "--robot", "koch", "--policy", "p", "--hz", "0"], "argument --hz: must be > 0"),
    (["edge", "run", "--robot", "koch", "--policy", "p", "--duration", "-3"], "argument --duration: must be > 0"),
    (["edge", "demo", "--merge", "average"], "--merge only applies with --async"),
    (["edge", "emulate", "--servos", "0"], "argument --servos: must be an integer >= 1"),
    (["edge", "eval", "act", "--seed", "-1"], "argument --seed: must be an integer in 0.."),
    (["edge", "check", "p", "--tolerance", "nan"], "argument --tolerance: must be a finite number"),
    (["export.fp16", "p", "--tolerance", "0"], "argument --tolerance: must be > 0"),
    (["export.fp16", "p", "--steps", "0"], "argument --steps: must be an integer >= 1"),
    (["export.train", "act", "--out", "o", "--episodes", "0"], "argument --episodes: must be an integer >= 1"),
    (["export.cli", "ckpt", "--out", "o", "--samples", "0"], "argument --samples: must be an integer >= 1"),
    (["export.cli", "eval", "act", "--any-checkpoint"], "--any-checkpoint only applies with --checkpoint"),
    (["edge", "demo", "--package", "p", "--policy", "vqbet"], "--policy only applies with a bundled policy"),
    (["edge", "check", "p", "--backend", "onnxruntime", "--engine-dir", "e"], "--engine-dir only applies with"),
])
def test_a_refused_option_is_one_usage_line_and_exit_2(argv: list[str], message: str):
    result = subprocess.run([sys.executable, "-m", *argv], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and message in result.stderr.splitlines()[-1], result.stderr
    assert "Traceback" not in result.stderr
