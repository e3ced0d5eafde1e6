"""opensearch: one package for the system: connection.py (how to reach it, declared once), reader.py (its Source),
writer.py (its writer target and IO manager)."""
