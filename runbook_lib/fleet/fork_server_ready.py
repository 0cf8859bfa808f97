"""Imported last by the workers' fork server (see :data:`runbook_lib.fleet.workers.PRELOAD`), after everything a
worker uses: the objects imported so far are moved out of the garbage collector's sight, as the kernel template
does, so that a worker's first collection does not write to every one of them and copy their pages. Without it
each worker ends up with a private copy of the whole preloaded heap (about 60 MB) instead of sharing it."""

import gc

gc.collect()
gc.freeze()
