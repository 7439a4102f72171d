"""Sign-in, second factor, sign-out, one's own password, the audit viewer, and users and roles."""

from django.urls import path

from . import views, views_users

urlpatterns = [
    path("login/", views.login_view, name="login"),
    path("otp/", views.otp_view, name="otp"),
    path("otp/enrol/", views.otp_enrol_view, name="otp-enrol"),
    path("logout/", views.logout_view, name="logout"),
    path("password/", views.password_change_view, name="password-change"),
    path("audit/", views.audit_list, name="audit"),
    path("users/", views_users.user_list, name="users"),
    path("users/new/", views_users.user_create, name="users-new"),
    path("users/<int:pk>/", views_users.user_edit, name="users-edit"),
    path("users/<int:pk>/unlock/", views_users.user_unlock, name="users-unlock"),
    path("users/<int:pk>/second-factor/", views_users.user_second_factor, name="users-second-factor"),
]
