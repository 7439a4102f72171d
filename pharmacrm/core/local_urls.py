"""Where a page may send its user on to when a form or link says so ("next", a list's own address): a path on this
site only."""

from django.utils.http import url_has_allowed_host_and_scheme


def is_local(request, target: str | None) -> bool:
    """A path on this site ("/…"). Django's url_has_allowed_host_and_scheme also allows a bare word ("abc", "-1"),
    which redirect() then takes for the name of a URL pattern: no pattern has it, and the page failed with a 500."""
    return bool(target) and target.startswith("/") and url_has_allowed_host_and_scheme(
        target, {request.get_host()}, require_https=request.is_secure()
    )
