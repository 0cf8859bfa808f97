"""Many hosts: a run over an inventory (one chain of notebooks per host), the signed evidence bundle it writes
through, the fleet summary, resume and rollback. Everything per host is the runbook layer's; this layer schedules
it, keeps what it produced, and proves the bundle whole."""
