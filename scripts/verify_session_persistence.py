#!/usr/bin/env python
"""Run `manage.py verify_session_persistence` (the seed's verification script), same flags."""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bo1site.settings")


def main() -> None:
    from django.core.management import execute_from_command_line

    execute_from_command_line(["manage.py", "verify_session_persistence", *sys.argv[1:]])


if __name__ == "__main__":
    main()
