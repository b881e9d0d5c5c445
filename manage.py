#!/usr/bin/env python
"""Django's command-line utility, with readable one-line errors for unreachable services."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from django.core.management import execute_from_command_line

    from config.errors import run_cli

    run_cli(execute_from_command_line, sys.argv)


if __name__ == "__main__":
    main()
