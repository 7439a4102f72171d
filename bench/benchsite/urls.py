from django.db import connection
from django.http import HttpResponse
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt


@csrf_exempt
def bare_insert(request):
    """One INSERT and a 201: what any write endpoint on this server costs at the least."""
    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO bench_bare (note) VALUES (%s)", [request.body[:100].decode(errors="replace")])
    return HttpResponse(status=201)


urlpatterns = [path("bench/bare-insert/", bare_insert), path("", include("pharmacrm.urls"))]
