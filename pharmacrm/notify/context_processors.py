"""The bell's unread count for the page header: one COUNT on the (recipient, read_at, created_at) index."""

from django.utils.functional import SimpleLazyObject


def bell(request):
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    from .services import unread_count

    return {"notify_unread": SimpleLazyObject(lambda: unread_count(user))}
