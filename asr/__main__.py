"""``python -m asr worker ...``: the same command as ``hotline worker``, usable before server.py wires it."""
from __future__ import annotations

import argparse
import sys

from config.settings import SettingsError, load_settings


def main(argv: list[str] | None = None) -> int:
    from asr.service import register_cli

    parser = argparse.ArgumentParser(prog="python -m asr")
    parser.add_argument("--config")
    register_cli(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.config)
    except SettingsError as exc:
        print(f"asr: {exc}", file=sys.stderr)
        return 2
    return int(args.func(settings, args) or 0)


if __name__ == "__main__":
    sys.exit(main())
