"""README.md and docs/ say what the code does: the environment variables, the worker's periodic jobs and their
times, the `pharmacrm` commands with their options, and the pages and API paths they name.

Each test reads the code's own registry (settings.py, Huey's periodic tasks, the commands' parsers, the URL
configuration), so a new variable, job, option or path that the docs do not mention — or a doc line about one
that is gone — fails here, not in an operator's hands."""

from __future__ import annotations

import argparse
import datetime as dt
import re
from pathlib import Path

import pytest
from django.urls import Resolver404, resolve

ROOT = Path(__file__).resolve().parents[2]
CODE = ROOT / "pharmacrm"
OPERATIONS = ROOT / "docs" / "operations.md"
# benchmarks.md records measurements (and the commands of past runs), not how the product works today
DOCS = [ROOT / "README.md", *sorted(p for p in (ROOT / "docs").glob("*.md") if p.name != "benchmarks.md")]


def _docs_text() -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in DOCS)


def _section(path: Path, heading: str) -> str:
    """The text under a `## heading` up to the next heading of that level."""
    text = path.read_text(encoding="utf-8")
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def _code_text() -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in CODE.rglob("*.py"))


# settings.env / envint / envbool, and the few variables read straight from os.environ
_READS = re.compile(
    r"""\b(?:env|envint|envbool)\(\s*["']([A-Z][A-Z0-9_]+)["']|environ(?:\.get\(|\[)\s*["']([A-Z][A-Z0-9_]+)["']"""
)
# read by libraries or the test set-up, not settings an operator gives
_NOT_OURS = {"ARROW_DEFAULT_MEMORY_POOL"}


def _variables_read() -> set[str]:
    return {a or b for a, b in _READS.findall(_code_text())} - _NOT_OURS


def test_every_environment_variable_the_code_reads_is_documented():
    """An operator learns the settings from the docs: settings.py read SQLITE_TEST_PATH and HUEY_IMMEDIATE,
    which no page named."""
    text = _docs_text()
    missing = sorted(n for n in _variables_read() if f"`{n}`" not in text and f"`{n}=" not in text)
    assert not missing, f"read by the code, named in no doc: {missing}"


def test_every_variable_in_the_operators_table_is_read_by_the_code():
    table = _section(OPERATIONS, "Environment variables")
    named = set()
    for line in table.splitlines():
        if line.startswith("| `"):
            named.update(re.findall(r"`([A-Z][A-Z0-9_]+)`", line.split("|")[1]))
    assert len(named) > 40
    gone = sorted(named - _variables_read())
    assert not gone, f"docs/operations.md names variables nothing reads: {gone}"


def _periodic_tasks():
    from django.utils.module_loading import autodiscover_modules
    from huey.contrib.djhuey import HUEY

    autodiscover_modules("tasks")  # what the consumer does at start-up
    return {task.__name__: task() for task in HUEY._registry._periodic_tasks}


def _local_to_worker_time(hour: int, minute: int, day: int = 2) -> dt.datetime:
    """The naive UTC time Huey's scheduler hands a periodic task when it is hour:minute in Asia/Shanghai."""
    local = dt.datetime(2026, 3, day, hour, minute, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    return local.astimezone(dt.UTC).replace(tzinfo=None)


def _fires(task, hour: int, minute: int, day: int = 2) -> bool:
    return task.validate_datetime(_local_to_worker_time(hour, minute, day))


def test_the_worker_table_lists_every_periodic_job_at_its_time():
    """docs/operations.md's table is the operator's list of what the worker does and when: each periodic
    task is in it, and runs at the time it gives (China time)."""
    tasks = _periodic_tasks()
    assert len(tasks) >= 20
    rows = {}
    for line in _section(OPERATIONS, "The worker").splitlines():
        if line.startswith("| `"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            for name in re.findall(r"`(\w+)`", cells[0]):
                rows[name] = cells[1]
    missing = sorted(set(tasks) - set(rows))
    assert not missing, f"periodic jobs not in docs/operations.md's worker table: {missing}"
    for name, task in tasks.items():
        when = rows[name]
        fired = {(h, m) for h in range(24) for m in range(60) if _fires(task, h, m)}
        if when.startswith("every minute"):
            assert len(fired) == 24 * 60, name
        elif m := re.fullmatch(r"every (\d+) minutes", when):
            assert fired == {(h, n) for h in range(24) for n in range(0, 60, int(m[1]))}, name
        elif m := re.fullmatch(r"every hour, at :(\d\d)", when):
            assert fired == {(h, int(m[1])) for h in range(24)}, name
        elif m := re.fullmatch(r"(\d\d):(\d\d) every day", when):
            assert fired == {(int(m[1]), int(m[2]))}, name
        elif m := re.fullmatch(r"(\d\d):(\d\d) on the 1st of each month", when):
            first = {(h, n) for h in range(24) for n in range(60) if _fires(task, h, n, day=1)}
            assert not fired and first == {(int(m[1]), int(m[2]))}, name
        else:
            pytest.fail(f"{name}: the docs say {when!r}, a schedule this test cannot read")


def _our_commands():
    from django.core.management import get_commands, load_command_class

    for name, app in sorted(get_commands().items()):
        if app.startswith("pharmacrm"):
            yield name.replace("_", "-"), load_command_class(app, name).create_parser("pharmacrm", name)


_DJANGO_OPTIONS = {"--version", "--verbosity", "--settings", "--pythonpath", "--traceback", "--no-color",
                   "--force-color", "--skip-checks", "--help"}  # fmt: skip


def _options(parser: argparse.ArgumentParser) -> set[str]:
    return {o for a in parser._actions for o in a.option_strings if o.startswith("--")} - _DJANGO_OPTIONS


def test_every_command_subcommand_and_option_is_in_the_operations_table():
    """The table in docs/operations.md is where an operator looks up a command: `safety revalidate`,
    `seed --seed/--chunk` and `rotate-keys --batch` existed without a line there."""
    table = _section(OPERATIONS, "The `pharmacrm` command")
    rows = [line for line in table.splitlines() if line.startswith("| `pharmacrm ")]
    for command, parser in _our_commands():
        mine = [r for r in rows if r.startswith(f"| `pharmacrm {command}")]
        assert mine, f"pharmacrm {command} has no line in docs/operations.md"
        subparsers = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subparsers:
            for option in _options(parser):
                assert any(option in r for r in mine), f"pharmacrm {command} {option}"
            continue
        for sub, subparser in subparsers[0].choices.items():
            lines = [r for r in mine if re.search(rf"[ `|]{re.escape(sub)}\b", r)]
            assert lines, f"pharmacrm {command} {sub} has no line in docs/operations.md"
            for option in _options(subparser) | _options(parser):
                assert any(option in r for r in lines) or option in "".join(mine), (
                    f"pharmacrm {command} {sub} {option}"
                )


# absolute paths the docs name as pages or API endpoints (a path of a file on disk starts otherwise)
_PATH = re.compile(r"`(?:(?:GET|POST|PUT|PATCH|DELETE)(?:/(?:GET|POST|PUT|PATCH|DELETE))* )?(/[a-z][^`\s]*)`")
_EXAMPLES = (
    "1",
    "TK-2026-000001",
    "AE-2026-000001",
    "business",
    "110000",
    "evaluation",
    "2027",
    "2027-01-01",
    "x",
)


def _route_prefixes() -> set[str]:
    """Every URL pattern as text, for a path the docs name as the root of an area (`/api/v1/safety/`)."""
    from django.urls import URLResolver, get_resolver

    found = set()

    def walk(resolver, prefix):
        for pattern in resolver.url_patterns:
            text = prefix + str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                walk(pattern, text)
            found.add("/" + text.lstrip("^"))

    walk(get_resolver(), "")
    return found


def _resolves(path: str) -> bool:
    path = path.split("?")[0].replace("…", "1")
    if not path.isascii():  # an example of what is refused (`/people/１２/` is a 404)
        return True
    if path.endswith("/") and any(route.startswith(path) for route in _route_prefixes()):
        return True
    if "." in path.rsplit("/", 1)[-1] and "{" not in path and "<" not in path:
        candidates = [path]
    else:
        candidates = [re.sub(r"\{[^}]*\}|<[^>]*>", example, path) for example in _EXAMPLES]
    for candidate in candidates:
        for form in {candidate, candidate if candidate.endswith("/") else candidate + "/"}:
            try:
                resolve(form)
            except Resolver404:
                continue
            return True
    return False


def test_every_page_and_api_path_the_docs_name_exists():
    wrong = []
    for doc in DOCS:
        heading = ""
        for number, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1):
            if line.startswith("#"):
                heading = line
            in_api = "/api/v1/" in line or " API" in heading
            for path in _PATH.findall(line):
                if path.startswith(("/usr/", "/run/", "/etc/", "/tmp/", "/path")) or "|" in path:
                    continue
                # `GET /api/v1/institutions/`, `/people/`: a list of endpoints goes on without the prefix
                if not _resolves(path) and not (in_api and _resolves("/api/v1" + path)):
                    wrong.append(f"{doc.name}:{number}: {path}")
    assert not wrong, "no such page or endpoint:\n" + "\n".join(wrong)


_INVOCATION = re.compile(r"(?:`|^\s*|\$ )pharmacrm ([a-z][\w-]*)((?: [^`#|]*)?)")


def test_every_command_line_the_docs_show_exists():
    """`pharmacrm …` as the docs write it — in a table, a sentence or an example — names a command (ours or
    Django's), a subcommand and options that the command takes."""
    from django.core.management import get_commands, load_command_class

    commands = get_commands()
    wrong = []
    for doc in DOCS:
        for number, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1):
            for match in _INVOCATION.finditer(line):
                name, rest = match[1].replace("-", "_"), match[2]
                if name == "help":  # the `pharmacrm` wrapper's own
                    continue
                if name not in commands:
                    wrong.append(f"{doc.name}:{number}: pharmacrm {match[1]}")
                    continue
                parser = load_command_class(commands[name], name).create_parser("pharmacrm", name)
                options = {o for a in parser._actions for o in a.option_strings}
                subs = next(
                    (a.choices for a in parser._actions if isinstance(a, argparse._SubParsersAction)), {}
                )
                words = rest.split()
                if subs and words and re.fullmatch(r"[a-z][\w-]*", words[0]):
                    if words[0] not in subs:
                        wrong.append(f"{doc.name}:{number}: pharmacrm {match[1]} {words[0]}")
                        continue
                    options |= {o for a in subs[words[0]]._actions for o in a.option_strings}
                else:
                    options |= {o for sub in subs.values() for a in sub._actions for o in a.option_strings}
                for option in re.findall(r"(?<![\w-])(--[a-z][\w-]*)", rest):
                    if option not in options:
                        wrong.append(f"{doc.name}:{number}: pharmacrm {match[1]} {option}")
    assert not wrong, "the docs show command lines the commands do not take:\n" + "\n".join(wrong)


def test_every_webhook_event_is_documented():
    """An administrator subscribes an endpoint by event name; servicedesk-notifications.md lists them."""
    from pharmacrm.notify.services import known_events

    text = (ROOT / "docs" / "servicedesk-notifications.md").read_text(encoding="utf-8")
    missing = [event for event in known_events() if f"`{event}`" not in text]
    assert not missing, f"events the webhooks send that servicedesk-notifications.md does not name: {missing}"


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["/healthz", "/healthz/"])  # a load balancer's probe is often written with the slash
def test_the_health_check_operations_md_names_answers_without_sign_in(client, django_assert_num_queries, url):
    with django_assert_num_queries(0):
        response = client.get(url)
    assert response.status_code == 200
    assert response.content == b"ok" and response["Content-Type"].startswith("text/plain")


def test_the_shipped_service_defaults_are_as_servicedesk_md_lists_them():
    """The seeded ticket categories (code, name, priority), as an administrator finds them on a new installation."""
    from pharmacrm.servicedesk.setup import DEFAULT_CATEGORIES

    text = (ROOT / "docs" / "servicedesk.md").read_text(encoding="utf-8")
    for code, name, priority, complexity, _safety in DEFAULT_CATEGORIES:
        shown = f"`{code}` {name} {priority}" + (" / complex" if complexity == "complex" else "")
        assert shown in " ".join(text.split()), shown


def _anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_every_link_between_the_docs_reaches_its_page_and_heading():
    headings = {
        page.resolve(): {_anchor(h) for h in re.findall(r"^#+ (.*)$", page.read_text(encoding="utf-8"), re.M)}
        for page in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]
    }
    wrong = []
    for doc in DOCS:
        for number, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1):
            for target, anchor in re.findall(r"\]\(([^)#\s]*)(?:#([^)\s]+))?\)", line):
                if target.startswith(("http://", "https://")):
                    continue
                page = (doc.parent / target).resolve() if target else doc.resolve()
                if not page.exists():
                    wrong.append(f"{doc.name}:{number}: {target}")
                elif anchor and page in headings and anchor not in headings[page]:
                    wrong.append(f"{doc.name}:{number}: {target}#{anchor}")
    assert not wrong, "links to no page or heading:\n" + "\n".join(wrong)
