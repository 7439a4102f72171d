"""Every kind of notification the product sends has a name in words: the deliveries page showed the e-mails of
improvement.assigned, keyaccounts.review, sales.churn or training.reminder as those codes on the Chinese pages
(only ticket events had words). The kinds are found in the code — the `kind` given to `notify.send`, to
`send_many`'s items and to the apps' notify helpers, and the `…KIND` constants they pass — so a new kind without a
label fails here."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest
from django.utils import translation

import pharmacrm
from pharmacrm.notify import services
from pharmacrm.notify.kinds import KIND_LABELS
from pharmacrm.notify.models import Delivery, event_words

ROOT = Path(pharmacrm.__file__).parent
# what passes a notification's kind on: notify.send and the apps' helpers around it
SENDERS = {"send", "tell_assignee", "tell_team", "tell_people", "_notify", "_notify_case"}
PASSED_ON = {"kind"}  # a helper's own parameter: its callers are read instead


def _kinds_in(node: ast.AST) -> list[ast.expr]:
    """The expressions a node gives as a notification's kind."""
    if isinstance(node, ast.Call):
        name = getattr(node.func, "attr", None) or getattr(node.func, "id", None)
        if name in SENDERS:
            kinds = [k.value for k in node.keywords if k.arg == "kind"]
            if name in ("_notify", "_notify_case") and len(node.args) > 1:
                kinds.append(node.args[1])  # (recipients or case, kind, title, …)
            return kinds
    if isinstance(node, ast.Dict):  # an item of send_many: {"recipients": …, "kind": …, "title": …}
        keys = [k.value if isinstance(k, ast.Constant) else None for k in node.keys]
        if "kind" in keys and "recipients" in keys:
            return [node.values[keys.index("kind")]]
    if isinstance(node, ast.FunctionDef) and node.name in SENDERS:  # a helper's default kind
        named = [a.arg for a in node.args.args][-len(node.args.defaults) :] if node.args.defaults else []
        return [d for a, d in zip(named, node.args.defaults, strict=True) if a == "kind"]
    return []


@functools.cache
def sent_kinds() -> tuple[dict[str, str], list[str]]:
    """{kind: where it is sent} and the places whose kind is no literal this test can read."""
    found: dict[str, str] = {}
    constants: dict[str, str] = {}
    unreadable: list[tuple[str, str]] = []
    for path in sorted(ROOT.rglob("*.py")):
        if "migrations" in path.parts:
            continue
        where = str(path.relative_to(ROOT))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Assign)
                and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)
            ):
                value = node.value
                if node.targets[0].id.endswith("KIND") and isinstance(value, ast.Constant):
                    constants[f"{where}:{node.targets[0].id}"] = value.value
            todo = _kinds_in(node)
            while todo:
                expr = todo.pop()
                if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
                    found.setdefault(expr.value, f"{where}:{expr.lineno}")
                elif isinstance(expr, ast.IfExp):
                    todo += [expr.body, expr.orelse]
                elif isinstance(expr, ast.Name) and expr.id in PASSED_ON:
                    continue
                elif isinstance(expr, ast.Name) and expr.id.endswith("KIND"):
                    unreadable.append((f"{where}:{expr.id}", f"{where}:{expr.lineno}"))
                else:
                    unreadable.append(("", f"{where}:{expr.lineno}"))
    for key, line in [(k, w) for k, w in unreadable if k in constants]:
        found.setdefault(constants[key], line)
    return found, [line for key, line in unreadable if key not in constants]


def test_the_kinds_are_found_in_the_code():
    kinds, unreadable = sent_kinds()
    assert not unreadable, (
        f"a notification kind this test cannot read (use a literal or a …KIND constant): {unreadable}"
    )
    assert {"improvement.assigned", "keyaccounts.review", "sales.churn", "training.reminder", "ticket.assigned",
            "safety.overdue", "safety.due-soon", "campaign.repeated"} <= set(kinds)  # fmt: skip
    assert len(kinds) > 40


def test_every_kind_sent_has_a_label():
    kinds, _unreadable = sent_kinds()
    with translation.override("en"):
        missing = {kind: where for kind, where in kinds.items() if event_words(kind) == kind}
    assert not missing, f"notification kinds without a label in notify/kinds.py: {missing}"
    unused = set(KIND_LABELS) - set(kinds)
    assert not unused, f"labels of kinds nothing sends: {unused}"


@pytest.mark.parametrize(("kind", "words"), [("training.reminder", "Training reminder"),
                                             ("sales.churn", "Churn warning"),
                                             ("improvement.assigned", "Improvement action assigned"),
                                             ("ticket.assigned", "Assigned")])  # fmt: skip
def test_the_delivery_log_names_an_email_by_its_kind(users, client_for, kind, words):
    users["agent"].email = "agent@example.com"
    users["agent"].save(update_fields=["email"])
    services.send([users["agent"]], kind=kind, title="提醒")
    assert Delivery.objects.filter(event=kind, channel=Delivery.Channel.EMAIL).exists()
    page = client_for("manager").get("/notifications/deliveries/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    row = page.split("<tbody>")[1]
    assert f'{words}<br><span class="mono muted">{kind}</span>' in row


def test_the_endpoint_list_names_the_events_an_endpoint_takes_in_words(users, client_for):
    """The list showed an endpoint's events as the codes typed (ticket.breached); now in words with the code."""
    services.create_endpoint(
        users["admin"], {"name": "hook", "url": "http://127.0.0.1:9/x", "events": "ticket.breached, ticket.*"}
    )
    page = client_for("manager").get("/notifications/webhooks/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    row = page.split("<tbody>")[1]
    assert 'Deadline missed <span class="mono muted">ticket.breached</span>' in row
    assert '<span class="mono">ticket.*</span>' in row
