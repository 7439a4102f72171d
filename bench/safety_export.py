"""Issue 4 benchmark: export and validate 1,000 safety cases within 30 s. Seeds N complete cases (two
MedDRA-coded reactions, a suspect and a concomitant drug, encrypted patient and reporter fields) with
bulk_create, then times `export.release()` of all of them in batches of 100: loading, business rules,
building the XML and validating it against the ICH schema. Also times each step alone.

    python bench/safety_export.py            # 1,000 cases
    python bench/safety_export.py 5000
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import time

import common

PREFIX = "AE-BENCH-"
BATCH = 100


def seed(target: int) -> int:
    """Bulk-insert bench cases up to `target` (reusing those already there). Bypasses services: this measures
    the export, not intake."""
    from django.db import transaction
    from django.utils import timezone

    from pharmacrm.safety.models import CaseVersion, Drug, Reaction, SafetyCase

    have = SafetyCase.objects.filter(number__startswith=PREFIX).count()
    if have >= target:
        return have
    rng = random.Random(have)
    now = timezone.now()
    verbatims = [("皮疹", "10037844"), ("瘙痒", "10037087"), ("头晕", "10013573"), ("恶心", "10028813")]
    with transaction.atomic():
        cases = []
        for n in range(have + 1, target + 1):
            received = now - dt.timedelta(days=rng.randint(3, 300))
            cases.append(SafetyCase(
                number=f"{PREFIX}{n:06d}", kind="adverse_reaction", received_at=received,
                latest_received_at=received + dt.timedelta(days=2), patient_name=f"患者{n}", patient_sex=rng.choice("12"),
                patient_birth_date=dt.date(1950 + n % 60, 1 + n % 12, 1 + n % 28), patient_age=str(20 + n % 60),
                patient_age_unit="a", patient_weight_kg=str(45 + n % 40), patient_history="高血压病史",
                reporter_name="李医生", reporter_contact="010-69156114", reporter_institution="北京协和医院",
                reporter_qualification="1", causality_reporter="probable", causality_company="possible",
                narrative="患者用药后出现皮疹伴瘙痒，停药后好转。" * 5, sender_comment="公司评价：可能相关",
                serious=n % 5 == 0,
            ))  # fmt: skip
        created = SafetyCase.objects.bulk_create(cases, batch_size=500)
        if not all(c.pk for c in created):  # SQLite before RETURNING support: look the ids up
            ids = dict(SafetyCase.objects.filter(number__startswith=PREFIX).values_list("number", "id"))
            for c in created:
                c.pk = c.id = ids[c.number]
        versions, reactions, drugs = [], [], []
        for c in created:
            versions.append(CaseVersion(case_id=c.pk, sequence=0, received_at=c.received_at))
            for i, (verbatim, llt) in enumerate(rng.sample(verbatims, 2)):
                reactions.append(Reaction(
                    case_id=c.pk, position=i, verbatim=verbatim, meddra_version="27.0", meddra_llt=llt, outcome="1",
                    onset_date=c.received_at.date(), hospitalisation=c.serious and i == 0,
                ))  # fmt: skip
            drugs.append(Drug(
                case_id=c.pk, position=0, role="1", brand_name="阿莫灵", generic_name="阿莫西林胶囊",
                approval_number="国药准字H20000001", manufacturer="PharmaCRM 演示药业有限公司", dosage_form="胶囊",
                batch=f"B{rng.randint(100000, 999999)}", dose="0.5", dose_unit="g", route="口服", frequency="每日3次",
                start_date=c.received_at.date() - dt.timedelta(days=3), indication="上呼吸道感染", action_taken="1",
                rechallenge="not_done",
            ))  # fmt: skip
            drugs.append(Drug(case_id=c.pk, position=1, role="2", generic_name="对乙酰氨基酚片"))
        CaseVersion.objects.bulk_create(versions, batch_size=1000)
        Reaction.objects.bulk_create(reactions, batch_size=1000)
        Drug.objects.bulk_create(drugs, batch_size=1000)
    return target


def measure(count: int) -> dict:
    from pharmacrm.safety.e2b import export, rules, schema
    from pharmacrm.safety.models import SafetyCase

    ids = list(
        SafetyCase.objects.filter(number__startswith=PREFIX).order_by("id").values_list("id", flat=True)
    )
    ids = ids[:count]
    schema.schema(schema.BATCH)  # compiled once per process, like the server after its first export
    batches, size = [], 0
    start = time.perf_counter()
    for i in range(0, len(ids), BATCH):
        ms, released = common.timed(export.release, SafetyCase.objects.filter(id__in=ids[i : i + BATCH]))
        batches.append(ms)
        size += len(released.xml)
    total = time.perf_counter() - start

    # each step alone, on the first batch
    cases = export._load(SafetyCase.objects.filter(id__in=ids[:BATCH]))
    load_ms, _ = common.timed(export._load, SafetyCase.objects.filter(id__in=ids[:BATCH]))
    rules_ms, _ = common.timed(lambda: [rules.check(c, "regulatory") for c in cases])
    build_ms, xml = common.timed(export.build, cases)
    schema_ms, errors = common.timed(schema.validate, xml)
    assert not errors
    return {
        "cases": len(ids),
        "batch_size": BATCH,
        "total_s": round(total, 2),
        "cases_per_s": round(len(ids) / total, 1),
        "batches": common.summary(batches),
        "xml_mib": round(size / 2**20, 2),
        "per_batch_of_100_ms": {
            "load": round(load_ms, 1),
            "rules": round(rules_ms, 1),
            "build": round(build_ms, 1),
            "schema": round(schema_ms, 1),
        },
        "target_s": 30,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("count", nargs="?", type=int, default=1000)
    args = parser.parse_args()
    common.setup()
    seed(args.count)
    common.save(f"safety-export-{args.count}", measure(args.count))


if __name__ == "__main__":
    main()
