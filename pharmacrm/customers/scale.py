"""Scale data: realistic Chinese institutions and people, generated deterministically and inserted in
bulk (chunked executemany on SQLite, COPY on PostgreSQL) with encryption, blind indexes and search terms.

Used by `manage.py seed` / `pharmacrm seed` and by the benchmarks in bench/.
"""

from __future__ import annotations

import bisect
import datetime
import itertools
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace

from django.db import connection, transaction
from django.utils import timezone

from pharmacrm.core import crypto
from pharmacrm.core.fields import EncryptedTextField
from pharmacrm.core.models import Region

from . import normalise, readings, search
from .choices import HospitalGrade, InstitutionType, PersonRole, Source, Stage, Tier
from .models import Institution, Person, SearchTerm, region_columns
from .services import next_codes

# --- reference pools ---------------------------------------------------------------------------

# The most common surnames with their share of the population in percent (2020 census order).
SURNAMES = (
    ("王", 7.25), ("李", 7.19), ("张", 6.83), ("刘", 5.38), ("陈", 4.53), ("杨", 3.08), ("黄", 2.23),
    ("赵", 2.19), ("吴", 2.00), ("周", 1.94), ("徐", 1.62), ("孙", 1.53), ("马", 1.47), ("朱", 1.35),
    ("胡", 1.31), ("郭", 1.15), ("何", 1.14), ("高", 1.08), ("林", 1.05), ("罗", 0.87), ("郑", 0.83),
    ("梁", 0.82), ("谢", 0.73), ("宋", 0.70), ("唐", 0.66), ("许", 0.64), ("韩", 0.63), ("冯", 0.62),
    ("邓", 0.62), ("曹", 0.60), ("彭", 0.58), ("曾", 0.57), ("肖", 0.56), ("田", 0.52), ("董", 0.51),
    ("袁", 0.49), ("潘", 0.47), ("于", 0.47), ("蒋", 0.46), ("蔡", 0.45), ("余", 0.44), ("杜", 0.42),
    ("叶", 0.42), ("程", 0.41), ("苏", 0.39), ("魏", 0.38), ("吕", 0.38), ("丁", 0.37), ("任", 0.37),
    ("沈", 0.36), ("姚", 0.35), ("卢", 0.35), ("姜", 0.34), ("崔", 0.33), ("钟", 0.33), ("谭", 0.32),
    ("陆", 0.31), ("汪", 0.30), ("范", 0.30), ("金", 0.29), ("石", 0.29), ("廖", 0.28), ("贾", 0.28),
    ("夏", 0.27), ("韦", 0.27), ("付", 0.26), ("方", 0.26), ("白", 0.25), ("邹", 0.25), ("孟", 0.24),
    ("熊", 0.24), ("秦", 0.23), ("邱", 0.23), ("江", 0.23), ("尹", 0.22), ("薛", 0.21), ("闫", 0.21),
    ("段", 0.20), ("雷", 0.20), ("侯", 0.19), ("龙", 0.19), ("史", 0.19), ("陶", 0.18), ("黎", 0.18),
    ("贺", 0.18), ("顾", 0.17), ("毛", 0.17), ("郝", 0.16), ("龚", 0.16), ("邵", 0.16), ("万", 0.15),
    ("钱", 0.15), ("严", 0.15), ("覃", 0.14), ("武", 0.14), ("戴", 0.14), ("莫", 0.13), ("孔", 0.13),
    ("向", 0.13), ("汤", 0.12), ("欧阳", 0.03), ("司马", 0.01), ("上官", 0.01), ("诸葛", 0.01),
)  # fmt: skip
MALE_CHARS = (
    "伟强磊军洋勇杰涛明超刚平辉鹏华飞鑫波斌宇浩凯健俊帆帅旭宁龙林阳建国峰亮成志海东文晨博睿哲昊然轩泽宏庆永"
    "德春晓光毅新刚兵星立彬振家豪一鸣子涵天佑嘉诚思远俊杰宗"
)
FEMALE_CHARS = (
    "芳娜敏静丽艳娟霞秀玲桂英燕丹萍红琳雪婷慧颖倩洁佳莉梅兰琴云蓉薇欣怡悦婧璐瑶晶妍雯琪诗涵梦语嘉可心月思"
    "小晓文玉凤翠淑惠珍"
)
# Province (first two code digits) → population in millions (2020 census) and the capital's area code.
PROVINCES = {
    "11": (21.9, "010"), "12": (13.9, "022"), "13": (74.6, "0311"), "14": (34.9, "0351"), "15": (24.0, "0471"),
    "21": (42.6, "024"), "22": (24.1, "0431"), "23": (31.9, "0451"), "31": (24.9, "021"), "32": (84.7, "025"),
    "33": (64.6, "0571"), "34": (61.0, "0551"), "35": (41.5, "0591"), "36": (45.2, "0791"), "37": (101.5, "0531"),
    "41": (99.4, "0371"), "42": (57.8, "027"), "43": (66.4, "0731"), "44": (126.0, "020"), "45": (50.1, "0771"),
    "46": (10.1, "0898"), "50": (32.1, "023"), "51": (83.7, "028"), "52": (38.6, "0851"), "53": (47.2, "0871"),
    "54": (3.6, "0891"), "61": (39.5, "029"), "62": (25.0, "0931"), "63": (5.9, "0971"), "64": (7.2, "0951"),
    "65": (25.9, "0991"),
}  # fmt: skip
DEPARTMENTS = (
    "心内科 呼吸内科 消化内科 神经内科 内分泌科 肾内科 血液科 肿瘤科 普外科 骨科 泌尿外科 神经外科 心胸外科 妇产科 儿科 "
    "眼科 耳鼻喉科 口腔科 皮肤科 急诊科 药剂科 检验科 影像科 麻醉科 感染科 风湿免疫科 精神科 康复科 中医科 重症医学科"
).split()
STREETS = (
    "人民路 解放路 中山路 建设路 和平路 新华路 文化路 胜利路 长江路 黄河路 光明路 朝阳路 青年路 团结路 幸福路 "
    "东风路 北京路 南京路 延安路 复兴路 五一路 健康路 滨江路 学府路 花园路 工农路 迎宾路 府前路 站前路 振兴路"
).split()
TOWNS = "城关 新兴 太平 永安 长安 青山 白云 新华 红星 东升 龙泉 桥头 石桥 柳河 金山 马场 河口 双河 三河 高桥".split()
BRANDS = "仁爱 博爱 康复 华夏 安康 仁和 济民 同济 康宁 惠民 健民 协和 和睦家 美中 长城 百汇 天佑 福寿".split()
PHARMACY_CHAINS = (
    "老百姓大药房 大参林 益丰大药房 一心堂 国大药房 海王星辰 同仁堂 漱玉平民 健之佳 华润堂 叮当快药".split()
)
DISTRIBUTORS = "国药控股 华润医药 上药控股 九州通医药 重药控股 鹭燕医药 南京医药 英特药业".split()
EMAIL_DOMAINS = (
    "163.com",
    "qq.com",
    "126.com",
    "sina.com",
    "139.com",
    "foxmail.com",
    "hotmail.com",
    "yeah.net",
)
MOBILE_PREFIXES = (
    "130 131 132 133 135 136 137 138 139 150 151 152 153 155 156 157 158 159 166 177 180 181 182 183 185 186 "
    "187 188 189 191 198 199"
).split()
TITLES = {
    PersonRole.DOCTOR: ("主任医师", "副主任医师", "主治医师", "住院医师"),
    PersonRole.DEPT_HEAD: ("科室主任", "副主任", "护士长"),
    PersonRole.NURSE: ("主任护师", "副主任护师", "主管护师", "护师", "护士"),
    PersonRole.PHARMACIST: ("主任药师", "副主任药师", "主管药师", "药师", "执业药师"),
    PersonRole.PURCHASING: ("采购经理", "采购专员", "设备科科长"),
    PersonRole.ADMINISTRATOR: ("院长", "副院长", "医务处处长", "药事委员会委员"),
    PersonRole.OTHER: ("经理", "专员", "主任"),
}
SPECIALTIES = ("内科", "外科", "心内科", "肿瘤科", "儿科", "妇产科", "骨科", "神经内科", "呼吸内科", "消化内科",
               "内分泌科", "眼科", "中医科", "急诊科", "康复科")  # fmt: skip
GRADES = ((HospitalGrade.G3A, 12), (HospitalGrade.G3B, 6), (HospitalGrade.G3, 3), (HospitalGrade.G2A, 18),
          (HospitalGrade.G2B, 10), (HospitalGrade.G2, 8), (HospitalGrade.G1, 20), (HospitalGrade.UNGRADED, 23))  # fmt: skip
# Institution kinds drawn per step (a hospital brings its departments along).
KIND_WEIGHTS = (
    (InstitutionType.HOSPITAL, 10), (InstitutionType.CLINIC, 20), (InstitutionType.TOWNSHIP, 8),
    (InstitutionType.COMMUNITY, 9), (InstitutionType.PHARMACY, 28), (InstitutionType.DISTRIBUTOR, 5),
    (InstitutionType.INSURANCE, 1), (InstitutionType.RESEARCH, 1), (InstitutionType.ASSOCIATION, 1),
)  # fmt: skip
# Where people work: relative weight of a person per institution of this kind.
PEOPLE_PER_KIND = {
    InstitutionType.HOSPITAL: 30, InstitutionType.CLINIC: 2, InstitutionType.TOWNSHIP: 3,
    InstitutionType.COMMUNITY: 3, InstitutionType.PHARMACY: 2, InstitutionType.DISTRIBUTOR: 3,
    InstitutionType.INSURANCE: 2, InstitutionType.RESEARCH: 3, InstitutionType.ASSOCIATION: 1,
}  # fmt: skip
ROLES_BY_KIND = {
    InstitutionType.HOSPITAL: ((PersonRole.DOCTOR, 70), (PersonRole.NURSE, 10), (PersonRole.PHARMACIST, 6),
                               (PersonRole.DEPT_HEAD, 6), (PersonRole.ADMINISTRATOR, 4), (PersonRole.PURCHASING, 4)),
    InstitutionType.PHARMACY: ((PersonRole.PHARMACIST, 70), (PersonRole.PURCHASING, 20), (PersonRole.OTHER, 10)),
    InstitutionType.DISTRIBUTOR: ((PersonRole.PURCHASING, 70), (PersonRole.OTHER, 30)),
}  # fmt: skip
DEFAULT_ROLES = (
    (PersonRole.DOCTOR, 60),
    (PersonRole.NURSE, 20),
    (PersonRole.PHARMACIST, 10),
    (PersonRole.OTHER, 10),
)
TIERS = ((Tier.NEW, 50), (Tier.REGULAR, 35), (Tier.VIP, 10), (Tier.KEY, 5))
STAGES = (
    (Stage.POTENTIAL, 40),
    (Stage.INTENT, 20),
    (Stage.DECISION, 10),
    (Stage.ACTIVE, 25),
    (Stage.CHURNED, 5),
)
SOURCES = ((Source.MARKET_RESEARCH, 30), (Source.BUSINESS_CONTACT, 30), (Source.INDUSTRY_DATA, 25),
           (Source.CUSTOMER_INITIATED, 10), (Source.OTHER, 5))  # fmt: skip

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ORG_SPACE = 31**9  # the 9-character organisation part of a credit code, in base 31


class Picker:
    """Weighted choice from a fixed population, O(log n) per draw (random.choices re-sums every call)."""

    def __init__(self, items_weights):
        self.items = [i for i, _ in items_weights]
        self.cum = list(itertools.accumulate(w for _, w in items_weights))
        self.total = self.cum[-1]

    def __call__(self, rng: random.Random):
        return self.items[bisect.bisect_right(self.cum, rng.random() * self.total)]


def _short_place(name: str) -> str:
    for suffix in (
        "特别行政区",
        "维吾尔自治区",
        "壮族自治区",
        "回族自治区",
        "自治区",
        "自治州",
        "地区",
        "省",
        "市",
        "盟",
    ):
        if name.endswith(suffix) and len(name) > len(suffix) + 1:
            return name[: -len(suffix)]
    return name


@dataclass
class Place:
    region: str  # district code
    province: str  # 河北省
    city: str  # 石家庄市 (the province's name for municipalities)
    district: str  # 长安区
    full_name: str
    area_code: str


def load_places() -> tuple[list[Place], list[float]]:
    """Every district with its city and province, weighted so each province gets its population share."""
    rows = {code: (name, parent, level, full) for code, name, parent, level, full in
            Region.objects.values_list("code", "name", "parent_id", "level", "full_name")}  # fmt: skip
    by_province: dict[str, list[Place]] = {}
    for code, (name, parent, level, full) in rows.items():
        if level != Region.Level.DISTRICT or code[:2] not in PROVINCES or name == "市辖区":
            continue
        city_code = parent
        province_code = rows[city_code][1] if city_code in rows else code[:2] + "0000"
        province = rows.get(province_code, ("",))[0]
        city = rows[city_code][0] if city_code in rows else province
        if city in ("市辖区", "县", "直辖县") or city.endswith("直辖县级行政区划"):
            city = province
        place = Place(code, province, city, name, full or f"{province}{city}{name}", PROVINCES[code[:2]][1])
        by_province.setdefault(code[:2], []).append(place)
    places, weights = [], []
    for prov, plist in sorted(by_province.items()):
        share = PROVINCES[prov][0] / len(plist)
        places += plist
        weights += [share] * len(plist)
    if not places:
        raise RuntimeError("The region table is empty: run the migrations first.")
    return places, weights


# --- value generators --------------------------------------------------------------------------


@dataclass
class Generator:
    """Deterministic source of realistic values; one per run, seeded."""

    seed: int = 0
    rng: random.Random = field(init=False)

    def __post_init__(self):
        self.rng = random.Random(self.seed)
        self.surname = Picker(SURNAMES)
        self.grade = Picker(GRADES)
        self.kind = Picker(KIND_WEIGHTS)
        self.tier = Picker(TIERS)
        self.stage = Picker(STAGES)
        self.source = Picker(SOURCES)
        self.roles = {k: Picker(v) for k, v in ROLES_BY_KIND.items()}
        self.default_roles = Picker(DEFAULT_ROLES)
        self._places: Picker | None = None

    # names ------------------------------------------------------------------------------------
    def person_name(self) -> tuple[str, str]:
        rng = self.rng
        gender = "M" if rng.random() < 0.52 else "F"
        pool = MALE_CHARS if gender == "M" else FEMALE_CHARS
        given = rng.choice(pool) if rng.random() < 0.35 else rng.choice(pool) + rng.choice(pool)
        return self.surname(rng) + given, gender

    def mobile(self, n: int) -> str:
        """Unique for n < 10^8 per prefix: the 8 subscriber digits are a bijection of n."""
        prefix = MOBILE_PREFIXES[n % len(MOBILE_PREFIXES)]
        return f"{prefix}{(n * 48271 + self.seed * 7919) % 100_000_000:08d}"

    def landline(self, area: str, n: int) -> str:
        digits = 8 if len(area) == 3 else 7 + n % 2
        first = "2345678"[n % 7]
        rest = (n * 2654435761 + self.seed) % 10 ** (digits - 1)
        return f"{area}-{first}{rest:0{digits - 1}d}"

    def email(self, name: str, n: int) -> str:
        local = "".join(search.syllables(normalise.name(name)))
        if not local.isascii():
            local = f"user{n}"
        return f"{local}{n % 10000}@{EMAIL_DOMAINS[n % len(EMAIL_DOMAINS)]}"

    def birthday(self) -> datetime.date:
        return datetime.date(1955, 1, 1) + datetime.timedelta(days=self.rng.randrange(0, 365 * 44))

    def id_number(self, region: str, birthday: datetime.date, gender: str) -> str:
        seq = self.rng.randrange(0, 500) * 2 + (1 if gender == "M" else 0)
        body = f"{region}{birthday:%Y%m%d}{seq:03d}"
        total = sum(int(c) * w for c, w in zip(body, _ID_WEIGHTS, strict=True))
        return body + "10X98765432"[total % 11]

    def credit_code(self, prefix: str, region: str, n: int) -> str:
        """A valid 统一社会信用代码; the organisation part is a bijection of n, so codes never collide."""
        org, x = [], (n * 1_000_003 + 17) % _ORG_SPACE
        for _ in range(9):
            x, r = divmod(x, 31)
            org.append(normalise.CREDIT_ALPHABET[r])
        return normalise.make_credit_code(prefix + region + "".join(org))

    def place(self, places, weights) -> Place:
        if self._places is None:
            self._places = Picker(list(zip(places, weights, strict=True)))
        return self._places(self.rng)

    # institutions -----------------------------------------------------------------------------
    def institution_name(self, kind: str, p: Place, grade: str = "") -> tuple[str, str]:
        """(name, short name) in the style real institutions of this kind are named."""
        rng, city, district = self.rng, p.city, p.district
        street, town, brand = rng.choice(STREETS), rng.choice(TOWNS), rng.choice(BRANDS)
        n = rng.randint(1, 9)
        ordinal = "一二三四五六七八九"[n - 1]
        if kind == InstitutionType.HOSPITAL:
            if grade in (HospitalGrade.G3A, HospitalGrade.G3B, HospitalGrade.G3):
                name = rng.choice((f"{city}第{ordinal}人民医院", f"{city}中心医院", f"{city}中医院",
                                   f"{city}妇幼保健院", f"{city}儿童医院", f"{_short_place(p.province)}省人民医院",
                                   f"{_short_place(city)}医学院附属第{ordinal}医院", f"{city}肿瘤医院"))  # fmt: skip
            elif grade == HospitalGrade.UNGRADED:
                name = rng.choice(
                    (
                        f"{city}{brand}医院",
                        f"{district}{brand}专科医院",
                        f"{_short_place(city)}{brand}眼科医院",
                    )
                )
            else:
                name = rng.choice((f"{district}人民医院", f"{district}中医医院", f"{district}第{ordinal}人民医院",
                                   f"{district}妇幼保健院", f"{city}{district}{brand}医院"))  # fmt: skip
            short = f"{_short_place(city)}{ordinal}院" if "第" in name and rng.random() < 0.5 else ""
            return name, short
        if kind == InstitutionType.CLINIC:
            surname = self.surname(rng)
            return rng.choice((f"{district}{street}{surname}氏诊所", f"{district}{street}社区诊所",
                               f"{city}{brand}口腔门诊部", f"{district}{surname}{ordinal}中医诊所")), ""  # fmt: skip
        if kind == InstitutionType.TOWNSHIP:
            return f"{district}{town}镇{rng.choice(('中心卫生院', '卫生院'))}", ""
        if kind == InstitutionType.COMMUNITY:
            return f"{district}{street}街道社区卫生服务中心", ""
        if kind == InstitutionType.PHARMACY:
            chain = rng.choice(PHARMACY_CHAINS)
            return f"{chain}{_short_place(city)}{street}店", chain
        if kind == InstitutionType.DISTRIBUTOR:
            group = rng.choice(DISTRIBUTORS)
            return rng.choice(
                (f"{group}{_short_place(city)}有限公司", f"{_short_place(city)}{brand}医药有限公司")
            ), group
        if kind == InstitutionType.INSURANCE:
            return rng.choice((f"{city}医疗保障局", f"{city}{district}医疗保障局")), ""
        if kind == InstitutionType.RESEARCH:
            return rng.choice((f"{_short_place(p.province)}省医学科学院", f"{city}医学研究所")), ""
        return rng.choice(
            (f"{_short_place(p.province)}省医师协会", f"{city}医学会", f"{_short_place(p.province)}省药学会")
        ), ""

    def institution(self, n: int, kind: str, p: Place) -> dict:
        """Plain field values of one institution (not a department); n is its unique number."""
        rng = self.rng
        grade = self.grade(rng) if kind == InstitutionType.HOSPITAL else ""
        name, short = self.institution_name(kind, p, grade)
        public = kind in (InstitutionType.HOSPITAL, InstitutionType.TOWNSHIP, InstitutionType.COMMUNITY,
                          InstitutionType.RESEARCH) and grade != HospitalGrade.UNGRADED  # fmt: skip
        prefix = {InstitutionType.INSURANCE: "11", InstitutionType.ASSOCIATION: "51"}.get(
            kind, "12" if public else "91"
        )
        beds = None
        if kind == InstitutionType.HOSPITAL:
            beds = rng.randint(800, 3000) if grade.startswith("3") else rng.randint(100, 799) if grade.startswith("2") \
                else rng.randint(20, 150)  # fmt: skip
        elif kind == InstitutionType.TOWNSHIP:
            beds = rng.randint(10, 80)
        specialties = rng.sample(SPECIALTIES, rng.randint(2, 5)) if kind == InstitutionType.HOSPITAL else []
        return {
            "name": name, "short_name": short, "kind": kind, "grade": grade, "beds": beds, "specialties": specialties,
            "region_id": p.region, "credit_code": self.credit_code(prefix, p.region, n),
            "legal_representative": self.person_name()[0],
            "address": f"{p.full_name}{rng.choice(STREETS)}{rng.randint(1, 999)}号",
            "phone": self.landline(p.area_code, n), "tier": self.tier(rng), "stage": self.stage(rng),
            "source": self.source(rng),
        }  # fmt: skip

    def department(self, hospital: dict, dept_name: str) -> dict:
        return {
            "name": dept_name, "short_name": "", "kind": InstitutionType.DEPARTMENT, "grade": "", "beds": None,
            "specialties": [], "region_id": hospital["region_id"], "credit_code": None, "legal_representative": "",
            "address": hospital["address"], "phone": "", "tier": hospital["tier"], "stage": hospital["stage"],
            "source": hospital["source"],
        }  # fmt: skip

    def institution_plan(
        self, count: int, places, weights, first: int = 1
    ) -> Iterator[tuple[dict, int | None]]:
        """`count` institutions as (values, index of parent in this plan or None); hospitals then their
        departments. `first` is the first one's unique number (its id): it keeps credit codes unique."""
        rng, made = self.rng, 0
        while made < count:
            kind = self.kind(rng)
            values = self.institution(first + made, kind, self.place(places, weights))
            parent_index = made
            yield values, None
            made += 1
            if kind == InstitutionType.HOSPITAL:
                k = min(rng.randint(3, 8), count - made)
                for dept in rng.sample(DEPARTMENTS, k):
                    yield self.department(values, dept), parent_index
                    made += 1

    # people -----------------------------------------------------------------------------------
    def person(self, n: int, inst_kind: str | None, region: str | None, hospital_phone: str = "") -> dict:
        """Plain field values of one person; n is their unique number (drives the unique mobile)."""
        rng = self.rng
        name, gender = self.person_name()
        role = self.roles.get(inst_kind, self.default_roles)(rng)
        birthday = self.birthday()
        r = rng.random()
        return {
            "name": name, "gender": gender, "role": role, "title": rng.choice(TITLES.get(role, ("",))),
            "mobile": self.mobile(n),
            "landline": (hospital_phone + f"转{rng.randint(100, 899)}") if hospital_phone and r < 0.3 else "",
            "email": self.email(name, n) if r < 0.7 else "",
            "birthday": birthday if r < 0.8 else None,
            "home_address": f"{rng.choice(STREETS)}{rng.randint(1, 300)}号{rng.randint(1, 30)}栋" if r < 0.15 else "",
            "id_number": self.id_number(region, birthday, gender) if region and r < 0.1 else "",
            "tier": self.tier(rng), "stage": self.stage(rng), "source": self.source(rng),
        }  # fmt: skip


# --- bulk insertion ----------------------------------------------------------------------------


def _fields(model):
    return [f for f in model._meta.concrete_fields]


class BulkWriter:
    """Insert rows of one model fast: SQLite executemany, PostgreSQL COPY; values already DB-ready."""

    def __init__(self, model, columns: list[str]):
        self.model = model
        self.table = model._meta.db_table
        self.columns = columns
        qn = connection.ops.quote_name
        self.col_sql = ", ".join(qn(c) for c in columns)

    def write(self, rows: list[tuple]) -> None:
        if not rows:
            return
        with connection.cursor() as cur:
            if connection.vendor == "postgresql":
                with cur.cursor.copy(
                    f"COPY {connection.ops.quote_name(self.table)} ({self.col_sql}) FROM STDIN"
                ) as cp:
                    for row in rows:
                        cp.write_row(row)
            else:
                marks = ", ".join(["%s"] * len(self.columns))
                cur.executemany(
                    f"INSERT INTO {connection.ops.quote_name(self.table)} ({self.col_sql}) VALUES ({marks})",
                    rows,
                )


class RowMaker:
    """Turns plain field values into a DB-ready row tuple: defaults, encryption, JSON.

    Datetimes must come already adapted (connection.ops.adapt_datetimefield_value): one per chunk."""

    def __init__(self, model):
        self.fields = _fields(model)
        self.columns = [f.column for f in self.fields]
        self.defaults = {}
        self.encrypted = {}
        self.prep = {}
        for f in self.fields:
            if isinstance(f, EncryptedTextField):
                self.encrypted[f.attname] = (
                    f"{model._meta.db_table}.{f.column}"  # as EncryptedTextField.context()
                )
                self.defaults[f.attname] = ""
            elif f.has_default() and not callable(f.default):
                self.defaults[f.attname] = f.get_db_prep_save(f.get_default(), connection)
            elif not f.null and f.get_internal_type() in ("CharField", "TextField"):
                self.defaults[f.attname] = ""
            else:
                self.defaults[f.attname] = None
            if f.get_internal_type() == "JSONField":
                self.prep[f.attname] = f

    def row(self, values: dict) -> tuple:
        out = []
        for f in self.fields:
            name = f.attname
            if name in values:
                v = values[name]
                if name in self.encrypted:
                    if isinstance(v, datetime.date):
                        v = v.isoformat()
                    v = crypto.encrypt(v, self.encrypted[name]) if v else ""
                elif name in self.prep and v is not None:
                    v = self.prep[name].get_db_prep_save(v, connection)
            else:
                v = self.defaults[name]
            out.append(v)
        return tuple(out)


def _next_id(model) -> int:
    with connection.cursor() as cur:
        cur.execute(f"SELECT MAX(id) FROM {connection.ops.quote_name(model._meta.db_table)}")
        return (cur.fetchone()[0] or 0) + 1


def _reset_sequence(model) -> None:
    if connection.vendor != "postgresql":
        return  # SQLite's AUTOINCREMENT follows explicit ids by itself
    table = model._meta.db_table
    with connection.cursor() as cur:
        cur.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT MAX(id) FROM {table}))")


def bulk_session() -> None:
    """Tune this connection for a bulk load: a large SQLite page cache keeps the growing indexes in memory."""
    if connection.vendor == "sqlite":
        with connection.cursor() as cur:
            cur.execute("PRAGMA cache_size=-524288")  # 512 MiB, this connection only


def analyze() -> None:
    """Refresh the planner's statistics after a bulk load. Without them SQLite picks the (kind, obj_id)
    index for search-term range scans and reads every row of that kind instead of the matching terms."""
    tables = ("customers_institution", "customers_person", "customers_searchterm")
    with connection.cursor() as cur:
        if connection.vendor == "sqlite":
            # a full pass: a sampled one (analysis_limit) misjudges `kind` as selective and brings the bad plan back
            cur.execute("PRAGMA analysis_limit=0")
            for table in tables:
                cur.execute(f"ANALYZE {table}")
        else:
            cur.execute(f"ANALYZE {', '.join(tables)}")


def _term_rows(kind: int, obj_id: int, province: str, terms) -> list[tuple]:
    number = search.province_number(province)
    return [(t, kind, obj_id, number) for t in terms]


@dataclass
class Progress:
    """Reports rows done and the rate of the current phase (institutions, people)."""

    report: Callable[[str], None] = print
    started: float = field(default_factory=time.monotonic)

    def __call__(self, what: str, done: int, total: int) -> None:
        elapsed = time.monotonic() - self.started
        rate = done / elapsed if elapsed else 0
        self.report(f"{what}: {done:,}/{total:,} ({rate:,.0f}/s, {elapsed:,.0f}s)")

    def begin(self) -> None:
        """Mark the start of a phase: the next report's rate counts from here."""
        self.started = time.monotonic()


def seed_institutions(count: int, gen: Generator, chunk: int = 5000, progress: Progress | None = None) -> int:
    """Insert `count` institutions (hospitals come with departments) with codes and search terms."""
    if count <= 0:
        return 0
    if progress:
        progress.begin()
    places, weights = load_places()
    maker = RowMaker(Institution)
    writer = BulkWriter(Institution, maker.columns)
    terms = BulkWriter(SearchTerm, ["term", "kind", "obj_id", "province"])
    first_id = _next_id(Institution)
    plan = gen.institution_plan(count, places, weights, first_id)
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    done = 0
    while done < count:
        batch = list(itertools.islice(plan, chunk))
        codes = next_codes(Institution, len(batch))
        rows, term_rows = [], []
        for i, (values, parent_index) in enumerate(batch):
            obj_id = first_id + done + i
            obj = SimpleNamespace(
                **values, parent_id=None if parent_index is None else first_id + parent_index
            )
            values.update(
                id=obj_id, code=codes[i], parent_id=obj.parent_id, created_at=now, updated_at=now,
                name_norm=normalise.name(values["name"]), name_key=readings.name_key(values["name"]),
                phone_norm=normalise.phone(values["phone"]),
            )  # fmt: skip
            values["province"], values["city"] = region_columns(values.get("region_id"))
            rows.append(maker.row(values))
            term_rows += _term_rows(SearchTerm.Kind.INSTITUTION, obj_id, values["province"], search.institution_terms(obj))
        with transaction.atomic():
            writer.write(rows)
            terms.write(term_rows)
        done += len(batch)
        if progress:
            progress("institutions", done, count)
    _reset_sequence(Institution)
    return done


def person_homes():
    """Pick (institution id, kind, region, phone, department ids) for each new person, weighted by kind."""
    with connection.cursor() as cur:
        cur.execute(
            "SELECT id, kind, parent_id, region_id, phone FROM customers_institution WHERE merged_into_id IS NULL"
        )
        rows = cur.fetchall()
    depts: dict[int, list[int]] = {}
    homes = []
    for inst_id, kind, parent_id, region, phone in rows:
        if kind == InstitutionType.DEPARTMENT:
            if parent_id is not None:
                depts.setdefault(parent_id, []).append(inst_id)
        else:
            homes.append(((inst_id, kind, region, phone), PEOPLE_PER_KIND.get(kind, 1)))
    if not homes:
        return None, depts
    return Picker(homes), depts


def seed_people(count: int, gen: Generator, chunk: int = 10000, progress: Progress | None = None) -> int:
    """Insert `count` people spread over the existing institutions, encrypted, blind-indexed and indexed."""
    if count <= 0:
        return 0
    if progress:
        progress.begin()
    rng = gen.rng
    homes, depts = person_homes()
    maker = RowMaker(Person)
    writer = BulkWriter(Person, maker.columns)
    terms = BulkWriter(SearchTerm, ["term", "kind", "obj_id", "province"])
    first_id = _next_id(Person)
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    done = 0
    while done < count:
        size = min(chunk, count - done)
        codes = next_codes(Person, size)
        rows, term_rows = [], []
        for i in range(size):
            obj_id = first_id + done + i
            inst_id = kind = region = phone = dept_id = None
            if homes is not None:
                inst_id, kind, region, phone = homes(rng)
                if inst_id in depts:
                    dept_id = rng.choice(depts[inst_id])
            values = gen.person(obj_id, kind, region, phone or "")
            p = SimpleNamespace(name=values["name"], mobile=values["mobile"], landline=values["landline"],
                                email=values["email"], id_number=values.get("id_number", ""))  # fmt: skip
            Person.refresh_derived(p, region)  # exactly as the model computes them (no model __init__)
            values.update(
                id=obj_id, code=codes[i], institution_id=inst_id, department_id=dept_id, created_at=now,
                updated_at=now, name_norm=p.name_norm, name_key=p.name_key, mobile_bidx=p.mobile_bidx, landline_bidx=p.landline_bidx,
                email_bidx=p.email_bidx, id_number_bidx=p.id_number_bidx, region_id=p.region_id, province=p.province,
                city=p.city,
            )  # fmt: skip
            rows.append(maker.row(values))
            term_rows += _term_rows(SearchTerm.Kind.PERSON, obj_id, p.province, search.person_terms(p))
        with transaction.atomic():
            writer.write(rows)
            terms.write(term_rows)
        done += size
        if progress:
            progress("people", done, count)
    _reset_sequence(Person)
    return done


def people_records(count: int, seed: int = 0, start: int = 10**7) -> Iterator[dict]:
    """Plain values of `count` people working at existing institutions (for files the importer reads), each
    with `institution_id` and `department_id`; numbering from `start` keeps their mobiles apart from seeded people's."""
    gen = Generator(seed)
    homes, depts = person_homes()
    for n in range(start, start + count):
        inst_id = kind = region = phone = dept_id = None
        if homes is not None:
            inst_id, kind, region, phone = homes(gen.rng)
            if inst_id in depts:
                dept_id = gen.rng.choice(depts[inst_id])
        values = gen.person(n, kind, region, phone or "")
        values.update(institution_id=inst_id, department_id=dept_id)
        yield values
