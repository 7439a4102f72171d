"""What the sales app plugs into other apps at start-up: the orders import target, the batch trace."""


def register() -> None:
    from pharmacrm.safety import services as safety

    from . import importer, services

    importer.register()
    safety.register_batch_source(services.batch_customers)
