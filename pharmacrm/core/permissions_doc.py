"""The permission matrix as data (per role) and as the Markdown of docs/permissions.md."""

from __future__ import annotations

from django.utils import translation

from .access import WRITE_CAPS
from .roles import MATRIX, READ_ONLY_ROLES, SECOND_FACTOR_ROLES, Cap, Role


def role_capabilities(role: Role) -> list[Cap]:
    """The capabilities a user holding only this role has (as access.can decides them)."""
    return [c for c in Cap if role in MATRIX[c] and not (c in WRITE_CAPS and role in READ_ONLY_ROLES)]


SCOPE_RULES = """\
## Object scope

Capabilities say *what* a role may do; the scope says *to which customers*. Both are decided in
one place, `pharmacrm/core/access.py`, which the web pages, the REST API, exports and imports all ask.

- **Sales representative** (without "See customers of every team and territory"): sees and changes
  the institutions they own, those of their teams, and those whose region lies inside their own or
  their teams' territory (a territory region includes every city and district below it). People
  are visible when their institution is visible, when the rep or the rep's team owns them, or when
  the rep or the rep's team owns their department (a department of a hospital outside the territory);
  such a department takes new people too (at its hospital, in it; nowhere else at that hospital).
  Anything outside that scope does not exist for them: the API answers 404, search finds nothing,
  exports leave it out. Customers a rep creates without an owner are owned by the rep.
- **Every other role** sees customers of every team and territory.
- **Personal data** (mobile, landline, e-mail, birthday, home address, ID card number) is stored
  encrypted. Roles with "See personal data unmasked" see it in clear for the people they may see;
  roles with "Reveal personal data with a stated reason" (agents, product experts, technical
  support, after-sales, auditors) see it masked (`138****8000`) until they reveal one person with a
  reason (`?reveal_reason=` on the API); everyone else — notably the marketing analyst — only ever
  sees it masked. Every clear read is written to the audit trail with the reason, one entry per
  page or export.
- **Auditor**: reads everything, including the audit trail, and changes nothing: a read-only role
  never receives a write capability, even when combined with another role.
- **Several roles**: a user holds the union of their roles' capabilities, except that a user holding
  a read-only role has exactly what that role may do (the auditor's column), never a write capability.
- **Second factor**: users holding an administrator, auditor or pharmacovigilance role must pass a
  TOTP code at sign-in, on the web and when requesting an API token (the "Second factor" column above).
  Users who sign (safety exports and submissions; "Approve key accounts, service plans", i.e. managers)
  need an authenticator app for the signature even when their role signs in without one. Either way they
  set up the app themselves on the web (`/accounts/otp/enrol/`), but only with a one-time enrolment code
  that an administrator issued for them ("Manage users and roles"), or that `pharmacrm second-factor-code`
  printed on the server. Other users are sent away from that page.
- **Safety and quality cases**: the pharmacovigilance / QA role handles cases and is the only role
  that sees patient and reporter identity, the narrative and the medical details; every such read is
  audited. Administrators, managers and auditors see the case list, statuses, clocks, submissions and
  the reconciliation report without patient identity. The agent or rep whose ticket or interaction
  raised a case sees only its number and status on that record. Exports (E2B(R3)) and recorded
  submissions need the PV officer's electronic signature: a fresh one-time code from their
  authenticator app, stored with its meaning ("approved for export" / "approved for submission"). The one
  exception is the server's command line (`pharmacrm safety export-icsr`), which only someone with access to
  the server runs: audited with the operating-system account, the file written for its owner only.
  Any signed-in user may call the screening endpoint (`POST /api/v1/safety/screen/`).
- **Service performance** (`/service/performance/`, the lists of tickets behind its counts, its Excel export and
  `GET /api/v1/service/performance/`):
  roles with "See the service performance of every team and agent" (administrators, managers, marketing
  analysts, auditors) see every team and agent; a team lead sees the teams they lead, per agent included;
  anyone else who handles tickets sees only their own figures, beside their teams' totals (all agents
  together) — never a colleague's row, as a Chinese service centre shows an agent their own figures and
  the team's. Rows per customer class need "See customer evaluations and key-account scores". Others
  (the pharmacovigilance officer) are refused. Every export is audited.
- **Complaint analysis** (`/service/complaints/`, the lists of tickets behind its counts, its Excel export and
  `GET /api/v1/service/complaints/`):
  roles with "See the complaint analysis of every team" — the service performance page's (administrators,
  managers, marketing analysts, auditors) and the pharmacovigilance / QA officer, whose unit reviews complaint
  trends and root causes (GMP) — see every team's complaints; a team lead sees the complaints of the teams
  they lead; everyone else, the product expert included (an expert handles tickets and sees their own figures
  on the performance page), is refused. The page shows counts, never a customer's or a patient's identity; the
  lists behind the counts (of this page and of the performance page) show the tickets as the queue does
  (number, subject, customer name, status, cause and impact; no caller phone, no description), and only the
  tickets the user may see. The customer-class filter needs "See customer evaluations and key-account scores".
  Every export is audited.
- **Scheduled reports** (`/reports/`, `/api/v1/report-subscriptions/`): every signed-in user manages their own
  subscriptions, and only theirs. A report (service performance, complaint analysis, sales attainment, the
  key-account progress report) can be subscribed to only by those who may open its page, a team only within the
  user's scope; it is mailed only to the subscriber's own account address, made as the subscriber sees it when it is
  sent (checked again then: a subscriber who lost access is paused, not mailed). Every mail is an audited export.
  A read-only role (the auditor) schedules none: adding, changing or mailing one now is refused (403, audited) before
  the form is read; it may only stop one it kept from before.
- **Sales targets and attainment** (`/sales/targets/`, its Excel export, `GET /api/v1/sales/attainment/` and
  `GET /api/v1/sales/targets/`): roles with "See every rep's and team's sales targets and attainment"
  (administrators, managers, marketing analysts, auditors) see every owner and team; a team lead who may see
  purchases sees the members of the teams they lead and those teams; a sales representative sees their own
  row and their teams' totals, never a colleague's row. Others are refused. Only "Set the sales targets of
  reps and teams" (administrators, managers) sets them — on the grid (`/sales/targets/grid/`), by its
  CSV/XLSX import or through the API; every change and every export is audited.
- **Sales pipeline** (`/sales/pipeline/`, the funnel `/sales/pipeline/funnel/`, the Excel export,
  `/api/v1/sales/opportunities/` and `GET /api/v1/sales/funnel/`): roles with "See every sales opportunity and
  the whole pipeline's funnel" (administrators, managers, marketing analysts, auditors) see every opportunity;
  sales representatives and key-account managers ("Work sales opportunities") see their own and those of the
  teams they belong to or lead, and create, change and move them (a move sends the version it loaded: 409 if
  someone moved it first); analysts and auditors only read. Service roles and the pharmacovigilance officer are
  refused. Every change, move and export is audited.
- **KPI appraisal** (`/sales/appraisal/`, a person's result, its Excel export, `GET /api/v1/sales/appraisals/` and
  `GET /api/v1/sales/appraisal-schemes/`): roles with "See every person's and team's KPI appraisal"
  (administrators, managers, auditors) see every result, every team's average and the schemes; sales
  representatives and key-account managers ("See one's own KPI appraisal") see their own result, and a team lead
  among them the results of the members of the teams they lead — never another colleague's (404). "Set the KPI
  appraisal schemes, compute and finalise the results" (administrators, managers) edits the schemes, computes,
  comments and finalises. The service desk, analysts and the pharmacovigilance officer are refused. Every change,
  computation, finalising and export is audited.
- **Satisfaction survey campaigns** (`/service/surveys/`): managers and administrators ("Configure the service
  desk") prepare, start and close them and set them to repeat every period; the results, the answers and the Excel export (audited, e-mail addresses
  masked as in other exports) are for the roles that see the service performance; whoever handles tickets opens
  the campaign's page to call the customers that no mail reaches — those of the customers they may see — and
  records their answers. The pharmacovigilance officer has no access.
- **Cooperation agreements and projects** (`/cooperation/`, its Excel export, `/api/v1/cooperation/agreements/`
  and `/api/v1/cooperation/projects/`): roles with "See the cooperation agreements of every customer and team"
  (administrators, managers, marketing analysts, auditors) see all of them; a key-account manager or sales
  representative sees those they or their teams look after, those of the customers they or their teams own, and
  the projects they answer for. "Record cooperation agreements and run their projects" (administrators, managers,
  key-account managers, reps) writes within that scope; a task's owner reports its progress. The service desk and
  the pharmacovigilance officer have no access. Every change and export is audited.
- **Customer licences** (`/licences/`, its Excel export, the Licences block of a customer's page,
  `/api/v1/licences/`): anyone who sees a customer reads its licences (within the same scope). "Record customers'
  licences" (administrators, managers, key-account managers, reps) records and corrects them for the customers they
  may see, with their scanned copies; "Verify customers' licences" (administrators, managers, the pharmacovigilance
  officer for quality) checks them against the originals — never the person who recorded or last changed the licence.
  Whoever reads a licence downloads its scanned copy. Every change, verification, export and download is audited.
  "Review the sales made while a customer lacked a required licence" (`/licences/unqualified-sales/`, its Excel
  export, `/api/v1/licences/unqualified-sales/`: administrators, managers, key-account managers, reps, the
  pharmacovigilance officer for quality, marketing analysts, auditors) lists the orders dated on days a customer in
  scope lacked one; the amounts only for those who "See purchases" (not quality, who sees the orders and dates).
- **Loyalty programme and referrals** (`/loyalty/`, its Excel export, `/api/v1/loyalty/members/`,
  `/api/v1/loyalty/rewards/`, `/api/v1/loyalty/redemptions/` and `/api/v1/loyalty/referrals/`): roles with "See the loyalty programme of every customer and team"
  (administrators, managers, marketing analysts, auditors) see every member; a key-account manager or sales
  representative sees the members, redemptions and referrals of the customers they or their teams own. "Enrol
  customers in the loyalty programme, request redemptions, record referrals" (administrators, managers, key-account
  managers, reps) acts within that scope; "Approve redemptions, adjust points, run the reward catalogue"
  (administrators, managers) decides requests — never one's own (four eyes) — adjusts points and keeps the
  catalogue. The service desk and the pharmacovigilance officer have no access. Every change and export is audited.
- **Market information and competitor analysis** (`/market/`, its Excel export, the market brief on the Customer 360
  and key-account pages, `/api/v1/market/competitors/`, `/market/competitor-products/`, `/market/presence/`,
  `/market/intelligence/`):
  every role reads the competitors, their products and the market intelligence; competitor presence only at the
  customers one may see (the export likewise). "Record competitor presence and market intelligence for one's
  customers" (administrators, managers, marketing analysts, key-account managers, reps) records presence at those
  customers and adds intelligence naming one of them, and changes or deletes only one's own intelligence; "Keep the
  competitor catalogue and market intelligence of every customer" (administrators, managers, marketing analysts)
  keeps the competitors and their products and changes any intelligence. Every change, deletion and export is
  audited.
- **Staff training** (`/training/`): every role but the auditor sees and takes the training assigned to them and
  rates it, enrols in a classroom session (and withdraws before it starts) and downloads their certificates; "Create
  training courses and assign them" (administrators, managers) creates courses, their materials and tests, assigns
  them, plans, changes and cancels classroom sessions, enrols and withdraws trainees, takes attendance (so does a session's trainer) and revokes certificates; "See every person's training results"
  (administrators, managers, auditors) sees every person's results and certificates, the matrix and the exports
  (audited); a team lead sees those of the
  members of the teams they lead; "See the training's figures" (administrators, managers, auditors, marketing
  analysts) sees a course's completion, pass rate, ratings and effect on service performance, never a person's row.
- **Denied requests** answer 403 (or 404 for objects outside the scope); refused writes are audited
  as "access denied".
"""


def render_permissions_markdown() -> str:
    """docs/permissions.md, generated from roles.MATRIX so the document cannot drift from the code."""
    with translation.override("en"):
        roles = list(Role)
        lines = [
            "# Permissions",
            "",
            "<!-- Generated from pharmacrm/core/roles.py; a test keeps the two equal. After changing roles.py:",
            "     python -m pharmacrm.core.permissions_doc > docs/permissions.md -->",
            "",
            "Roles are Django groups named after the role codes below; a user may hold several.",
            "",
            "## Roles",
            "",
            "| Code | Role | Second factor | Read-only |",
            "|---|---|---|---|",
        ]
        for role in roles:
            lines.append(
                f"| `{role.value}` | {role.label} | {'yes' if role in SECOND_FACTOR_ROLES else ''} "
                f"| {'yes' if role in READ_ONLY_ROLES else ''} |"
            )
        lines += [
            "",
            "## Capabilities by role",
            "",
            "| Capability | " + " | ".join(f"`{r.value}`" for r in roles) + " |",
            "|---|" + "---|" * len(roles),
        ]
        for cap in Cap:
            marks = ["✓" if cap in role_capabilities(r) else "" for r in roles]
            lines.append(f"| {cap.label} (`{cap.value}`) | " + " | ".join(marks) + " |")
        lines += ["", SCOPE_RULES.rstrip(), ""]
        lines += ["## What each API endpoint requires", "", *ENDPOINT_RULES, ""]
    return "\n".join(lines)


ENDPOINT_RULES = [
    "| Endpoint | Needs |",
    "|---|---|",
    "| `GET /api/v1/institutions/`, `/people/`, `/consents/`, `/search/` | View customers (scoped) |",
    "| `POST`, `PUT`, `PATCH` on `/institutions/`, `/people/` | Create and edit customers (and the object in scope) |",
    "| `DELETE` on `/institutions/…`, `/people/…` | Delete customers |",
    "| `POST /api/v1/consents/` | Record consents |",
    "| `POST /api/v1/imports/`, `GET`/`POST /api/v1/imports/{id}/` | Import customers (`target` institutions or "
    "people); Import orders and payments from the ERP (`target` orders). A job is visible to whoever may import "
    "its target |",
    "| `GET /api/v1/export/{institutions,people}.{csv,xlsx}` | Export customers (scoped, masked as above) |",
    "| `GET /api/v1/audit/` | Read the audit trail (read-only: no method changes it) |",
    "| `GET /api/v1/users/`, `GET /api/v1/users/{id}/` | See users, their roles, teams and territory |",
    "| `POST /api/v1/users/`, `PUT`, `PATCH`, `DELETE` on `/api/v1/users/{id}/` | Manage users and roles "
    "(DELETE deactivates the user: their sessions end and their tokens are revoked) |",
    "| `POST /api/v1/users/{id}/second-factor/` | Manage users and roles (resets the user's second factor, issues an enrolment code) |",
    "| `GET /api/v1/keyaccounts/`, `/keyaccounts/{id}/` | See key accounts (scoped): their team and their service "
    "meetings' cadence, last meeting and next due day |",
    "| `PATCH /api/v1/keyaccounts/{id}/` | Run key accounts, and run that account: its project manager, a manager or "
    "an administrator (the meeting cadence only; never a read-only role) |",
    "| `PATCH /api/v1/keyaccounts/agreements/{id}/` (a draft's term), `POST /api/v1/keyaccounts/agreements/{id}/amendments/` "
    "(a signed one's), `POST …/amendments/{n}/signed-copy/upload/` (an amendment's signed copy, once) | Run key accounts, and run that account: its project manager, a manager or an administrator "
    "(never a read-only role; a change sends its version: 409 if stale) |",
    "| `GET /api/v1/survey-campaigns/`, `/survey-campaigns/{id}/` | See the service performance of every team and agent, "
    "or Take in and handle service tickets (not the pharmacovigilance officer) |",
    "| `POST /api/v1/survey-campaigns/`, `PATCH /survey-campaigns/{id}/` (a draft; `repeat` any), `POST …/{id}/start/`, "
    "`POST …/{id}/close/` | Configure the service desk (managers, administrators) |",
    "| `GET /api/v1/survey-campaigns/{id}/results/` | See the service performance of every team and agent |",
    "| `GET /api/v1/roles/`, `/regions/` | any signed-in user |",
    "| `GET /api/v1/sales/churn/` | See purchases (scoped: a rep sees the warnings of their territory's customers) |",
    "| `POST /api/v1/sales/churn/{id}/dismiss/` | See purchases and Create and edit customers, as the customer's owner "
    "or with \"See customers of every team and territory\" (not the analyst, not the auditor) |",
    "| `GET /api/v1/sales/churn-rates/` | See purchases and See customers of every team and territory (the company's "
    "rates: not a territory-bound rep) |",
    "| `GET /api/v1/service/performance/` | View service tickets; then every team with See the service performance of "
    "every team and agent, a team lead their teams, anyone else who handles tickets their own figures |",
    "| `GET /api/v1/service/complaints/` | See the complaint analysis of every team; a team lead (View service tickets) "
    "their teams' complaints; others 403 |",
    "| `GET /api/v1/sales/attainment/`, `GET /api/v1/sales/targets/` | A sales representative (their own row and "
    "their teams'), a team lead who may see purchases (their teams and members), or See every rep's and team's "
    "sales targets and attainment |",
    "| `POST /api/v1/sales/targets/`, `PUT`, `PATCH`, `DELETE` on `/api/v1/sales/targets/{id}/` | Set the sales "
    "targets of reps and teams (a change sends the version it loaded: 409 if stale) |",
    "| `/api/v1/report-subscriptions/` (GET, POST, PATCH, DELETE, `POST …/{id}/send-now/`) | any signed-in user, "
    "their own subscriptions only; a report is subscribed to only by those who may open its page (and checked again "
    "when it is sent); a read-only role only reads and stops (DELETE) its own |",
    "| `GET /api/v1/cooperation/agreements/`, `/cooperation/projects/` (and `{id}/`) | See cooperation agreements and "
    "projects (scoped; all with See the cooperation agreements of every customer and team) |",
    "| `POST`, `PUT`, `PATCH` on `/api/v1/cooperation/agreements/`, `/cooperation/projects/` and their actions (`sign`, "
    "`in-force`, `terminate`, `amendments`, `amendments/{n}/signed-copy/upload`; `start`, `tasks`, `checks`, `acceptances`, `amount-due`, `payments`, `close`) | Record "
    "cooperation agreements and run their projects, within the scope (an edit sends its version: 409 if stale); "
    "`task-progress` also the task's owner |",
    "| `GET /api/v1/licences/` (and `{id}/`) | View customers (scoped: the licences of the customers the user may see) |",
    "| `POST`, `PUT`, `PATCH` on `/api/v1/licences/`, `POST /api/v1/licences/{id}/scan/` | Record customers' licences, "
    "for a customer in scope (an edit sends its version: 409 if stale) |",
    "| `POST /api/v1/licences/{id}/verify/` | Verify customers' licences; never the one who recorded it |",
    "| `GET /api/v1/licences/unqualified-sales/` | Review the sales made while a customer lacked a required licence "
    "(scoped; `amount` null without See purchases) |",
    "| `GET /api/v1/loyalty/members/`, `/loyalty/rewards/`, `/loyalty/redemptions/`, `/loyalty/referrals/` (and `{id}/`) "
    "| See loyalty members, points, redemptions and referrals (scoped; all with See the loyalty programme of every "
    "customer and team) |",
    "| `POST /api/v1/loyalty/members/`, `/loyalty/redemptions/`, `/loyalty/referrals/`, `POST …/redemptions/{id}/fulfil/` "
    "| Enrol customers in the loyalty programme, request redemptions, record referrals, within the scope (fulfil also "
    "Approve redemptions) |",
    "| `POST /api/v1/loyalty/redemptions/{id}/approve/`, `…/reject/`; `POST`, `PUT`, `PATCH` on `/loyalty/rewards/` | "
    "Approve redemptions, adjust points, run the reward catalogue (never one's own request: 403; a decision sends its "
    "version: 409 if stale) |",
    "| `GET /api/v1/market/competitors/`, `/market/competitor-products/`, `/market/intelligence/` (and `{id}/`) | See "
    "competitors, their presence at customers and market intelligence |",
    "| `GET /api/v1/market/presence/` (and `{id}/`) | See competitors, their presence at customers and market "
    "intelligence (the customers one may see) |",
    "| `POST /api/v1/market/presence/`, `/market/intelligence/`; `PUT`, `PATCH`, `DELETE …/intelligence/{id}/` | Record "
    "competitor presence and market intelligence for one's customers (presence at another's customer: 404; "
    "another's intelligence: 403 without Keep the competitor catalogue) |",
    "| `POST`, `PUT`, `PATCH /api/v1/market/competitors/`, `/market/competitor-products/` | Keep the competitor catalogue "
    "and market intelligence of every customer |",
    "| `GET /api/v1/training/courses/` | Take the training assigned to oneself, a training capability, or a team lead "
    "(published courses; every course with Create training courses or See every person's training results) |",
    "| `GET /api/v1/training/assignments/` | as above: one's own; every one with See every person's training results; a "
    "team lead also their teams' members' |",
    "| `POST /api/v1/training/assignments/{id}/attempts/` | Take the training assigned to oneself, on one's own "
    "assignment (403 on another's the caller may read) |",
    "| `GET /api/v1/training/certificates/` | as the assignments: one's own; every one with See every person's training "
    "results; a team lead also their teams' members' |",
    "| `GET /api/v1/training/sessions/` (and `{id}/`) | Take the training assigned to oneself, a training capability, or "
    "a team lead (the sessions of the courses they see; the attendees for the trainer and who sees the results) |",
    "| `POST /api/v1/training/sessions/`, `PUT`, `PATCH` on `/training/sessions/{id}/`, `POST …/{id}/cancel/` | Create "
    "training courses and assign them (a change or cancellation sends the version it loaded: 409 if stale) |",
    "| `POST /api/v1/training/sessions/{id}/enrol/`, `…/{id}/withdraw/` | Take the training assigned to oneself, for "
    "oneself; Create training courses and assign them, for anyone's assignment |",
    "| `GET /api/v1/sales/opportunities/`, `/sales/opportunities/{id}/`, `GET /api/v1/sales/funnel/` | Work sales "
    "opportunities (their own and their teams') or See every sales opportunity and the whole pipeline's funnel |",
    "| `POST /api/v1/sales/opportunities/`, `PUT`, `PATCH` on `/sales/opportunities/{id}/`, `POST …/{id}/move/` | "
    "Work sales opportunities, within that scope (a change or move sends the version it loaded: 409 if stale) |",
    "| `GET /api/v1/engagement/stage-tasks/`, `/engagement/stage-tasks/{id}/` | See the stage tasks of the lifecycle "
    "(scoped: the owner their own, a team lead their teams', See every owner's stage tasks … all) |",
    "| `POST /api/v1/engagement/stage-tasks/{id}/done/`, `…/{id}/skip/` | See the stage tasks and Record interactions, "
    "within that scope (done records the interaction; skip needs a reason; 409 on a stale version) |",
    "| `GET /api/v1/engagement/playbook/`, `/engagement/playbook/{id}/` | See the stage tasks of the lifecycle |",
    "| `POST /api/v1/engagement/playbook/`, `PATCH /api/v1/engagement/playbook/{id}/` | Change the stage playbook of "
    "the customer lifecycle (a change sends the version it loaded) |",
    "| `GET /api/v1/sales/clv/`, `/sales/clv/{id}/` | See customer lifetime value (scoped: the customers the user "
    "may see) |",
    "| `GET /api/v1/engagement/channels/` | View customers, View interactions and See purchases together (the figures "
    "of the customers the user may see) |",
    "| `GET /api/v1/sales/appraisals/`, `/sales/appraisals/{id}/` | See one's own KPI appraisal (a team lead: their "
    "teams' members too) or See every person's and team's KPI appraisal; others 403, another's result 404 |",
    "| `GET /api/v1/sales/appraisal-schemes/`, `/sales/appraisal-schemes/{id}/` | See every person's and team's KPI "
    "appraisal |",
    "| `POST /api/v1/auth/token/` | username, password and, for second-factor roles, `otp` |",
]


if __name__ == "__main__":
    import os
    import sys

    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pharmacrm.settings")
    django.setup()
    sys.stdout.write(render_permissions_markdown())
