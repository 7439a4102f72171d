"""What the key-account programme plugs into other apps at start-up: key-account tickets route to the
account's service team (and count as key-account tickets: priority boost) once the team has an active member
who handles tickets; before that they route as any other ticket, boosted by the customer's key-account tier
(services.ticket_team). De-listing sends the tickets still waiting unassigned in the team back to the
ordinary routing (services._reroute_tickets). A customer merge carries the duplicate's KOLs and assessment over
(influence.merge_influence), and the duplicate leaves the evaluation lists of the periods in force
(evaluation.drop_merged_scores)."""


def register() -> None:
    from pharmacrm.customers import services as customers
    from pharmacrm.servicedesk import routing

    from . import evaluation, influence, services

    routing.register_key_account_team(services.ticket_team)
    customers.merged.connect(influence.merge_influence, dispatch_uid="keyaccounts-merge-influence")
    customers.merged.connect(evaluation.drop_merged_scores, dispatch_uid="keyaccounts-merge-scores")
