"""`make run`'s set-up in one Python process (Django starts once): migrate, demo data, static files.

Usage: python scripts/prepare_run.py [--demo]
"""

import os
import sys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pharmacrm.settings")


def main(argv: list[str]) -> None:
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", interactive=False)
    if "--demo" in argv:
        call_command("demo")
    # WhiteNoise serves the collected files; unchanged files are skipped, so this is quick after the first run.
    call_command("collectstatic", interactive=False, verbosity=0)


if __name__ == "__main__":
    main(sys.argv[1:])
