"""writeback: planned, guarded, exactly-once corrections to the books and the CRM (issue 7).

policies.py (settings per connection) -> plan.py (`writeback.plan`, nothing remote) -> guards.py
(invariants, mass change, posted documents) -> apply.py (batches, `writeback.ledger`, lookups by
reference, refresh of what was written) through the role writers of ports.py; assets.py makes them
Dagster assets and gives the CLI `plan_connection` / `apply_connection`.
"""
