"""The audit trail labels a changed field by its verbose name: a stage change's, a level change's and a key account
period's "from" / "to" were the mail header's words (发送方 / 收件人, a mail's sender and recipient)."""

from __future__ import annotations

import pytest
from django.utils import translation

from pharmacrm.core.templatetags.crm import field_label


@pytest.mark.parametrize("language", ["zh-hans", "zh-hant"])
@pytest.mark.parametrize(("model", "before", "after"), [
    ("sales.OpportunityMove", "from_stage", "to_stage"),
    ("loyalty.LevelChange", "old_level", "new_level"),
    ("keyaccounts.TeamTenure", "start", "end"),
    ("keyaccounts.AccountReview", "start", "end"),
])  # fmt: skip
def test_before_and_after_are_not_a_mails_sender_and_recipient(language, model, before, after):
    with translation.override(language):
        sender, recipient = translation.gettext("from"), translation.gettext("to")
        assert (sender, recipient) != ("from", "to")  # a mail's header keeps its words
        assert field_label(model, before) != sender.capitalize() and field_label(model, before) != sender
        assert field_label(model, after) != recipient.capitalize() and field_label(model, after) != recipient
        # the mail's own fields still say sender and recipient
        assert field_label("servicedesk.TicketMessage", "sender") in (sender, sender.capitalize())


def test_a_stage_or_level_change_names_before_and_after_as_its_history_columns_do():
    for model, before, after in (("sales.OpportunityMove", "from_stage", "to_stage"),
                                 ("loyalty.LevelChange", "old_level", "new_level")):  # fmt: skip
        with translation.override("en"):
            assert (field_label(model, before), field_label(model, after)) == ("From", "To")
