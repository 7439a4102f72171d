"""What the sales app plugs into other apps at start-up: the orders import target, the batch trace."""


def register() -> None:
    from pharmacrm.customers import services as customers
    from pharmacrm.safety import services as safety

    from . import importer, services

    importer.register()
    safety.register_batch_source(services.batch_customers)
    customers.merging.connect(_lock_before_merge, dispatch_uid="sales-merging")
    customers.merged.connect(_recompute_after_merge, dispatch_uid="sales-merge")


def _lock_before_merge(sender, **kwargs) -> None:
    """A customer merge takes the writers' lock of lines and rollups first, as an import's chunk does, then the
    two customers' rows. Taken at its end (to recompute the survivor's months) the lock came after those rows,
    while a chunk storing lines of one of the two held it and waited for the row: a deadlock, which PostgreSQL
    broke by failing the merge or the import."""
    from pharmacrm.customers.models import Institution

    from . import rollups

    if sender is Institution:
        rollups.lock()


def _recompute_after_merge(sender, survivor, duplicate, **kwargs) -> None:
    """The duplicate's order lines moved to the survivor: its months are recomputed from the lines, the moved
    lines re-fingerprinted with the survivor (a re-import of the same file finds them unchanged), and the survivor
    scored again with them (the evaluation's incremental update, after the merge commits)."""
    from pharmacrm.customers.models import Institution, MergeRecord, SearchTerm

    from . import importer, rollups
    from .models import MonthlyRollup, OrderLine

    if sender is not Institution:
        return
    record = (
        MergeRecord.objects.filter(kind=SearchTerm.Kind.INSTITUTION, survivor_id=survivor.pk, merged_id=duplicate.pk)
        .order_by("-id").first()
    )  # fmt: skip
    moved = (record.moved or {}).get("sales.orderline.institution", []) if record else []
    importer.rehash_moved(list(moved), duplicate.pk)
    MonthlyRollup.objects.filter(institution_id=duplicate.pk).delete()
    months = OrderLine.objects.filter(institution_id=survivor.pk).values_list("month", flat=True).distinct()
    rollups.mark_dirty((survivor.pk, m) for m in months)
    rollups.refresh_dirty()
    # the survivor bought what both did: scored again once the merge is committed, not at the next import
    from . import services

    services.rescore_changed()
