"""Reference data the service desk needs in every database: the default calendars (seed 000 §5.1) — the
business calendar, Monday to Friday 08:30–12:00 and 13:30–17:30 Asia/Shanghai with China's official
holidays and 调休, and 24×7 for urgent tickets such as medication errors. Used by the data migration
(with the historical model) and by tests that empty the database."""

DEFAULT_CALENDARS = [
    {
        "code": "business", "name": "工作日历（中国大陆）", "time_zone": "Asia/Shanghai",
        "windows": [["08:30", "12:00"], ["13:30", "17:30"]], "workdays": [0, 1, 2, 3, 4],
        "official_holidays": True, "always_on": False,
    },
    {
        "code": "always", "name": "全天候（7×24 小时）", "time_zone": "Asia/Shanghai",
        "windows": [], "workdays": [0, 1, 2, 3, 4, 5, 6], "official_holidays": False, "always_on": True,
    },
]  # fmt: skip


def ensure_calendars(BusinessCalendar) -> None:  # noqa: N803 (a model class, historical or current)
    for values in DEFAULT_CALENDARS:
        BusinessCalendar.objects.get_or_create(code=values["code"], defaults=values)
