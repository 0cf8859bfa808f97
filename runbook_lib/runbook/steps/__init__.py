"""The runbook's steps, one module per notebook; each public function is one notebook cell. A step takes the
session, runs its operations on the host (:mod:`runbook_lib.runbook.operations`), writes its evidence files and
shows its result (:mod:`runbook_lib.runbook.display`)."""
