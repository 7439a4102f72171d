"""What the pinyin-order tests (拼音排序, tests/*/test_pinyin_order*.py) share: products and teams whose code-point
order is not their pinyin order, and the names a page or one of its <select>s shows, in the order the user sees them."""

from __future__ import annotations

PRODUCTS = ["宁咳", "安心宁", "止咳宝"]  # in code-point order
PINYIN_PRODUCTS = ["安心宁", "宁咳", "止咳宝"]  # an, ning, zhi
TEAMS = ["东北团队", "医学信息组", "华东团队"]  # in code-point order
PINYIN_TEAMS = ["东北团队", "华东团队", "医学信息组"]  # dong, hua, yi


def make_products() -> list:
    """The catalogue's PRODUCTS."""
    from pharmacrm.servicedesk.models import Product

    return [
        Product.objects.create(brand_name=name, generic_name="通用名", approval_number=f"国药准字H2024987{i}",
                               dosage_form="片剂", strength="5mg")  # fmt: skip
        for i, name in enumerate(PRODUCTS)
    ]


def make_teams() -> list:
    """The TEAMS."""
    from pharmacrm.core.models import Team

    return [Team.objects.create(name=name) for name in TEAMS]


def select(html: str, name: str) -> str:
    """The HTML of the page's <select name=…>."""
    start = html.index(f'name="{name}"')
    return html[start : html.index("</select>", start)]


def shown(html: str, names: list[str]) -> list[str]:
    """The names in the order the HTML shows them (each at its first place); every one of them must be there."""
    assert all(name in html for name in names), [n for n in names if n not in html]
    return sorted(names, key=html.index)


def offered(html: str, name: str, names: list[str]) -> list[str]:
    """The names the <select name=…> offers, in the order the user sees them; every one of them must be offered."""
    return shown(select(html, name), names)
