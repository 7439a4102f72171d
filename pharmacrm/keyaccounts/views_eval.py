"""Evaluation pages (stub)."""

from django.http import HttpResponse
from django.urls import path


def evaluations(request):
    return HttpResponse("")


urlpatterns = [path("evaluations/", evaluations, name="evaluations")]
