"""Roles (as Django groups) and the permission matrix: the single source the policy module reads."""

from django.db import models
from django.utils.translation import gettext_lazy as _


class Role(models.TextChoices):
    ADMIN = "admin", _("Administrator")
    MANAGER = "manager", _("Manager / factory leadership")
    KAM = "kam", _("Key-account manager")
    AGENT = "agent", _("Customer-service agent")
    EXPERT = "expert", _("Product expert")
    SUPPORT = "support", _("Technical support")
    AFTERSALES = "aftersales", _("After-sales")
    REP = "rep", _("Sales representative")
    PV = "pv", _("Pharmacovigilance / QA officer")
    ANALYST = "analyst", _("Marketing analyst")
    AUDITOR = "auditor", _("Auditor / data steward")


# Roles whose login needs a second factor (TOTP).
SECOND_FACTOR_ROLES = frozenset({Role.ADMIN, Role.AUDITOR, Role.PV})


class Cap(models.TextChoices):
    """Capabilities: what a role may do. Object scope is decided separately in access.py."""

    VIEW_CUSTOMERS = "customers.view", _("View customers")
    CHANGE_CUSTOMERS = "customers.change", _("Create and edit customers")
    DELETE_CUSTOMERS = "customers.delete", _("Delete customers")
    MERGE_CUSTOMERS = "customers.merge", _("Merge duplicate customers")
    IMPORT_CUSTOMERS = "customers.import", _("Import customers")
    EXPORT_CUSTOMERS = "customers.export", _("Export customers")
    VIEW_PERSONAL_DATA = "personal.view", _("See personal data unmasked")
    REVEAL_PERSONAL_DATA = "personal.reveal", _("Reveal personal data with a stated reason")
    MANAGE_CONSENTS = "consents.change", _("Record consents")
    VIEW_AUDIT = "audit.view", _("Read the audit trail")
    VIEW_USERS = "users.view", _("See users, their roles, teams and territory")
    MANAGE_USERS = "users.manage", _("Manage users and roles")
    ALL_CUSTOMERS = "customers.scope_all", _("See customers of every team and territory")
    VIEW_TICKETS = "tickets.view", _("View service tickets")
    HANDLE_TICKETS = "tickets.handle", _("Take in and handle service tickets")
    MANAGE_SERVICE = "service.manage", _("Configure the service desk (categories, SLA policies, calendars, service goals)")
    VIEW_SERVICE_PERFORMANCE = "service.performance", _("See the service performance of every team and agent")
    REVIEW_SERVICE_QUALITY = "service.quality", _("Review the quality of any handled ticket (accuracy, compliance)")
    VIEW_COMPLAINT_ANALYSIS = "service.complaints", _("See the complaint analysis of every team (causes, impacts)")
    MANAGE_KNOWLEDGE = "knowledge.manage", _("Maintain the product catalogue and answer templates")
    HANDLE_SAFETY = "safety.handle", _("Handle safety and quality cases, patient data included")
    OVERSEE_SAFETY = "safety.oversee", _("See safety cases' status, clocks and reconciliation, without patient identity")
    CONFIGURE_SAFETY = "safety.configure", _("Maintain the regulatory reporting rules")
    VIEW_INTERACTIONS = "interactions.view", _("View interactions")
    RECORD_INTERACTIONS = "interactions.record", _("Record interactions (visits, calls, messages)")
    MANAGE_COMMUNICATION_PLANS = "communication.manage", _("Set the annual communication plans per customer class")
    VIEW_PURCHASES = "purchases.view", _("See purchases, payments and credit status")
    IMPORT_ORDERS = "orders.import", _("Import orders and payments from the ERP")
    VIEW_EVALUATIONS = "evaluations.view", _("See customer evaluations and key-account scores")
    RUN_EVALUATIONS = "evaluations.run", _("Run evaluations and apply their results")
    CONFIGURE_SCORING = "scoring.configure", _("Configure the scoring models (weights, thresholds, results)")
    VIEW_KEY_ACCOUNTS = "keyaccounts.view", _("See key accounts, their teams, plans and agreements")
    PROPOSE_KEY_ACCOUNTS = "keyaccounts.propose", _("Propose customers for listing or de-listing as key accounts")
    REVIEW_KEY_ACCOUNTS = "keyaccounts.review", _("Give a department's opinion on key-account proposals")
    APPROVE_KEY_ACCOUNTS = "keyaccounts.approve", _("Approve key accounts, service plans (factory leadership)")
    MANAGE_KEY_ACCOUNTS = "keyaccounts.manage", _("Run key accounts: team, plans, agreements, meetings, trials")
    SET_SALES_TARGETS = "sales.targets", _("Set the sales targets of reps and teams")
    VIEW_ALL_ATTAINMENT = "sales.attainment", _("See every rep's and team's sales targets and attainment")
    READ_COOPERATION = "cooperation.read", _("See cooperation agreements and projects (own, team's, customers')")
    MANAGE_COOPERATION = "cooperation.manage", _("Record cooperation agreements and run their projects")
    ALL_COOPERATION = "cooperation.all", _("See the cooperation agreements of every customer and team")
    READ_LOYALTY = "loyalty.read", _("See loyalty members, points, redemptions and referrals (own, team's)")
    MANAGE_LOYALTY = "loyalty.manage", _("Enrol customers in the loyalty programme, request redemptions, record referrals")
    APPROVE_LOYALTY = "loyalty.approve", _("Approve redemptions, adjust points, run the reward catalogue")
    ALL_LOYALTY = "loyalty.all", _("See the loyalty programme of every customer and team")
    TAKE_TRAINING = "training.take", _("Take the training assigned to oneself")
    MANAGE_TRAINING = "training.manage", _("Create training courses and assign them")
    VIEW_TRAINING_RESULTS = "training.results", _("See every person's training results")
    VIEW_TRAINING_FIGURES = "training.figures", _("See the training's figures (completion, pass rate, ratings, effect)")
    WORK_PIPELINE = "sales.pipeline", _("Work sales opportunities (their own and their teams')")
    VIEW_ALL_PIPELINE = "sales.pipeline_all", _("See every sales opportunity and the whole pipeline's funnel")
    VIEW_STAGE_TASKS = "lifecycle.tasks", _("See the stage tasks of the lifecycle (own, teams' led)")
    ALL_STAGE_TASKS = "lifecycle.all", _("See every owner's stage tasks and the lifecycle's conversion")
    MANAGE_PLAYBOOK = "lifecycle.playbook", _("Change the stage playbook of the customer lifecycle")
    VIEW_CUSTOMER_VALUE = "sales.clv", _("See customer lifetime value (CLV)")
    MANAGE_LICENCES = "licences.manage", _("Record customers' licences (business, drug trading, practising)")
    VERIFY_LICENCES = "licences.verify", _("Verify customers' licences against the originals (quality review)")
    REVIEW_UNQUALIFIED_SALES = "licences.sales", _("Review the sales made while a customer lacked a required licence")
    READ_MARKET = "market.read", _("See competitors, their presence at customers and market intelligence")
    RECORD_MARKET = "market.record", _("Record competitor presence and market intelligence for one's customers")
    MANAGE_MARKET = "market.manage", _("Keep the competitor catalogue and market intelligence of every customer")
    VIEW_OWN_APPRAISAL = "sales.kpi_own", _("See one's own KPI appraisal (a team lead: their teams')")
    VIEW_ALL_APPRAISALS = "sales.kpi_all", _("See every person's and team's KPI appraisal")
    MANAGE_APPRAISALS = "sales.kpi_manage", _("Set the KPI appraisal schemes, compute and finalise the results")


R = Role
ALL_ROLES = frozenset(Role)
EVERYONE_BUT_AUDITOR = ALL_ROLES - {R.AUDITOR}

# capability → roles that hold it
MATRIX: dict[Cap, frozenset[Role]] = {
    Cap.VIEW_CUSTOMERS: ALL_ROLES,
    Cap.CHANGE_CUSTOMERS: frozenset({R.ADMIN, R.MANAGER, R.KAM, R.AGENT, R.REP}),
    Cap.DELETE_CUSTOMERS: frozenset({R.ADMIN, R.MANAGER}),
    Cap.MERGE_CUSTOMERS: frozenset({R.ADMIN, R.MANAGER}),
    Cap.IMPORT_CUSTOMERS: frozenset({R.ADMIN, R.MANAGER, R.KAM}),
    Cap.EXPORT_CUSTOMERS: frozenset({R.ADMIN, R.MANAGER, R.KAM, R.REP, R.ANALYST, R.AUDITOR}),
    Cap.VIEW_PERSONAL_DATA: frozenset({R.ADMIN, R.MANAGER, R.KAM, R.REP, R.PV}),
    Cap.REVEAL_PERSONAL_DATA: frozenset({R.AGENT, R.EXPERT, R.SUPPORT, R.AFTERSALES, R.AUDITOR}),
    Cap.MANAGE_CONSENTS: frozenset({R.ADMIN, R.MANAGER, R.KAM, R.AGENT, R.REP}),
    Cap.VIEW_AUDIT: frozenset({R.ADMIN, R.AUDITOR}),
    Cap.VIEW_USERS: frozenset({R.ADMIN, R.AUDITOR}),
    Cap.MANAGE_USERS: frozenset({R.ADMIN}),
    Cap.ALL_CUSTOMERS: ALL_ROLES - {R.REP},
    Cap.VIEW_TICKETS: ALL_ROLES,
    Cap.HANDLE_TICKETS: frozenset({R.ADMIN, R.MANAGER, R.KAM, R.AGENT, R.EXPERT, R.SUPPORT, R.AFTERSALES, R.REP}),
    Cap.MANAGE_SERVICE: frozenset({R.ADMIN, R.MANAGER}),
    Cap.VIEW_SERVICE_PERFORMANCE: frozenset({R.ADMIN, R.MANAGER, R.ANALYST, R.AUDITOR}),
    # quality reviews (服务质检): leadership and the product experts, who answer for the medical content of answers;
    # a team lead reviews their teams' tickets (quality.may_review), no one their own
    Cap.REVIEW_SERVICE_QUALITY: frozenset({R.ADMIN, R.MANAGER, R.EXPERT}),
    # the performance page's roles, and QA: complaint trending and root causes are the quality unit's review
    # (药品GMP 第十章 投诉); not the product expert, who handles tickets and sees their own on the performance page
    Cap.VIEW_COMPLAINT_ANALYSIS: frozenset({R.ADMIN, R.MANAGER, R.ANALYST, R.AUDITOR, R.PV}),
    Cap.MANAGE_KNOWLEDGE: frozenset({R.ADMIN, R.MANAGER, R.EXPERT}),
    Cap.HANDLE_SAFETY: frozenset({R.PV}),
    Cap.OVERSEE_SAFETY: frozenset({R.ADMIN, R.MANAGER, R.PV, R.AUDITOR}),
    Cap.CONFIGURE_SAFETY: frozenset({R.ADMIN, R.PV}),
    Cap.VIEW_INTERACTIONS: ALL_ROLES,
    Cap.RECORD_INTERACTIONS: frozenset({R.ADMIN, R.MANAGER, R.KAM, R.AGENT, R.EXPERT, R.SUPPORT, R.AFTERSALES, R.REP}),
    Cap.MANAGE_COMMUNICATION_PLANS: frozenset({R.ADMIN, R.MANAGER}),
    Cap.VIEW_PURCHASES: frozenset({R.ADMIN, R.MANAGER, R.KAM, R.REP, R.ANALYST, R.AUDITOR}),
    Cap.IMPORT_ORDERS: frozenset({R.ADMIN, R.MANAGER}),
    Cap.VIEW_EVALUATIONS: frozenset({R.ADMIN, R.MANAGER, R.KAM, R.REP, R.ANALYST, R.AUDITOR}),
    Cap.RUN_EVALUATIONS: frozenset({R.ADMIN, R.MANAGER, R.ANALYST}),
    Cap.CONFIGURE_SCORING: frozenset({R.ADMIN, R.MANAGER, R.ANALYST}),
    Cap.VIEW_KEY_ACCOUNTS: ALL_ROLES,
    Cap.PROPOSE_KEY_ACCOUNTS: frozenset({R.ADMIN, R.MANAGER, R.ANALYST}),
    Cap.REVIEW_KEY_ACCOUNTS: frozenset({R.ANALYST, R.KAM, R.REP, R.AGENT, R.SUPPORT, R.AFTERSALES, R.PV, R.EXPERT}),
    Cap.APPROVE_KEY_ACCOUNTS: frozenset({R.MANAGER}),
    Cap.MANAGE_KEY_ACCOUNTS: frozenset({R.ADMIN, R.MANAGER, R.KAM}),
    Cap.SET_SALES_TARGETS: frozenset({R.ADMIN, R.MANAGER}),
    # reps see their own row and their teams' totals, team leads their teams (sales.targets.scope_for)
    Cap.VIEW_ALL_ATTAINMENT: frozenset({R.ADMIN, R.MANAGER, R.ANALYST, R.AUDITOR}),
    # cooperation agreements and projects (seed 002 §五): sales and key accounts run them for their customers,
    # leadership oversees all, marketing and audit read; no business of the service desk or pharmacovigilance
    Cap.READ_COOPERATION: frozenset({R.ADMIN, R.MANAGER, R.KAM, R.REP, R.ANALYST, R.AUDITOR}),
    Cap.MANAGE_COOPERATION: frozenset({R.ADMIN, R.MANAGER, R.KAM, R.REP}),
    Cap.ALL_COOPERATION: frozenset({R.ADMIN, R.MANAGER, R.ANALYST, R.AUDITOR}),
    # the loyalty programme (seed 000 §6.2–6.3): reps and key-account managers enrol their own and their teams'
    # customers and ask for redemptions, which leadership approves (never the one who asked); marketing reads the
    # figures, audit reads; no business of the service desk or pharmacovigilance
    Cap.READ_LOYALTY: frozenset({R.ADMIN, R.MANAGER, R.KAM, R.REP, R.ANALYST, R.AUDITOR}),
    Cap.MANAGE_LOYALTY: frozenset({R.ADMIN, R.MANAGER, R.KAM, R.REP}),
    Cap.APPROVE_LOYALTY: frozenset({R.ADMIN, R.MANAGER}),
    Cap.ALL_LOYALTY: frozenset({R.ADMIN, R.MANAGER, R.ANALYST, R.AUDITOR}),
    # team leads see their teams' results (training.results_scope); analysts the figures, never a person's row
    Cap.TAKE_TRAINING: EVERYONE_BUT_AUDITOR,
    Cap.MANAGE_TRAINING: frozenset({R.ADMIN, R.MANAGER}),
    Cap.VIEW_TRAINING_RESULTS: frozenset({R.ADMIN, R.MANAGER, R.AUDITOR}),
    Cap.VIEW_TRAINING_FIGURES: frozenset({R.ADMIN, R.MANAGER, R.AUDITOR, R.ANALYST}),
    # reps and key-account managers their own and their teams' opportunities, team leads their teams'
    # (sales.pipeline.scope_for); managers and administrators every one; analysts and auditors read them all
    Cap.WORK_PIPELINE: frozenset({R.ADMIN, R.MANAGER, R.KAM, R.REP}),
    Cap.VIEW_ALL_PIPELINE: frozenset({R.ADMIN, R.MANAGER, R.ANALYST, R.AUDITOR}),
    # the lifecycle's stage tasks (engagement.playbook): owners their own, team leads their teams', managers all
    # (auditors read); the playbook is the managers'. Lifetime value: sales, leadership, analysts, audit — not the
    # service desk or pharmacovigilance
    Cap.VIEW_STAGE_TASKS: frozenset({R.ADMIN, R.MANAGER, R.KAM, R.REP, R.AGENT, R.AUDITOR}),
    Cap.ALL_STAGE_TASKS: frozenset({R.ADMIN, R.MANAGER, R.AUDITOR}),
    Cap.MANAGE_PLAYBOOK: frozenset({R.ADMIN, R.MANAGER}),
    Cap.VIEW_CUSTOMER_VALUE: frozenset({R.ADMIN, R.MANAGER, R.KAM, R.REP, R.ANALYST, R.AUDITOR}),
    # customers' licences (GSP: the buyer's legal qualification is checked before selling): sales collect them for
    # the customers they may change; quality (the pharmacovigilance officer speaks for QA in key-account reviews)
    # and leadership check them against the originals, never the one who recorded; everyone reads within scope
    Cap.MANAGE_LICENCES: frozenset({R.ADMIN, R.MANAGER, R.KAM, R.REP}),
    Cap.VERIFY_LICENCES: frozenset({R.ADMIN, R.MANAGER, R.PV}),
    # the orders sold while a customer lacked a required licence: sales and leadership, who answer for them, quality,
    # marketing analysts and audit (the amounts only to those who see purchases: not quality)
    Cap.REVIEW_UNQUALIFIED_SALES: frozenset({R.ADMIN, R.MANAGER, R.KAM, R.REP, R.ANALYST, R.AUDITOR, R.PV}),
    # market information and competitor analysis (seed 001 二.2): everyone who reads customers reads it (presence
    # within their customer scope); reps and key-account managers record what they see at their customers;
    # marketing (analysts) and leadership keep the competitor catalogue and write for every customer
    Cap.READ_MARKET: ALL_ROLES,
    Cap.RECORD_MARKET: frozenset({R.ADMIN, R.MANAGER, R.ANALYST, R.KAM, R.REP}),
    Cap.MANAGE_MARKET: frozenset({R.ADMIN, R.MANAGER, R.ANALYST}),
    # the KPI appraisal (sales.kpi): the people appraised (reps, key-account managers) their own result, a team lead
    # their teams'; leadership and audit every one; the schemes and the finalising are the managers'
    Cap.VIEW_OWN_APPRAISAL: frozenset({R.KAM, R.REP}),
    Cap.VIEW_ALL_APPRAISALS: frozenset({R.ADMIN, R.MANAGER, R.AUDITOR}),
    Cap.MANAGE_APPRAISALS: frozenset({R.ADMIN, R.MANAGER}),
}

# The department a reviewer speaks for in a key-account review (seed 001 §3.1).
REVIEW_DEPARTMENT = {
    R.ANALYST: "marketing", R.KAM: "sales", R.REP: "sales", R.AGENT: "service", R.SUPPORT: "service",
    R.AFTERSALES: "service", R.PV: "qa", R.EXPERT: "rnd",
}  # fmt: skip

# Roles that may never change anything, whatever else they are given.
READ_ONLY_ROLES = frozenset({R.AUDITOR})
