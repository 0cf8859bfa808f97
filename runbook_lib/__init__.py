"""tls-runbook: find, fix and prove the fix for AADSTS1002016 (legacy TLS / 3DES) on Windows hosts."""

__version__ = "0.1.0"
