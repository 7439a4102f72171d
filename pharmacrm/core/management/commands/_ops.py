"""What the operations commands share: who is acting, for the audit trail."""

import getpass
import os


def cli_actor() -> str:
    """The operating-system account running a command, e.g. `cli:root` (commands have no web user)."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        name = str(os.getuid())
    return f"cli:{name}"
