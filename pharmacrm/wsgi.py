"""WSGI entry point (gunicorn pharmacrm.wsgi)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pharmacrm.settings")
application = get_wsgi_application()
