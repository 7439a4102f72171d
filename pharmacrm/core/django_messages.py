"""Django's own form messages, listed so that makemessages keeps them in our catalogues.

Django's Chinese wording reads like a programmer's ("确保该变量包含不超过 200 字符 (目前字符数 10000)。", "输入一个
有效的日期。" and, in Traditional Chinese, no full stop), unlike every message of ours. Our catalogues are read
before Django's, so translating these here gives every form the product's house style in all three languages.
This module is never imported (see drf_messages for the API's messages).

The password validators' messages are here too: Django 5.2 changed the "too short" message (`%d` instead of
`%(min_length)d`) and its Simplified Chinese catalogue was not updated, so on a zh-Hans page that one refusal came
out in English; the others say 你 where the product says 您.
"""

from django.utils.translation import gettext_noop, ngettext

MESSAGES = [
    gettext_noop("Enter a valid date."),
    gettext_noop("Enter a valid time."),
    gettext_noop("Enter a valid date/time."),
    gettext_noop("Enter a whole number."),
    gettext_noop("Enter a number."),
    gettext_noop("Ensure this value is less than or equal to %(limit_value)s."),
    gettext_noop("Ensure this value is greater than or equal to %(limit_value)s."),
    gettext_noop("Select a valid choice. %(value)s is not one of the available choices."),
    gettext_noop("Select a valid choice. That choice is not one of the available choices."),
    # password validators (django.contrib.auth.password_validation; pharmacrm.core.passwords)
    gettext_noop("The password is too similar to the %(verbose_name)s."),
    gettext_noop("Your password can’t be too similar to your other personal information."),
    gettext_noop("This password is too common."),
    gettext_noop("Your password can’t be a commonly used password."),
    gettext_noop("This password is entirely numeric."),
    gettext_noop("Your password can’t be entirely numeric."),
]


def _plurals(n: int) -> list[str]:
    return [
        ngettext(
            "Ensure this value has at most %(limit_value)d character (it has %(show_value)d).",
            "Ensure this value has at most %(limit_value)d characters (it has %(show_value)d).",
            n,
        ),
        ngettext(
            "Ensure this value has at least %(limit_value)d character (it has %(show_value)d).",
            "Ensure this value has at least %(limit_value)d characters (it has %(show_value)d).",
            n,
        ),
        ngettext(
            "This password is too short. It must contain at least %d character.",
            "This password is too short. It must contain at least %d characters.",
            n,
        ),
        ngettext(
            "Your password must contain at least %(min_length)d character.",
            "Your password must contain at least %(min_length)d characters.",
            n,
        ),
    ]
