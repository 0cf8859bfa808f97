# tls-runbook-operation: restore
# Puts back what an apply replaced, from the backup that apply recorded before writing (tls-runbook rollback).
#
# Arguments: {"apply_id": str, "backup": [{"path", "name", "existed": bool, "type": str|null, "data": ...|null,
#                                          "key_existed": bool}, ...]}
# Result: {"apply_id", "completed": bool, "keys_removed": [path, ...],
#          "results": [{"path", "name", "status": "restored"|"deleted"|"unchanged"|"failed"|"not_attempted",
#                       "before": {"type", "data"}|null, "after": {"type", "data"}|null, "error": str|null}, ...]}
# A value that existed gets its old kind and data back; a value the apply created is deleted; a key is removed
# only when the apply created it and it is empty again. The first failure stops the run.

try {
    $A = Get-TrArgs
    $entries = @($A.backup)
    $base = Get-TrBaseKey
    $results = New-Object System.Collections.ArrayList
    $removed = New-Object System.Collections.ArrayList
    foreach ($entry in $entries) {
        [void]$results.Add(@{ path = [string]$entry.path; name = [string]$entry.name; status = 'not_attempted'; before = $null; after = $null; error = $null })
    }
    $failed = $false
    for ($i = 0; $i -lt $entries.Length; $i++) {
        $entry = $entries[$i]
        $r = $results[$i]
        try {
            $r.before = Read-TrValue $base $r.path $r.name
            if ($entry.existed) {
                $desired = @{ type = [string]$entry.type; data = $entry.data }
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
    if (-not $failed) {
        foreach ($entry in $entries) {
            $path = [string]$entry.path
            if ($entry.key_existed -or $removed -contains $path) { continue }
            $sub = Get-TrSubKeyPath $path
            $key = $base.OpenSubKey($sub, $false)
            if ($null -eq $key) { continue }
            $empty = ($key.ValueCount -eq 0) -and ($key.SubKeyCount -eq 0)
            $key.Close()
            if ($empty) {
                $base.DeleteSubKey($sub, $false)
                [void]$removed.Add($path)
            }
        }
    }
    Write-TrResult 'restore' @{ apply_id = [string]$A.apply_id; completed = (-not $failed); keys_removed = $removed; results = $results }
} catch {
    Write-TrError 'restore' $_
}
