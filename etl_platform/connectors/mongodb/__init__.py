"""mongodb: one package for the system (its connection today; its reader, writer and IO manager to follow)."""
