"""Sign-in, second factor, sign-out, and the audit viewer."""

from django.urls import path

from . import views

urlpatterns = [
    path("login/", views.login_view, name="login"),
    path("otp/", views.otp_view, name="otp"),
    path("otp/enrol/", views.otp_enrol_view, name="otp-enrol"),
    path("logout/", views.logout_view, name="logout"),
    path("audit/", views.audit_list, name="audit"),
]
