"""Import of E2B(R3) acknowledgements (`MCCI_IN200101UV01`): the regulator's answer to a batch we sent.

The acknowledgement names our batch (ACK.A.1 = Submission.message_id) and, per report, our message id
(ACK.B.r.1 = N.2.r.1, "{case number}-{follow-up}") with its code: CA accepted, CR rejected, with the
errors. A rejection reopens the case with those errors shown (services.record_ack)."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from ..choices import AckStatus
from ..models import Submission
from . import schema
from .importer import NS, OID, load, parse_datetime

BATCH_ACCEPTED = "AA"  # ACK.A.4: all reports loaded
BATCH_ERRORS = "AE"  # some reports need action (see the report entries)
BATCH_REJECTED = "AR"  # the whole batch was refused
REPORT_ACCEPTED = "CA"  # ACK.B.r.6
REPORT_REJECTED = "CR"


@dataclass(frozen=True)
class ReportAck:
    message_id: str  # ACK.B.r.1: the N.2.r.1 of our report
    code: str  # ACK.B.r.6
    errors: list[str] = field(default_factory=list)  # ACK.B.r.7

    @property
    def accepted(self) -> bool:
        return self.code == REPORT_ACCEPTED


@dataclass(frozen=True)
class AckMessage:
    message_id: str  # ACK.M.1
    batch_message_id: str  # ACK.A.1: our MCCI_IN200100UV01 id (Submission.message_id)
    code: str  # ACK.A.4: AA / AE / AR
    at: datetime.datetime | None  # ACK.M.4
    errors: list[str] = field(default_factory=list)  # ACK.A.5
    reports: list[ReportAck] = field(default_factory=list)

    @property
    def accepted(self) -> bool:
        return self.code == BATCH_ACCEPTED


def _text(node, path: str) -> str:
    return str(node.xpath(f"string({path})", namespaces=NS)).strip()


def _details(node) -> list[str]:
    """ACK.A.5 / ACK.B.r.7 texts; FDA puts several errors in one text, separated by semicolons."""
    errors = []
    for text in node.xpath("h:acknowledgementDetail/h:text/text()", namespaces=NS):
        errors.extend(part.strip() for part in str(text).split(";") if part.strip())
    return errors


def parse_ack(data: bytes) -> AckMessage:
    """Validate an acknowledgement against its schema, then read what it says."""
    root = load(data, schema.ACK).getroot()
    batch_ack = root.xpath("h:acknowledgement", namespaces=NS)[0]
    reports = [
        ReportAck(
            message_id=_text(ack, "h:targetMessage/h:id/@extension"),
            code=ack.get("typeCode", ""),
            errors=_details(ack),
        )
        for ack in root.xpath("h:MCCI_IN000002UV01/h:acknowledgement", namespaces=NS)
    ]
    return AckMessage(
        message_id=_text(root, f"h:id[@root='{OID}.3.20']/@extension") or _text(root, "h:id/@extension"),
        batch_message_id=_text(batch_ack, "h:targetBatch/h:id/@extension"),
        code=batch_ack.get("typeCode", ""),
        at=parse_datetime(_text(root, "h:creationTime/@value")),
        errors=_details(batch_ack),
        reports=reports,
    )


def our_message_id(submission: Submission) -> str:
    """The N.2.r.1 our export gave the case's report in the submission's batch (C.1.1, as ICH has it); for a batch
    sent before batches were kept, the number and follow-up sequence it carried then."""
    from ..models import IcsrMessage

    kept = IcsrMessage.objects.filter(batch__batch_id=submission.message_id, case_id=submission.case_id).first()
    if kept is not None:
        return kept.message_id
    sequence = submission.case_version.sequence if submission.case_version_id else 0
    return f"{submission.case.number}-{sequence}"


def _report_for(submission: Submission, ack: AckMessage, unmatched: list[ReportAck]) -> ReportAck | None:
    """The report entry about this submission: by our message id, else by a case identifier the
    regulator quoted (some gateways quote C.1.1 or the worldwide id)."""
    wanted = our_message_id(submission)
    case = submission.case
    ids = {case.number, case.worldwide_id, case.sender_case_id} - {""}
    for report in unmatched:
        if report.message_id == wanted:
            return report
    for report in unmatched:
        if ids & set(report.message_id.split()):
            return report
    return None


def import_ack(user, data: bytes) -> list[Submission]:
    """Record an acknowledgement on the submissions of the batch it answers; returns them. An ACK for a
    batch we never sent is refused. Importing the same ACK again changes nothing."""
    from .. import services  # the service layer imports the E2B package; import late to avoid a cycle

    ack = parse_ack(data)
    submissions = list(
        Submission.objects.filter(message_id=ack.batch_message_id)
        .select_related("case", "case_version")
        .order_by("id")
    )
    if not ack.batch_message_id or not submissions:
        raise ValidationError(
            {
                "file": [
                    _("No submission was sent in batch %(batch)s.") % {"batch": ack.batch_message_id or "?"}
                ]
            }
        )
    unmatched = list(ack.reports)
    plan = []
    for submission in submissions:
        report = _report_for(submission, ack, unmatched)
        if report is None and len(submissions) == 1 and len(unmatched) == 1:
            report = unmatched[0]  # one report sent, one answered: the regulator quoted another id
        if report is not None:
            unmatched.remove(report)
            accepted, errors = report.accepted, report.errors
        else:  # no word about this report: the batch code decides
            accepted, errors = ack.accepted, ack.errors
        if not accepted and not errors:
            errors = [_("The regulator rejected the report without giving a reason.")]
        plan.append((submission, accepted, errors))
    at = ack.at or timezone.now()
    with transaction.atomic():
        for submission, accepted, errors in plan:
            status = AckStatus.ACCEPTED if accepted else AckStatus.REJECTED
            if submission.ack_message_id == ack.message_id and submission.ack_status == status:
                continue  # this acknowledgement was imported before
            services.record_ack(
                user, submission, accepted=accepted, errors=errors, ack_message_id=ack.message_id, at=at
            )
    return [Submission.objects.get(pk=s.pk) for s in submissions]
