"""From the tenant's sign-in logs to the hosts that still use legacy TLS, and back after the fix.

``tls-runbook scope`` and ``notebooks/00_scope.ipynb`` call :func:`.collect.make_report`: sources are read
(:mod:`.sources`, :mod:`.graph`), counted and mapped to inventory hosts (:mod:`.report`, :mod:`.mapping`), and
compared with a fleet run's end (:mod:`.after`).
"""
