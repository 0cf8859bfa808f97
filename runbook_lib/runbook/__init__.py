"""One host, as the notebooks work through it: parameters, the session, the steps in order, their evidence files,
and how results render. :mod:`runbook_lib.notebook` is the public face the notebook cells import; the widgets and
headless runs call the same functions here."""
