"""Purchases pages (stub: the sales-UI helper replaces this module)."""

from django.http import HttpResponse
from django.urls import path


def orders(request):
    return HttpResponse("")


urlpatterns = [path("orders/", orders, name="orders")]
