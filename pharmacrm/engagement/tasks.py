"""Background work for interactions: the morning reminders of first follow-ups, of contacts the communication plans
ask for and of the festivals to greet customers on."""

from huey.contrib.djhuey import db_periodic_task

from pharmacrm.core.tasks import local_crontab

from . import care, followup, plans


@db_periodic_task(local_crontab(hour=8, minute=30))
def remind_first_follow_ups() -> None:
    """Every morning at 08:30 (China time): owners of new customers whose first follow-up is due today or
    overdue are told how many (once a day)."""
    followup.remind()


@db_periodic_task(local_crontab(hour=8, minute=35))
def remind_communication_plans() -> None:
    """Every morning at 08:35 (China time): owners of customers behind their communication plan — a period ending
    within a week short of it, or the last one missed — are told how many (once a day)."""
    plans.remind()


@db_periodic_task(local_crontab(hour=8, minute=40))
def remind_festivals() -> None:
    """Every morning at 08:40 (China time): from three days before a festival (the Spring Festival, Mid-Autumn, Doctors'
    Day …), owners of the customers it is for are told how many to greet (once per festival)."""
    care.remind_festivals()


@db_periodic_task(local_crontab(hour=8, minute=45))
def remind_stage_tasks() -> None:
    """Every morning at 08:45 (China time): owners of stage tasks past their due date are told how many (once per
    task)."""
    from . import playbook

    playbook.remind()


@db_periodic_task(local_crontab(hour=2, minute=40))
def sweep_stage_tasks() -> None:
    """Every night at 02:40 (China time): customers whose lifecycle stage changed without passing the stage tasks (a
    script, a repair) are given their stage's tasks; tasks with a provisional due date (a year the calendar lacked) are
    dated again — a chinese-calendar upgrade brings a year without any change to the calendar."""
    from . import playbook

    playbook.sweep()
    playbook.redate_provisional()
