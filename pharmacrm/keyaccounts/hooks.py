"""What the key-account programme plugs into other apps at start-up: key-account tickets route to the
account's service team (and count as key-account tickets: priority boost)."""


def register() -> None:
    from pharmacrm.servicedesk import routing

    from . import services

    routing.register_key_account_team(services.ticket_team)
