# tls-runbook-operation: journal
# Returns the journal an apply run left on the host, for when the connection dropped while it ran.
#
# Arguments: {"apply_id": "[A-Za-z0-9][A-Za-z0-9._-]{0,63}"}
# Result: the journal document, the same shape as apply's result:
#   {"apply_id", "completed": bool, "backup": [...], "results": [...]}
# The file is passed through as written by apply (it is already JSON). If only the ".tmp" copy exists, apply
# stopped between writing it and moving it into place, and that copy is the newest state.

try {
    $A = Get-TrArgs
    $applyId = [string]$A.apply_id
    if ($applyId -cnotmatch '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$') { throw 'apply_id is not a safe file name' }
    $file = Join-Path (Join-Path $env:ProgramData 'tls-runbook') ($applyId + '.json')
    if (-not [IO.File]::Exists($file)) { $file = $file + '.tmp' }
    if (-not [IO.File]::Exists($file)) { throw ('no journal for apply_id ' + $applyId + ' on this host') }
    Write-TrResultJson 'journal' ([IO.File]::ReadAllText($file, [Text.Encoding]::ASCII))
} catch {
    Write-TrError 'journal' $_
}
