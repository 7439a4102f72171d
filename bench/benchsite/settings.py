"""The product's settings plus one bench-only URL: `/bench/bare-insert/`, the baseline the ticket API is
compared with (a plain view that inserts one row). Used by bench/api_bench.py only, never by the product."""

from pharmacrm.settings import *  # noqa: F403

ROOT_URLCONF = "benchsite.urls"
