"""Key-account programme pages (stub)."""

from django.http import HttpResponse
from django.urls import path


def home(request):
    return HttpResponse("")


urlpatterns = [path("", home, name="home")]
