"""Django's own form messages, listed so that makemessages keeps them in our catalogues.

Django's Chinese wording reads like a programmer's ("确保该变量包含不超过 200 字符 (目前字符数 10000)。", "输入一个
有效的日期。" and, in Traditional Chinese, no full stop), unlike every message of ours. Our catalogues are read
before Django's, so translating these here gives every form the product's house style in all three languages.
This module is never imported (see drf_messages for the API's messages).
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
    ]
