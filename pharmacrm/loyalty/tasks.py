"""Background work of the loyalty programme (docs/loyalty.md, docs/operations.md)."""

from huey.contrib.djhuey import db_periodic_task

from pharmacrm.core.tasks import local_crontab


@db_periodic_task(local_crontab(day=1, hour=6, minute=30))
def loyalty_monthly() -> None:
    """The 1st of each month at 06:30 Beijing: points for last month's payments, the levels, the expiry (and the
    automatic joining when LOYALTY_AUTO_JOIN is on). Idempotent."""
    from . import services

    services.monthly()


@db_periodic_task(local_crontab(hour=3, minute=20))
def loyalty_referral_rewards() -> None:
    """Nightly at 03:20 Beijing: referrals whose customer has paid a first purchase earn the referrer's points, once."""
    from . import services

    services.referral_rewards()
