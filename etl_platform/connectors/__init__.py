"""One package per external system (docs/architecture.md): its connection declared once, for its reader,
writer and IO manager."""
