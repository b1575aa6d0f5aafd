"""Sub-commands of `edge`. Each module defines `add_parser(subparsers) -> ArgumentParser` and `run(args) -> int`."""
