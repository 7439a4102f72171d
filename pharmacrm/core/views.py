"""Core pages (to be completed by the UI work): home, health check, sign-in, OTP, audit viewer."""

from django.http import HttpResponse


def healthz(request):
    return HttpResponse("ok", content_type="text/plain")
