# tls-runbook-operation: restore
# Puts back what an apply wrote, from the backup in that apply's own journal on this host (tls-runbook rollback).
#
# Arguments: {"apply_id": str, "values": [{"path": "HKLM\\...", "name": str}, ...]}   (what the caller asks for)
# Result: {"apply_id", "completed": bool,
#          "results": [{"path", "name", "status": "restored"|"deleted"|"unchanged"|"refused"|"failed"|"not_attempted",
#                       "before": {"type", "data"}|null, "after": {"type", "data"}|null, "error": str|null}, ...]}
# The backup comes from the journal in the protected journal folder, never from the caller, and only values the
# apply wrote are touched: the journal says "written", or the apply stopped before journaling it and the value
# holds exactly what was planned. A value asked for that this apply did not write is "unchanged"; one that is not
# in its backup at all is "refused". A value that existed gets its old kind and data back; a value the apply
# created is deleted. Keys stay as they are, including an empty one the apply created: rollback.reg does exactly
# the same, since a .reg file can delete a key only with everything under it. The first failure stops the run.

function Test-TrWrittenBy($Result, $Live) {
    if ([string]$Result.status -eq 'written') { return $true }
    return (Test-TrSameValue $Live $Result.planned) -and -not (Test-TrSameValue $Live $Result.before)
}

try {
    $A = Get-TrArgs
    $applyId = [string]$A.apply_id
    $file = Get-TrJournalFile $applyId
    $found = $null
    if ($null -ne (Use-TrJournalFolder)) { $found = Read-TrJournal $file }
    if ($null -eq $found -or $found.doc.ContainsKey('claimed')) { throw ('no journal of apply ' + $applyId + ' on this host: nothing of it to restore') }
    $journal = $found.doc
    $journalBackup = @($journal.backup)
    $journalResults = @($journal.results)
    $base = Get-TrBaseKey
    $results = New-Object System.Collections.ArrayList
    foreach ($value in @($A.values)) {
        [void]$results.Add(@{ path = [string]$value.path; name = [string]$value.name; status = 'not_attempted'; before = $null; after = $null; error = $null })
    }
    $failed = $false
    foreach ($r in $results) {
        try {
            $index = -1
            for ($j = 0; $j -lt $journalBackup.Length; $j++) {
                if (([string]$journalBackup[$j].path -eq $r.path) -and ([string]$journalBackup[$j].name -eq $r.name)) { $index = $j; break }
            }
            $r.before = Read-TrValue $base $r.path $r.name
            if ($null -ne $r.before -and $null -eq $r.before.type) { throw ('the value now cannot be compared (' + $r.before.problem + ')') }
            if ($index -lt 0) {
                $r.status = 'refused'
                $r.error = 'not in the backup of apply ' + $applyId + ' on this host'
            } elseif (-not (Test-TrWrittenBy $journalResults[$index] $r.before)) {
                $r.status = 'unchanged'
            } elseif ($journalBackup[$index].existed) {
                $desired = @{ type = [string]$journalBackup[$index].type; data = $journalBackup[$index].data }
                if (Test-TrSameValue $r.before $desired) {
                    $r.status = 'unchanged'
                } else {
                    $key = $base.CreateSubKey((Get-TrSubKeyPath $r.path))
                    try { Set-TrValue $key $r.name $desired.type $desired.data } finally { $key.Close() }
                    $r.status = 'restored'
                }
            } elseif ($null -eq $r.before) {
                $r.status = 'unchanged'
            } else {
                $key = $base.OpenSubKey((Get-TrSubKeyPath $r.path), $true)
                try { $key.DeleteValue($r.name) } finally { $key.Close() }
                $r.status = 'deleted'
            }
            $r.after = Read-TrValue $base $r.path $r.name
        } catch {
            $r.status = 'failed'
            $r.error = Get-TrErrorText $_
            $failed = $true
        }
        if ($failed) { break }
    }
    Write-TrResult 'restore' @{ apply_id = $applyId; completed = (-not $failed); results = $results }
} catch {
    Write-TrError 'restore' $_
}
