# tls-runbook-operation: apply
# Writes registry values, journaling every step so an operator can tell what happened if the connection drops.
#
# Arguments: {"apply_id": "[A-Za-z0-9][A-Za-z0-9._-]{0,63}",
#             "changes": [{"path": "HKLM\\...", "name": str, "type": REG_DWORD|REG_QWORD|REG_SZ|REG_EXPAND_SZ|
#                          REG_MULTI_SZ|REG_BINARY, "data": int|str|[str]|hex str}, ...]}
# Result (also the journal file %ProgramData%\tls-runbook\<apply_id>.json, rewritten after every value):
#   {"apply_id": str, "completed": bool,
#    "backup": [{"path", "name", "existed": bool, "type": str|null, "data": ...|null, "key_existed": bool}, ...],
#    "results": [{"path", "name", "status": "written"|"unchanged"|"failed"|"not_attempted",
#                 "before": {"type", "data"}|null, "after": {"type", "data"}|null, "error": str|null}, ...]}
# Order: the backup (every target's current value or absence, and whether its key existed) is written before any
# value; then each value is written, read back and journaled; the first failure stops the run ("completed" stays
# false, the rest stay "not_attempted"). A value that already has the same type and data is "unchanged" and not
# rewritten. Nothing is ever deleted. An apply_id whose journal exists is refused, so a backup is never overwritten,
# and so is a target whose current kind cannot be represented in the backup.

function Save-TrJournal([string]$File, $Doc) {
    $tmp = $File + '.tmp'
    [IO.File]::WriteAllText($tmp, (ConvertTo-TrJson $Doc), [Text.Encoding]::ASCII)
    if ([IO.File]::Exists($File)) { [IO.File]::Delete($File) }
    [IO.File]::Move($tmp, $File)
}

try {
    $A = Get-TrArgs
    $applyId = [string]$A.apply_id
    if ($applyId -cnotmatch '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$') { throw 'apply_id is not a safe file name' }
    $changes = @($A.changes)
    $dir = Join-Path $env:ProgramData 'tls-runbook'
    if (-not [IO.Directory]::Exists($dir)) { [void][IO.Directory]::CreateDirectory($dir) }
    $file = Join-Path $dir ($applyId + '.json')
    if ([IO.File]::Exists($file) -or [IO.File]::Exists($file + '.tmp')) { throw ('apply_id ' + $applyId + ' was already used on this host: read its journal') }

    $base = Get-TrBaseKey
    $backup = New-Object System.Collections.ArrayList
    $results = New-Object System.Collections.ArrayList
    foreach ($c in $changes) {
        $path = [string]$c.path
        $name = [string]$c.name
        $key = $base.OpenSubKey((Get-TrSubKeyPath $path), $false)
        $keyExisted = $null -ne $key
        if ($keyExisted) { $key.Close() }
        $before = Read-TrValue $base $path $name
        if ($null -ne $before -and $null -eq $before.type) { throw ('existing value has an unsupported kind, refusing to overwrite: ' + $path + '\' + $name) }
        $entry = @{ path = $path; name = $name; existed = ($null -ne $before); type = $null; data = $null; key_existed = $keyExisted }
        if ($null -ne $before) { $entry.type = $before.type; $entry.data = $before.data }
        [void]$backup.Add($entry)
        [void]$results.Add(@{ path = $path; name = $name; status = 'not_attempted'; before = $before; after = $null; error = $null })
    }
    $doc = @{ apply_id = $applyId; completed = $false; backup = $backup; results = $results }

    # The backup goes to disk before anything is written; CreateNew fails rather than overwrite another run's file.
    $json = [Text.Encoding]::ASCII.GetBytes((ConvertTo-TrJson $doc))
    $fs = New-Object System.IO.FileStream -ArgumentList $file, ([System.IO.FileMode]::CreateNew), ([System.IO.FileAccess]::Write)
    try { $fs.Write($json, 0, $json.Length) } finally { $fs.Close() }

    $failed = $false
    for ($i = 0; $i -lt $changes.Length; $i++) {
        $c = $changes[$i]
        $r = $results[$i]
        $desired = @{ type = [string]$c.type; data = $c.data }
        if ($desired.type -eq 'REG_BINARY') { $desired.data = ([string]$c.data).ToLowerInvariant() }
        try {
            if (Test-TrSameValue $r.before $desired) {
                $r.status = 'unchanged'
                $r.after = $r.before
            } else {
                $key = $base.CreateSubKey((Get-TrSubKeyPath $r.path))
                try { Set-TrValue $key $r.name $desired.type $desired.data } finally { $key.Close() }
                $r.after = Read-TrValue $base $r.path $r.name
                if (-not (Test-TrSameValue $r.after $desired)) { throw 'value read back differs from the value written' }
                $r.status = 'written'
            }
        } catch {
            $r.status = 'failed'
            $r.error = Get-TrErrorText $_
            $failed = $true
        }
        Save-TrJournal $file $doc
        if ($failed) { break }
    }
    $doc.completed = -not $failed
    Save-TrJournal $file $doc
    Write-TrResult 'apply' $doc
} catch {
    Write-TrError 'apply' $_
}
