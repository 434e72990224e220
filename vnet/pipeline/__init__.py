"""The pipeline over every mechanism: stages (probe, compile, observe, match), plan, execute
(with rollback), destroy, the session a command holds, and the per-lab lock
(docs/architecture.md)."""
