"""Planner statistics after migrations on SQLite.

SQLite rebuilds a table for many schema changes (a new column with a default, a changed field) and the
rebuilt table has no statistics, while its neighbours keep theirs. The planner then guesses: after migration
customers 0015 rebuilt the people table of a 1.2 M-person database, a rep's search of several words took
440 ms of CPU instead of 16 ms, because SQLite read the merged-record index (null for nearly everyone) to
test the territory. So after every `migrate`, a table with indexes but no statistics, in a database that
has statistics at all, is analysed. A new database (never analysed) is left as it is: SQLite plans it well
without statistics, and `pharmacrm seed` analyses what it loads. PostgreSQL rebuilds nothing and its
autovacuum keeps statistics current."""

from django.db import DEFAULT_DB_ALIAS, connections


def tables_without_statistics(connection) -> list[str]:
    """Tables that have indexes, hold rows, and have no statistics while others have."""
    if connection.vendor != "sqlite":
        return []
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sqlite_stat1'")
        if cursor.fetchone() is None:
            return []
        cursor.execute(
            "SELECT DISTINCT m.tbl_name FROM sqlite_master m WHERE m.type = 'index' AND m.tbl_name NOT LIKE 'sqlite_%' "
            "AND m.tbl_name NOT IN (SELECT tbl FROM sqlite_stat1) ORDER BY 1"
        )
        tables = [row[0] for row in cursor.fetchall()]
        quote = connection.ops.quote_name
        out = []
        for table in tables:
            cursor.execute(f"SELECT 1 FROM {quote(table)} LIMIT 1")  # noqa: S608 (a name from sqlite_master)
            if cursor.fetchone() is not None:
                out.append(table)
        return out


def renew(using: str = DEFAULT_DB_ALIAS) -> list[str]:
    """Analyse the tables that lost their statistics; the tables analysed."""
    connection = connections[using]
    tables = tables_without_statistics(connection)
    if tables:
        with connection.cursor() as cursor:
            for table in tables:
                cursor.execute(f"ANALYZE {connection.ops.quote_name(table)}")
    return tables


def after_migrate(sender, using=DEFAULT_DB_ALIAS, plan=None, **kwargs) -> None:
    """post_migrate receiver (sent once per app after the whole migrate run: once is enough)."""
    if plan:
        renew(using)
