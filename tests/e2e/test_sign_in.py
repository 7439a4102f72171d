"""Signing in through the browser: a plain role lands on the dashboard, a privileged role passes the OTP step."""

import pytest
from django.urls import reverse
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from .conftest import shot, sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def current_code(device: TOTPDevice) -> str:
    """The code an authenticator app shows right now for this device."""
    return f"{totp(device.bin_key, device.step, device.t0, device.digits, device.drift):0{device.digits}d}"


def test_an_agent_signs_in_and_sees_the_dashboard_with_customer_navigation(page, users, xiehe):
    sign_in(page, "agent")

    assert page.url.rstrip("/").endswith(reverse("home").rstrip("/"))
    nav = page.get_by_role("navigation")
    assert nav.locator(f"a[href='{reverse('customers:institutions')}']").is_visible()
    assert nav.locator(f"a[href='{reverse('customers:people')}']").is_visible()
    # an agent may not read the audit trail, so the link is not there
    assert nav.locator(f"a[href='{reverse('audit')}']").count() == 0
    assert page.locator("#global-q").is_visible()
    shot(page, "home")


def test_a_wrong_password_keeps_the_user_on_the_sign_in_page_with_a_message(page, users):
    sign_in(page, "agent", password="not-the-password")

    assert reverse("login") in page.url
    assert page.locator(".alert, .error, [role=alert]").first.is_visible()
    assert page.locator("#global-q").count() == 0


def test_an_admin_needs_the_one_time_code_before_reaching_any_page(page, users):
    device = TOTPDevice.objects.create(user=users["admin"], name="phone", confirmed=True)
    sign_in(page, "admin")
    assert reverse("otp") in page.url

    # the second factor cannot be skipped by going elsewhere
    page.goto(reverse("customers:institutions"))
    assert reverse("otp") in page.url

    # nothing in the header calls a protected URL before the code (the bell's htmx request used to be
    # redirected here and paste a second code form into the header)
    assert page.locator("#notify-bell").count() == 0
    assert page.locator("#id_code").count() == 1

    page.fill("#id_code", current_code(device))
    with page.expect_navigation():
        page.press("#id_code", "Enter")
    assert reverse("otp") not in page.url
    assert page.locator("#notify-bell").count() == 1
    assert page.get_by_role("navigation").locator(f"a[href='{reverse('audit')}']").is_visible()
