"""The demo data: a user per role, sales teams, ~300 institutions and ~2,000 people that look real.

Deterministic (random.Random(2026)) apart from passwords and TOTP secrets; loaded once per database.
Records are written with bulk inserts that still go through the encrypted fields, the derived
columns (`refresh_derived`) and the search index, and the load is audited as one import.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import os
import random
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from faker import Faker

from pharmacrm.customers.pinyin import lazy_pinyin

from . import audit, keys, signatures
from .models import AuditEntry, Counter, Region, Team, User
from .roles import SECOND_FACTOR_ROLES, Role

MARKER = "demo:loaded"  # a Counter row: its presence means the demo data is in this database
SCALE_MARKER = "demo:scale"  # the scale the demo was loaded at, in thousandths (absent: loaded before it was kept)
SEED = 2026
A = AuditEntry.Action


class DemoRefused(Exception):
    """The demo data must not go into this database."""


@dataclass
class DemoResult:
    created: bool
    users: int = 0
    institutions: int = 0
    departments: int = 0
    people: int = 0
    password: str | None = None  # only when generated: shown once
    credentials_path: Path | None = None
    totp_secrets: dict[str, str] = field(default_factory=dict)


# --- reference lists ---------------------------------------------------------------------------
# fmt: off

# (province code prefix, city or None for a municipality, telephone area code, weight); the first
# city of each province is its capital, where the provincial hospitals stand.
CITIES = [
    ("11", None, "010", 6), ("12", None, "022", 3), ("31", None, "021", 6), ("50", None, "023", 3),
    ("13", "石家庄市", "0311", 2), ("13", "唐山市", "0315", 1), ("13", "保定市", "0312", 1), ("13", "邯郸市", "0310", 1),
    ("14", "太原市", "0351", 2), ("14", "大同市", "0352", 1),
    ("15", "呼和浩特市", "0471", 1), ("15", "包头市", "0472", 1),
    ("21", "沈阳市", "024", 2), ("21", "大连市", "0411", 2),
    ("22", "长春市", "0431", 2), ("22", "吉林市", "0432", 1),
    ("23", "哈尔滨市", "0451", 2), ("23", "大庆市", "0459", 1),
    ("32", "南京市", "025", 3), ("32", "苏州市", "0512", 3), ("32", "无锡市", "0510", 2), ("32", "徐州市", "0516", 1),
    ("32", "常州市", "0519", 1),
    ("33", "杭州市", "0571", 3), ("33", "宁波市", "0574", 2), ("33", "温州市", "0577", 2), ("33", "绍兴市", "0575", 1),
    ("34", "合肥市", "0551", 2), ("34", "芜湖市", "0553", 1),
    ("35", "福州市", "0591", 2), ("35", "厦门市", "0592", 2), ("35", "泉州市", "0595", 1),
    ("36", "南昌市", "0791", 2), ("36", "赣州市", "0797", 1),
    ("37", "济南市", "0531", 2), ("37", "青岛市", "0532", 2), ("37", "烟台市", "0535", 1), ("37", "潍坊市", "0536", 1),
    ("41", "郑州市", "0371", 3), ("41", "洛阳市", "0379", 1),
    ("42", "武汉市", "027", 3), ("42", "宜昌市", "0717", 1), ("42", "襄阳市", "0710", 1),
    ("43", "长沙市", "0731", 3), ("43", "衡阳市", "0734", 1),
    ("44", "广州市", "020", 5), ("44", "深圳市", "0755", 4), ("44", "佛山市", "0757", 2), ("44", "珠海市", "0756", 1),
    ("45", "南宁市", "0771", 2), ("45", "柳州市", "0772", 1), ("45", "桂林市", "0773", 1),
    ("46", "海口市", "0898", 1), ("46", "三亚市", "0898", 1),
    ("51", "成都市", "028", 4), ("51", "绵阳市", "0816", 1),
    ("52", "贵阳市", "0851", 1), ("53", "昆明市", "0871", 2), ("53", "大理白族自治州", "0872", 1),
    ("54", "拉萨市", "0891", 1),
    ("61", "西安市", "029", 3), ("61", "宝鸡市", "0917", 1),
    ("62", "兰州市", "0931", 1), ("63", "西宁市", "0971", 1), ("64", "银川市", "0951", 1), ("65", "乌鲁木齐市", "0991", 1),
]  # fmt: skip

TEAMS = {
    "华北团队": ("11", "12", "13", "14", "15"),
    "东北团队": ("21", "22", "23"),
    "华东团队": ("31", "32", "33", "34", "35", "36", "37"),
    "华中团队": ("41", "42", "43"),
    "华南团队": ("44", "45", "46"),
    "西南团队": ("50", "51", "52", "53", "54"),
    "西北团队": ("61", "62", "63", "64", "65"),
}

DEMO_USERS = [  # username, role, display name
    ("admin", Role.ADMIN, "周建华"), ("manager", Role.MANAGER, "李国强"), ("kam", Role.KAM, "王晓燕"),
    ("agent", Role.AGENT, "陈思雨"), ("expert", Role.EXPERT, "刘志明"), ("support", Role.SUPPORT, "赵磊"),
    ("aftersales", Role.AFTERSALES, "孙丽娟"), ("rep", Role.REP, "张浩"), ("pv", Role.PV, "吴静"),
    ("analyst", Role.ANALYST, "郑雪"), ("auditor", Role.AUDITOR, "黄文博"),
]  # fmt: skip

KIND_COUNTS = {  # institutions at scale 1.0 (departments come on top)
    "hospital": 110, "clinic": 35, "township": 25, "community": 30, "pharmacy": 45,
    "distributor": 30, "insurance": 12, "research": 8, "association": 5,
}  # fmt: skip
PEOPLE = 2000
OUTSIDE_ADMINISTRATION = {"350527"}  # 金门县: listed in GB/T 2260, not administered from the mainland

GENERAL_DEPTS = [
    "心内科", "呼吸内科", "消化内科", "肿瘤科", "内分泌科", "神经内科", "肾内科", "血液科", "普外科", "骨科",
    "儿科", "妇产科", "感染科", "风湿免疫科", "急诊科", "老年医学科",
]  # fmt: skip
SPECIAL_DEPTS = {
    "中医院": ["中医内科", "针灸科", "中医骨伤科", "脾胃病科", "药剂科"],
    "肿瘤医院": ["肿瘤内科", "放疗科", "胸外科", "乳腺外科", "药剂科"],
    "儿童医院": ["小儿呼吸科", "新生儿科", "小儿消化科", "小儿神经科", "药剂科"],
    "妇幼保健院": ["妇科", "产科", "儿童保健科", "药剂科"],
}
CITY_HOSPITALS = [
    "第一人民医院", "第二人民医院", "第三人民医院", "人民医院", "中心医院", "中医院", "妇幼保健院", "肿瘤医院",
    "儿童医院", "中西医结合医院",
]  # fmt: skip
PROVINCE_HOSPITALS = ["人民医院", "中医院", "肿瘤医院", "妇幼保健院", "儿童医院", "第二人民医院"]
COUNTY_HOSPITALS = ["人民医院", "中医院", "妇幼保健院", "第二人民医院"]
PRIVATE_BRANDS = ["仁和", "康宁", "济民", "博爱", "同心", "德仁", "华康", "安泰", "瑞康", "同济", "仁爱", "康复"]
PHARMACY_BRANDS = ["康源", "百姓缘", "仁心", "德济", "万家", "益康", "健民", "国药堂", "惠民", "福寿堂"]
DISTRIBUTOR_BRANDS = ["华康", "瑞丰", "九州通达", "润泽", "恒信", "康泰", "鑫源", "汇通", "众联", "天和"]
TOWNS = ["城关", "新集", "李庄", "石桥", "马集", "双河", "龙泉", "柳林", "青山", "白沙", "桥头", "王店", "高桥"]
STREETS = [
    "人民路", "解放路", "中山路", "建设路", "新华路", "胜利路", "和平路", "文化路", "健康路", "长江路", "黄河路",
    "友谊路", "光明路", "朝阳路", "青年路", "东风路", "迎宾大道", "学府路", "滨江路", "工业大道", "民主路", "金融街",
]  # fmt: skip
STREET_SECTIONS = ["", "", "", "东段", "西段", "南段", "北段"]
MALE_GIVEN = [
    "伟", "强", "磊", "军", "洋", "勇", "杰", "涛", "明", "超", "刚", "平", "辉", "鹏", "华", "飞", "鑫", "波", "斌",
    "宇", "浩", "凯", "健", "俊", "帆", "旭", "宁", "龙", "林", "峰", "建国", "建华", "志强", "志明", "国强", "海涛",
    "文博", "晓东", "振华", "立新", "永刚", "德明", "子轩", "浩然", "俊杰", "宇航", "博文", "家豪", "晨阳", "建军",
    "卫东", "红军", "春生", "少华", "天佑", "思远", "一鸣", "泽宇", "明轩", "嘉诚",
]
FEMALE_GIVEN = [
    "芳", "娜", "敏", "静", "丽", "艳", "娟", "霞", "燕", "玲", "婷", "雪", "琳", "颖", "倩", "洁", "慧", "萍", "红梅",
    "秀英", "桂英", "丽娟", "晓燕", "淑珍", "婷婷", "思雨", "雨欣", "欣怡", "佳怡", "梦琪", "诗涵", "雅静", "晓丽",
    "海燕", "春梅", "玉兰", "凤英", "丹丹", "文静", "嘉欣", "若曦", "一诺", "晓红", "秀兰", "美玲", "婉清", "梓涵",
]
COMMUNITY_STREETS = ["东风", "解放", "建设", "新华", "人民", "城南", "城北", "花园", "滨河", "湖滨", "翠苑", "长乐"]
MOBILE_PREFIXES = [
    "130", "131", "132", "133", "135", "136", "137", "138", "139", "150", "151", "152", "153", "155", "156", "157",
    "158", "159", "166", "176", "177", "178", "180", "181", "182", "183", "185", "186", "187", "188", "189", "191",
    "198", "199",
]  # fmt: skip
MAIL_DOMAINS = ["163.com", "126.com", "qq.com", "sina.com", "foxmail.com", "139.com"]

INSTITUTION_TAGS = ["集采中标医院", "DTP药房", "双通道药店", "学术合作", "临床试验基地", "医联体牵头单位", "县域医共体", "新客户开发"]
PERSON_TAGS = ["KOL", "学术带头人", "临床研究者", "讲者", "处方活跃", "需回访", "会议邀请"]
NEEDS = {
    "hospital": ["希望获得最新临床指南解读", "关注药品供应稳定性", "需要不良反应上报培训", "计划开展真实世界研究", "关注医保目录新增品种"],
    "pharmacy": ["希望增加供货频次", "需要店员产品知识培训", "关注慢病会员管理方案"],
    "distributor": ["关注账期与返利政策", "希望拓展县域配送网络", "需要冷链运输资质文件"],
    "insurance": ["关注药品价格与医保支付标准", "需要药物经济学评价资料"],
    "person": ["希望参加学术会议", "关注新适应症临床数据", "需要患者教育材料", "希望获得用药指导资料"],
}  # fmt: skip


# fmt: on


# --- small generators --------------------------------------------------------------------------


def _weighted(rng: random.Random, table: dict[str, float]) -> str:
    return rng.choices(list(table), weights=list(table.values()))[0]


def _org_code(rng: random.Random) -> str:
    """A 9-character organisation code (GB 11714) with its check character."""
    body = "".join(rng.choice("0123456789") for _ in range(8))
    c = 11 - sum(int(d) * w for d, w in zip(body, (3, 7, 9, 10, 5, 8, 4, 2), strict=True)) % 11
    return body + ("X" if c == 10 else "0" if c == 11 else str(c))


def _credit_code(rng: random.Random, authority: str, region_code: str, used: set[str]) -> str:
    from pharmacrm.customers.normalise import make_credit_code

    while True:
        code = make_credit_code(authority + region_code + _org_code(rng))
        if code not in used:
            used.add(code)
            return code


def _landline(rng: random.Random, area: str, used: set[str]) -> str:
    while True:
        length = 8 if len(area) == 3 or rng.random() < 0.85 else 7
        number = str(rng.randint(2, 8)) + "".join(rng.choice("0123456789") for _ in range(length - 1))
        if area + number not in used:
            used.add(area + number)
            return f"{area}-{number}"


def _person_landline(rng: random.Random, area: str, used: set[str]) -> str:
    """A person's landline stored as the services store it (digits only): an exported and re-imported
    person then compares as unchanged. Institutions keep their phone as typed, as the services do."""
    from pharmacrm.customers.normalise import validate_landline

    return validate_landline(_landline(rng, area, used))


def _mobile(rng: random.Random, used: set[str]) -> str:
    while True:
        number = rng.choice(MOBILE_PREFIXES) + "".join(rng.choice("0123456789") for _ in range(8))
        if number not in used:
            used.add(number)
            return number


def _street(rng: random.Random) -> str:
    street = rng.choice(STREETS)
    section = rng.choice(STREET_SECTIONS) if street.endswith("路") else ""
    return f"{street}{section}{rng.randint(1, 399)}号"


def _person_name(b: _Builder, male: bool) -> str:
    return b.fake.last_name() + b.rng.choice(MALE_GIVEN if male else FEMALE_GIVEN)


def _past(rng: random.Random, now: datetime.datetime, days_min: int, days_max: int) -> datetime.datetime:
    return now - datetime.timedelta(days=rng.randint(days_min, days_max), minutes=rng.randint(0, 1439))


@dataclass
class City:
    name: str  # 杭州市 / 北京市
    province: Region
    region: Region  # the city (or the municipality)
    districts: list[Region]
    urban: list[Region]  # the city's districts (区): where city-level institutions stand
    area: str
    weight: int
    capital: bool

    @property
    def short(self) -> str:
        return self.name.removesuffix("市")


def _cities() -> list[City]:
    provinces = {r.code[:2]: r for r in Region.objects.filter(level=Region.Level.PROVINCE)}
    out, seen = [], set()
    for prefix, name, area, weight in CITIES:
        province = provinces[prefix]
        if name is None:
            region, stem = province, prefix
        else:
            region = Region.objects.get(level=Region.Level.CITY, code__startswith=prefix, name=name)
            stem = region.code[:4]
        districts = [
            r
            for r in Region.objects.filter(level=Region.Level.DISTRICT, code__startswith=stem)
            if r.code not in OUTSIDE_ADMINISTRATION
        ] or [region]
        urban = [r for r in districts if r.name.endswith("区")] or districts
        out.append(
            City(name or province.name, province, region, districts, urban, area, weight, prefix not in seen)
        )
        seen.add(prefix)
    return out


# --- the loader --------------------------------------------------------------------------------


class _Builder:
    """Builds the demo records in memory, then writes them in bulk."""

    def __init__(self, scale: float, seed: int):
        self.scale = scale
        self.rng = random.Random(seed)
        self.fake = Faker("zh_CN")
        self.fake.seed_instance(seed)
        self.now = timezone.now()
        self.cities = _cities()
        self.names: set[str] = set()
        self.credit_codes: set[str] = set()
        self.phones: set[str] = set()
        self.mobiles: set[str] = set()
        self.heads: set[int] = set()  # hospitals that already have a 院长

    def n(self, count: int) -> int:
        return max(1, round(count * self.scale))

    def city(self) -> City:
        return self.rng.choices(self.cities, weights=[c.weight for c in self.cities])[0]

    def district(self, city: City, urban: bool = False) -> Region:
        return self.rng.choice(city.urban if urban else city.districts)

    def district_label(self, city: City, district: Region) -> str:
        """杭州市西湖区 / 北京市朝阳区 / 桐庐县: how local institutions are prefixed."""
        if district.level != Region.Level.DISTRICT:
            return city.name
        if district.name.endswith(("县", "旗")) or (
            district.name.endswith("市") and district.name != city.name
        ):
            return district.name
        return city.name + district.name

    def unique(self, candidates) -> str | None:
        for name in candidates:
            if name not in self.names:
                self.names.add(name)
                return name
        return None


def _users(password: str) -> tuple[dict[str, User], dict[str, str]]:
    from django_otp.plugins.otp_totp.models import TOTPDevice

    users, totp = {}, {}
    for username, role, display in DEMO_USERS:
        user, created = User.objects.get_or_create(
            username=username,
            defaults={
                "display_name": display, "last_name": display[:1], "first_name": display[1:],
                "email": f"{username}@example.com", "is_staff": role == Role.ADMIN, "is_superuser": role == Role.ADMIN,
            },
        )  # fmt: skip
        if created:
            user.set_password(password)
            user._password_change_audited = True  # part of the creation audited below
            user.save(update_fields=["password"])
            user.groups.add(Group.objects.get(name=role.value))
            audit.record(
                A.CREATE,
                user,
                actor_name="demo",
                changes={"username": [None, username], "roles": [[], [role.value]]},
            )
        if role in SECOND_FACTOR_ROLES or signatures.signs(user):  # the manager signs approvals with it
            device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
            if device is None:
                device = TOTPDevice.objects.create(user=user, name=_("Demo authenticator"), confirmed=True)
            totp[username] = base64.b32encode(binascii.unhexlify(device.key)).decode()
        users[username] = user
    return users, totp


def _forget_demo_signing_tries(users: dict[str, User], totp: dict[str, str]) -> None:
    """The demo's decisions are signed with throw-away authenticators (keyaccounts/demo.py); trying the
    manager's own one first counted as a wrong code. Its user starts with a clean slate."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    TOTPDevice.objects.filter(user__in=[users[name] for name in totp]).update(
        throttling_failure_count=0, throttling_failure_timestamp=None
    )


def _teams(users: dict[str, User]) -> dict[str, Team]:
    provinces = {r.code[:2]: r for r in Region.objects.filter(level=Region.Level.PROVINCE)}
    teams = {}
    for name, prefixes in TEAMS.items():
        team, _created = Team.objects.get_or_create(name=name)
        team.territory.add(*(provinces[p] for p in prefixes))
        teams[name] = team
    teams["华北团队"].lead = users["manager"]
    teams["华北团队"].save(update_fields=["lead"])
    teams["华东团队"].lead = users["kam"]
    teams["华东团队"].save(update_fields=["lead"])
    users["rep"].teams.add(teams["华北团队"])
    users["kam"].teams.add(teams["华东团队"])
    return teams


def _team_for(teams: dict[str, Team], region_code: str) -> Team:
    return next(teams[name] for name, prefixes in TEAMS.items() if region_code[:2] in prefixes)


def _account_fields(b: _Builder, teams, users, region_code: str, key_weight: float) -> dict:
    """Tier, stage, owner, team, source and dates, spread the way a real customer base looks."""
    from pharmacrm.customers.choices import Source, Stage, Tier

    rng = b.rng
    tier = _weighted(
        rng, {Tier.KEY: 0.05 * key_weight, Tier.VIP: 0.12 * key_weight, Tier.REGULAR: 0.45, Tier.NEW: 0.38}
    )
    if tier == Tier.KEY:
        # "key account" comes only from the key-account programme (keyaccounts/demo.py lists two customers,
        # after this); the customers drawn for it are the large VIPs (the same draw: the rest stays as it was)
        tier = Tier.VIP
    stage = _weighted(
        rng,
        {
            Stage.ACTIVE: 0.42,
            Stage.DECISION: 0.1,
            Stage.INTENT: 0.15,
            Stage.POTENTIAL: 0.28,
            Stage.CHURNED: 0.05,
        },
    )
    if tier in (Tier.KEY, Tier.VIP):
        stage = Stage.ACTIVE
    team = _team_for(teams, region_code)
    if team.name == "华北团队" and rng.random() < 0.6:
        owner = users["rep"]
    elif tier in (Tier.KEY, Tier.VIP):
        owner = users["kam"]
    else:
        owner = rng.choice([None, None, users["manager"], users["kam"]])
    created = _past(rng, b.now, 20, 1100)
    updated = min(b.now, created + datetime.timedelta(days=rng.randint(0, 400)))
    source = _weighted(
        rng,
        {
            Source.MARKET_RESEARCH: 0.25, Source.BUSINESS_CONTACT: 0.35, Source.CUSTOMER_INITIATED: 0.1,
            Source.INDUSTRY_DATA: 0.25, Source.OTHER: 0.05,
        },
    )  # fmt: skip
    return {"tier": tier, "stage": stage, "owner": owner, "team": team, "source": source,
            "created_at": created, "updated_at": updated}  # fmt: skip


def _hospital(b: _Builder) -> tuple[dict | None, str]:
    """Name, grade, beds … of one hospital; returns (fields, department family)."""
    rng = b.rng
    for _attempt in range(40):
        city = b.city()
        level = _weighted(rng, {"province": 0.15, "city": 0.5, "county": 0.25, "private": 0.1})
        if level == "province":
            if not city.capital:
                continue
            suffix = rng.choice(PROVINCE_HOSPITALS)
            name, grade, district = city.province.name + suffix, "3A", b.district(city, urban=True)
        elif level == "city":
            suffix = rng.choice(CITY_HOSPITALS)
            name, district = city.name + suffix, b.district(city, urban=True)
            grade = _weighted(rng, {"3A": 0.4, "3B": 0.25, "2A": 0.25, "3": 0.1})
        elif level == "county":
            district = b.district(city)
            suffix = rng.choice(COUNTY_HOSPITALS)
            name = b.district_label(city, district) + suffix
            grade = _weighted(rng, {"2A": 0.4, "2B": 0.4, "2": 0.2})
        else:
            district = b.district(city)
            suffix = rng.choice(["医院", "骨科医院", "眼科医院", "康复医院"])
            name = f"{city.short}{rng.choice(PRIVATE_BRANDS)}{suffix}"
            grade = _weighted(rng, {"1": 0.5, "0": 0.3, "2B": 0.2})
        if b.unique([name]):
            break
    else:
        return None, ""
    family = next((k for k in SPECIAL_DEPTS if name.endswith(k)), "general")
    beds = {
        "3A": (1200, 4500),
        "3B": (600, 1500),
        "3": (500, 1200),
        "2A": (250, 700),
        "2B": (120, 400),
        "2": (100, 300),
    }
    low, high = beds.get(grade, (20, 99))
    public = level != "private"
    return (
        {
            "name": name, "kind": "hospital", "grade": grade, "beds": rng.randint(low, high) // 10 * 10,
            "city": city, "district": district, "authority": "12" if public else "52",
            "legal_representative": b.fake.name(),
        },
        family,
    )  # fmt: skip


def _other_institution(b: _Builder, kind: str) -> dict:
    rng = b.rng
    for _attempt in range(60):
        city = b.city()
        district = b.district(city, urban=kind in ("insurance", "research", "association", "distributor"))
        local = b.district_label(city, district)
        if kind == "clinic":
            name = (
                f"{local}{rng.choice(PRIVATE_BRANDS)}{rng.choice(['诊所', '门诊部', '中医诊所', '口腔诊所'])}"
            )
            authority = rng.choice(["52", "92"])
        elif kind == "township":
            name = f"{local}{rng.choice(TOWNS)}镇卫生院"
            authority = "12"
        elif kind == "community":
            name = f"{local}{rng.choice(COMMUNITY_STREETS)}街道社区卫生服务中心"
            authority = "12"
        elif kind == "pharmacy":
            brand = rng.choice(PHARMACY_BRANDS)
            short_district = (
                district.name.removesuffix("区").removesuffix("县") if district.level == 3 else city.short
            )
            name = rng.choice([f"{city.short}{brand}大药房有限公司", f"{brand}大药房（{short_district}店）"])
            authority = "91"
        elif kind == "distributor":
            name = f"{city.short}{rng.choice(DISTRIBUTOR_BRANDS)}医药{rng.choice(['有限公司', '有限责任公司', '股份有限公司'])}"
            authority = "91"
        elif kind == "insurance":
            name, authority = f"{city.name}医疗保障局", "11"
        elif kind == "research":
            name = rng.choice(
                [
                    f"{city.province.name}医学科学院",
                    f"{city.province.name}药物研究所",
                    f"{city.name}疾病预防控制中心",
                ]
            )
            authority = "12"
        else:  # association
            name = rng.choice(
                [f"{city.province.name}医药行业协会", f"{city.province.name}药学会", f"{city.name}医师协会"]
            )
            authority = "51"
        if b.unique([name]):
            return {"name": name, "kind": kind, "city": city, "district": district, "authority": authority,
                    "legal_representative": b.fake.name()}  # fmt: skip
    return {}


def _departments(b: _Builder, family: str, grade: str) -> list[str]:
    rng = b.rng
    count = {"3A": (4, 6), "3B": (3, 4), "3": (3, 4), "2A": (2, 3)}.get(grade, (1, 2))
    pool = SPECIAL_DEPTS.get(family, GENERAL_DEPTS)
    chosen = rng.sample([d for d in pool if d != "药剂科"], min(rng.randint(*count), len(pool) - 1))
    return (["药剂科"] + chosen) if grade in ("3A", "3B", "3") or rng.random() < 0.5 else chosen


def _institutions(b: _Builder, teams, users):
    from pharmacrm.customers.choices import InstitutionType
    from pharmacrm.customers.models import Institution

    rng = b.rng
    specs: list[tuple[dict, list[str]]] = []
    for kind, count in KIND_COUNTS.items():
        for _i in range(b.n(count)):
            if kind == "hospital":
                fields, family = _hospital(b)
                if fields is None:
                    continue
                depts = _departments(b, family, fields["grade"])
                fields["specialties"] = list(dict.fromkeys(d for d in depts if d != "药剂科"))
            else:
                fields, depts = _other_institution(b, kind), []
            if fields:
                specs.append((fields, depts))
    objs, dept_names = [], []
    for fields, depts in specs:
        city, district = fields.pop("city"), fields.pop("district")
        authority = fields.pop("authority")
        key_weight = (
            3.0 if fields.get("grade") == "3A" else 0.3 if fields["kind"] in ("clinic", "township") else 1.0
        )
        obj = Institution(
            **fields,
            region=district,
            credit_code=_credit_code(rng, authority, district.code, b.credit_codes)
            if rng.random() < 0.93
            else None,
            address=f"{district.full_name or city.name}{_street(rng)}",
            phone=_landline(rng, city.area, b.phones),
            needs=rng.choice(NEEDS.get(fields["kind"], [""])) if rng.random() < 0.5 else "",
            **_account_fields(b, teams, users, district.code, key_weight),
        )
        obj.area = city.area  # kept for the departments' and people's landlines
        objs.append(obj)
        dept_names.append(depts)
    objs += _duplicate_institutions(b, objs, InstitutionType)
    dept_names += [[] for _ in range(len(objs) - len(dept_names))]
    _save(Institution, objs)
    departments = []
    for parent, names in zip(objs, dept_names, strict=True):
        for dept in names:
            d = Institution(
                name=dept, kind=InstitutionType.DEPARTMENT, parent=parent, region=parent.region,
                phone=_landline(rng, parent.area, b.phones) if rng.random() < 0.6 else "",
                tier=parent.tier, stage=parent.stage, owner=parent.owner, team=parent.team, source=parent.source,
                created_at=parent.created_at, updated_at=parent.updated_at,
            )  # fmt: skip
            d.area = parent.area
            departments.append(d)
    _save(Institution, departments)
    _tag(Institution, objs, INSTITUTION_TAGS, rng, 0.25)
    return objs, departments


def _duplicate_institutions(b: _Builder, objs, InstitutionType) -> list:
    """A few records typed in twice, so that the duplicates page has something to show."""
    from pharmacrm.customers.models import Institution

    rng, dups = b.rng, []
    hospitals = [
        o for o in objs if o.kind == InstitutionType.HOSPITAL and o.region.level == Region.Level.DISTRICT
    ]
    for original in rng.sample(hospitals, min(len(hospitals), b.n(3))):
        # the same hospital entered again by a rep: a space in the name, no credit code
        name = original.name[: len(original.name) // 2] + " " + original.name[len(original.name) // 2 :]
        dups.append(
            Institution(
                name=name,
                kind=original.kind,
                grade=original.grade,
                region=original.region,
                address=original.address,
                phone="",
                tier="new",
                stage="potential",
                owner=original.owner,
                team=original.team,
                source="contact",
                notes=_("Entered by a sales rep; possibly the same as an existing record."),
                created_at=b.now - datetime.timedelta(days=rng.randint(1, 30)),
                updated_at=b.now,
            )  # fmt: skip
        )
        dups[-1].area = original.area
    pharmacies = [o for o in objs if o.kind == InstitutionType.PHARMACY and "（" in o.name]
    for original in rng.sample(pharmacies, min(len(pharmacies), b.n(2))):
        # a second branch sharing the chain's hotline
        dups.append(
            Institution(
                name=original.name.replace("店）", "二店）"),
                kind=original.kind,
                region=original.region,
                address=f"{original.region.full_name}{_street(rng)}",
                phone=original.phone,
                tier="regular",
                stage="active",
                owner=original.owner,
                team=original.team,
                source="inbound",
                created_at=b.now - datetime.timedelta(days=rng.randint(1, 60)),
                updated_at=b.now,
            )  # fmt: skip
        )
        dups[-1].area = original.area
    return dups


def _save(model, objs) -> None:
    """Codes, derived columns, the insert (which encrypts) and the search index, in bulk."""
    from pharmacrm.customers import search, services

    if not objs:
        return
    for obj, code in zip(objs, services.next_codes(model, len(objs)), strict=True):
        obj.code = code
        obj.refresh_derived()
    model.objects.bulk_create(objs, batch_size=500)
    for i in range(0, len(objs), 1000):
        search.reindex(objs[i : i + 1000])


def _tag(model, objs, names: list[str], rng: random.Random, share: float) -> None:
    from pharmacrm.customers.models import Tag

    tags = [Tag.objects.get_or_create(name=n)[0] for n in names]
    through = model.tags.through
    owner_field = model._meta.model_name + "_id"
    links = []
    for obj in objs:
        if rng.random() < share:
            for tag in rng.sample(tags, rng.randint(1, 2)):
                links.append(through(**{owner_field: obj.pk, "tag_id": tag.pk}))
    through.objects.bulk_create(links, batch_size=1000)


# --- people ------------------------------------------------------------------------------------

DOCTOR_TITLES = {"主任医师": 0.15, "副主任医师": 0.25, "主治医师": 0.35, "住院医师": 0.25}
PHARMACIST_TITLES = {"主任药师": 0.1, "副主任药师": 0.2, "主管药师": 0.35, "药师": 0.35}
HOSPITAL_OFFICES = [
    ("admin", "院长"), ("admin", "副院长"), ("admin", "医务处处长"), ("admin", "医保办主任"), ("admin", "药学部主任"),
    ("purchasing", "采购中心主任"), ("purchasing", "药品采购主管"), ("purchasing", "设备与药品采购主管"),
]  # fmt: skip


def _role_and_title(b: _Builder, inst, dept) -> tuple[str, str]:
    from pharmacrm.customers.choices import PersonRole as R

    rng = b.rng
    kind = inst.kind
    if kind == "hospital":
        if dept is None:
            role, title = rng.choice(HOSPITAL_OFFICES)
            if title == "院长":
                if inst.pk in b.heads:
                    return R.ADMINISTRATOR, "副院长"
                b.heads.add(inst.pk)
            return role, title
        if dept.name == "药剂科":
            if rng.random() < 0.2:
                return R.DEPT_HEAD, "药剂科主任"
            return R.PHARMACIST, _weighted(rng, PHARMACIST_TITLES)
        roll = rng.random()
        if roll < 0.12:
            return R.DEPT_HEAD, "科主任"
        if roll < 0.22:
            return R.NURSE, rng.choice(["护士长", "主管护师"])
        return R.DOCTOR, _weighted(rng, DOCTOR_TITLES)
    if kind in ("clinic", "township", "community"):
        return rng.choice(
            [(R.DOCTOR, "全科医生"), (R.DOCTOR, "主治医师"), (R.DEPT_HEAD, "主任"), (R.PHARMACIST, "药师")]
        )
    if kind == "pharmacy":
        return rng.choice(
            [
                (R.PHARMACIST, "执业药师"),
                (R.PHARMACIST, "执业药师"),
                (R.OTHER, "店长"),
                (R.PURCHASING, "采购主管"),
            ]
        )
    if kind == "distributor":
        return rng.choice(
            [
                (R.PURCHASING, "采购经理"),
                (R.PURCHASING, "采购主管"),
                (R.OTHER, "总经理"),
                (R.OTHER, "质量负责人"),
            ]
        )
    if kind == "insurance":
        return rng.choice([(R.OTHER, "医药服务管理科科长"), (R.OTHER, "待遇保障科科长"), (R.OTHER, "副局长")])
    if kind == "research":
        return rng.choice([(R.OTHER, "研究员"), (R.OTHER, "副研究员"), (R.OTHER, "所长")])
    return R.OTHER, rng.choice(["秘书长", "副秘书长"])


def _email(b: _Builder, name: str) -> str:
    rng = b.rng
    domain = rng.choice(MAIL_DOMAINS)
    if domain == "qq.com":
        return f"{rng.randint(10_000_000, 3_999_999_999)}@qq.com"
    return f"{''.join(lazy_pinyin(name))}{rng.choice(['', str(rng.randint(1, 99)), str(rng.randint(1960, 1998))])}@{domain}"


def _people(b: _Builder, institutions, departments, users):
    from pharmacrm.customers.models import Person

    rng = b.rng
    weight = {"hospital": 9, "clinic": 1.5, "township": 1.5, "community": 2, "pharmacy": 1.5, "distributor": 2,
              "insurance": 1.2, "research": 1.5, "association": 1}  # fmt: skip
    grade_factor = {"3A": 3, "3B": 2, "3": 2, "2A": 1.2}
    weights = [weight[i.kind] * grade_factor.get(i.grade, 1) for i in institutions]
    depts_of: dict[int, list] = {}
    for d in departments:
        depts_of.setdefault(d.parent_id, []).append(d)
    people = []
    for inst in rng.choices(institutions, weights=weights, k=b.n(PEOPLE)):
        dept = None
        if depts_of.get(inst.pk) and rng.random() < 0.85:
            dept = rng.choice(depts_of[inst.pk])
        role, title = _role_and_title(b, inst, dept)
        male = rng.random() < (0.55 if role != "nurse" else 0.05)
        name = _person_name(b, male)
        born = datetime.date(rng.randint(1958, 1997), rng.randint(1, 12), rng.randint(1, 28))
        city_label = inst.region.full_name if inst.region else ""
        p = Person(
            name=name, gender="M" if male else "F", role=role, title=title, institution=inst, department=dept,
            mobile=_mobile(rng, b.mobiles) if rng.random() < 0.9 else "",
            landline=_person_landline(rng, inst.area, b.phones) if rng.random() < 0.35 else "",
            email=_email(b, name) if rng.random() < 0.6 else "",
            birthday=born if rng.random() < 0.7 else None,
            home_address=f"{city_label}{_street(rng)}{rng.randint(1, 30)}栋{rng.randint(101, 2804)}室" if rng.random() < 0.08 else "",
            needs=rng.choice(NEEDS["person"]) if rng.random() < 0.3 else "",
            tier=inst.tier if rng.random() < 0.5 else "regular", stage=inst.stage, owner=inst.owner, team=inst.team,
            source=inst.source, created_at=inst.created_at + datetime.timedelta(days=rng.randint(0, 60)),
        )  # fmt: skip
        p.created_at = min(p.created_at, b.now)
        p.updated_at = max(p.created_at, inst.updated_at)
        people.append(p)
    people += _duplicate_people(b, people)
    _save(Person, people)
    _tag(Person, people, PERSON_TAGS, rng, 0.15)
    return people


def _duplicate_people(b: _Builder, people) -> list:
    """The same doctor at a second hospital with the same mobile; the same name twice in one department."""
    from pharmacrm.customers.models import Person

    rng, dups = b.rng, []
    with_mobile = [p for p in people if p.mobile and p.role == "doctor"]
    hospitals = list(
        {p.institution.pk: p.institution for p in people if p.institution.kind == "hospital"}.values()
    )
    for original in rng.sample(with_mobile, min(len(with_mobile), b.n(4))):
        second = rng.choice(hospitals)
        dups.append(
            Person(
                name=original.name,
                gender=original.gender,
                role=original.role,
                title=original.title,
                institution=second,
                mobile=original.mobile,
                tier="new",
                stage="potential",
                source="contact",
                owner=second.owner,
                team=second.team,
                notes=_("Works at several hospitals (multi-site practice)."),
                created_at=b.now - datetime.timedelta(days=rng.randint(1, 30)),
                updated_at=b.now,
            )  # fmt: skip
        )
    in_dept = [p for p in people if p.department is not None and p.email]
    for original in rng.sample(in_dept, min(len(in_dept), b.n(2))):
        dups.append(
            Person(
                name=original.name,
                gender=original.gender,
                role=original.role,
                title=original.title,
                institution=original.institution,
                department=original.department,
                email=original.email,
                tier="new",
                stage="potential",
                owner=original.owner,
                team=original.team,
                source="inbound",
                created_at=b.now - datetime.timedelta(days=rng.randint(1, 30)),
                updated_at=b.now,
            )  # fmt: skip
        )
    return dups


def _consents(b: _Builder, people, users) -> int:
    from pharmacrm.customers.choices import Channel, ConsentPurpose, ConsentStatus
    from pharmacrm.customers.models import Consent

    rng = b.rng
    recorders = [users["rep"], users["kam"], users["agent"]]
    rows = []

    def add(person, purpose, channel, status, at, evidence=""):
        rows.append(Consent(person=person, purpose=purpose, channel=channel, status=status, at=min(at, b.now),
                            evidence=evidence, recorded_by=rng.choice(recorders), created_at=min(at, b.now)))  # fmt: skip

    for p in people:
        if not (p.mobile or p.email) or rng.random() > 0.75:
            continue
        start = p.created_at + datetime.timedelta(days=rng.randint(0, 20))
        add(p, ConsentPurpose.DATA_PROCESSING, rng.choice([Channel.PAPER, Channel.VISIT, Channel.WEB]),
            ConsentStatus.GIVEN, start, _("Signed the personal-information processing consent form."))  # fmt: skip
        if rng.random() < 0.6:
            add(
                p,
                ConsentPurpose.SERVICE,
                Channel.PHONE,
                ConsentStatus.GIVEN,
                start + datetime.timedelta(days=1),
            )
        if rng.random() < 0.4:
            given = start + datetime.timedelta(days=rng.randint(1, 90))
            add(p, ConsentPurpose.MARKETING, rng.choice([Channel.WECHAT, Channel.EMAIL, Channel.SMS]),
                ConsentStatus.GIVEN, given)  # fmt: skip
            if rng.random() < 0.2:
                add(p, ConsentPurpose.MARKETING, Channel.PHONE, ConsentStatus.WITHDRAWN,
                    given + datetime.timedelta(days=rng.randint(10, 200)), _("Asked by phone not to be contacted again."))  # fmt: skip
        if p.role == "doctor" and rng.random() < 0.25:
            add(
                p,
                ConsentPurpose.PHARMACOVIGILANCE,
                Channel.VISIT,
                ConsentStatus.GIVEN,
                start + datetime.timedelta(days=3),
            )
    Consent.objects.bulk_create(rows, batch_size=1000)
    return len(rows)


def _write_credentials(password: str | None, totp: dict[str, str]) -> Path:
    path = Path(settings.VAR_DIR) / "demo-credentials.txt"
    issuer = getattr(settings, "OTP_TOTP_ISSUER", "PharmaCRM")
    lines = [
        _("PharmaCRM demo users (written %(when)s). Keep this file private.")
        % {"when": f"{timezone.localtime():%Y-%m-%d %H:%M}"},
        "",
        _("Users: %(names)s") % {"names": " ".join(u for u, _role, _name in DEMO_USERS)},
        (_("Password for every demo user: %(password)s") % {"password": password})
        if password
        else _("Password for every demo user: the value of PHARMACRM_DEMO_PASSWORD"),
        "",
        _("Second factor: add these TOTP secrets (base32) to an authenticator app."),
    ]
    for username, secret in totp.items():
        lines.append(
            f"  {username}: {secret}   otpauth://totp/{issuer}:{username}?secret={secret}&issuer={issuer}"
        )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    path.chmod(0o600)
    return path


LANGUAGES_MARKER = "demo:preferred_languages"


def _preferred_languages() -> int:
    """A few doctors with an e-mail address prefer another language than the site's (a foreign KOL at a Beijing
    hospital, a doctor from Hong Kong): their mail to the desk is acknowledged in it. Once per database, the same
    people every time (the first by id), without touching the random draws of the rest of the demo."""
    from pharmacrm.customers.choices import PreferredLanguage
    from pharmacrm.customers.models import Person

    if Counter.objects.filter(name=LANGUAGES_MARKER).exists():
        return 0
    ids = list(
        Person.objects.active().filter(role="doctor", preferred_language="").exclude(email_bidx="")
        .order_by("id").values_list("pk", flat=True)[:5]
    )  # fmt: skip
    Person.objects.filter(pk__in=ids[:3]).update(preferred_language=PreferredLanguage.EN)
    Person.objects.filter(pk__in=ids[3:]).update(preferred_language=PreferredLanguage.ZH_HANT)
    Counter.objects.create(name=LANGUAGES_MARKER, value=len(ids))
    return len(ids)


def loaded_scale() -> float:
    """The scale this database's demo was loaded at (1 when it was loaded before the scale was kept)."""
    value = Counter.objects.filter(name=SCALE_MARKER).values_list("value", flat=True).first()
    return value / 1000 if value else 1.0


def _later_demo_data(scale: float) -> None:
    """Demo records of features added after the customer master data, each loaded once by its own marker; those
    whose number follows the size of the customer base (the service desk's tickets, the opportunities) at the demo's
    `scale`."""
    from pharmacrm.customers.models import Person
    from pharmacrm.servicedesk import demo as servicedesk_demo

    _preferred_languages()

    people = list(
        Person.objects.active().filter(institution__isnull=False).select_related("institution").order_by("id")[:600]
    )
    servicedesk_demo.load(people, count=servicedesk_demo.ticket_count(scale))
    servicedesk_demo.load_complaint_history(people)
    from pharmacrm.keyaccounts import demo as keyaccounts_demo
    from pharmacrm.sales import demo as sales_demo

    sales_demo.load()
    sales_demo.load_targets()
    keyaccounts_demo.load()
    from pharmacrm.safety import demo as safety_demo

    # after the key accounts' past tickets too, which the net flags: PV has triaged what came in more than two days
    # ago, not left last quarter's flags waiting months past their one-working-day hand-off
    safety_demo.load()
    from pharmacrm.servicedesk import campaign_demo

    campaign_demo.load()  # after the evaluations: its customers' classes are the evaluation's in force
    from pharmacrm.engagement import demo as engagement_demo

    engagement_demo.load()
    engagement_demo.load_interactions()  # a year of the owners' contacts: the plans' contacts, the channel effect
    from pharmacrm.cooperation import demo as cooperation_demo

    cooperation_demo.load()
    from pharmacrm.licences import demo as licences_demo

    licences_demo.load()
    from pharmacrm.loyalty import demo as loyalty_demo

    loyalty_demo.load()  # after the orders: members and their points come from the purchases
    from pharmacrm.market import demo as market_demo

    market_demo.load()  # after the key accounts: competitor presence is observed there first
    from pharmacrm.training import demo as training_demo

    training_demo.load()  # after the service desk's tickets: a course's effect on performance reads them
    sales_demo.load_opportunities(scale=scale)  # last: its opportunities move their customers' lifecycle stage forward
    from pharmacrm.sales import churn

    churn.refresh()  # the churn watch and its rates, as the worker's morning refresh would leave them
    from pharmacrm.sales import clv

    clv.compute()  # customer lifetime value, as the nightly run would leave it
    engagement_demo.load_stage_tasks()  # the lifecycle's stage history and stage tasks in every state
    sales_demo.load_appraisals()  # the KPI appraisal's schemes and their last closed period's results
    from pharmacrm.reports import demo as reports_demo

    reports_demo.load()


def load(*, force: bool = False, scale: float = 1.0, seed: int = SEED) -> DemoResult:
    """Load the demo data once; refuses when DATABASE_URL is set unless `force`, and at once while another load
    runs on the database (two `make run` side by side: the second ended in a traceback), or a restore runs."""
    if getattr(settings, "DATABASE_URL", None) and not force:
        raise DemoRefused(
            _(
                "DATABASE_URL is set: demo data never goes into a production database. "
                "Use --force only on a throw-away database."
            )
        )
    try:
        with keys.operation_lock("demo"):
            return _load(scale, seed)
    except keys.DemoRunning:
        raise DemoRefused(
            _(
                "Nothing was changed: another demo load is running on this database. Wait for it to finish; it "
                "loads the demo data."
            )
        ) from None
    except keys.RestoreRunning:
        raise DemoRefused(
            _(
                "Nothing was changed: a restore is running on this database. Wait for it to finish, then load "
                "the demo data again."
            )
        ) from None


def _load(scale: float, seed: int) -> DemoResult:
    if Counter.objects.filter(name=MARKER).exists():
        _later_demo_data(loaded_scale())  # records of later features, into a database whose demo data came earlier
        return DemoResult(created=False)
    password = os.environ.get("PHARMACRM_DEMO_PASSWORD") or None
    generated = None if password else secrets.token_urlsafe(12)
    b = _Builder(scale, seed)
    with transaction.atomic():
        users, totp = _users(password or generated)
        teams = _teams(users)
        institutions, departments = _institutions(b, teams, users)
        people = _people(b, institutions, departments, users)
        consents = _consents(b, people, users)
        Counter.objects.create(name=MARKER, value=1)
        Counter.objects.create(name=SCALE_MARKER, value=max(1, round(scale * 1000)))
        _later_demo_data(scale)
        _forget_demo_signing_tries(users, totp)
        audit.record(
            A.IMPORT, ("customers.institution", "", "demo data"), actor_name="demo", source="demo",
            institutions=len(institutions), departments=len(departments), people=len(people), consents=consents,
        )  # fmt: skip
    path = _write_credentials(generated, totp)
    return DemoResult(
        created=True, users=len(users), institutions=len(institutions), departments=len(departments),
        people=len(people), password=generated, credentials_path=path, totp_secrets=totp,
    )  # fmt: skip
