# tls-runbook-operation: apply
# Writes registry values, journaling every step so an operator can tell what happened if the connection drops.
#
# Arguments: {"apply_id": "[A-Za-z0-9][A-Za-z0-9._-]{0,63}",
#             "changes": [{"path": "HKLM\\...", "name": str, "type": REG_DWORD|REG_QWORD|REG_SZ|REG_EXPAND_SZ|
#                          REG_MULTI_SZ|REG_BINARY, "data": int|str|[str]|hex str}, ...]}
# Result (also the journal %ProgramData%\tls-runbook\<apply_id>.json, replaced atomically after every value):
#   {"apply_id": str, "revision": int, "pid": int, "process_started": "YYYY-MM-DDTHH:MM:SS.fffffffZ",
#    "completed": bool, "journal_error": str|null,
#    "backup": [{"path", "name", "existed": bool, "type": str|null, "data": ...|null, "key_existed": bool}, ...],
#    "results": [{"path", "name", "status": "written"|"unchanged"|"failed"|"not_attempted",
#                 "planned": {"type", "data"}, "before": {"type", "data"}|null, "after": {"type", "data"}|null,
#                 "error": str|null}, ...]}
# Order: the journal folder is created protected, or refused when someone else could have planted it (common.ps1);
# the backup (every target's current value or absence, and whether its key existed) is on disk before any value
# is written; then each value is written, read back and journaled; the first failure stops the run ("completed"
# stays false, the rest stay "not_attempted"). A value that already has the same type and data is "unchanged" and
# not rewritten. Nothing is ever deleted.
# Each save writes <apply_id>.json.tmp through to disk and then replaces the journal with it ([IO.File]::Replace),
# so the journal is always whole; "revision" counts saves, so a reader knows which copy is newer. "pid" and
# "process_started" name this process, so a reader after a lost connection can tell whether it still runs. A save
# that fails three times is recorded in "journal_error" and stops the run after the value already written: the
# write stands, and every write stays recoverable from the journal. The first save creates the journal and fails
# when one exists, so a backup is never overwritten and an apply_id claimed by a journal read never writes.

function Save-TrJournal([string]$File, $Doc) {
    $Doc.revision = $Doc.revision + 1
    try {
        $tmp = $File + '.tmp'
        $bytes = [Text.Encoding]::ASCII.GetBytes((ConvertTo-TrJson $Doc))
        $fs = New-Object System.IO.FileStream -ArgumentList $tmp, ([System.IO.FileMode]::Create), ([System.IO.FileAccess]::Write), ([System.IO.FileShare]::None), 4096, ([System.IO.FileOptions]::WriteThrough)
        try { $fs.Write($bytes, 0, $bytes.Length) } finally { $fs.Close() }
        if ($Doc.revision -eq 1) { [IO.File]::Move($tmp, $File) } else { [IO.File]::Replace($tmp, $File, $null) }
    } catch {
        $Doc.revision = $Doc.revision - 1
        throw
    }
}

# $null when saved, otherwise why the last of three tries failed (a virus scanner may hold the file briefly).
function Save-TrJournalRetrying([string]$File, $Doc) {
    $why = $null
    for ($try = 1; $try -le 3; $try++) {
        try {
            Save-TrJournal $File $Doc
            return $null
        } catch {
            $why = 'journal not saved: ' + (Get-TrErrorText $_)
            Start-Sleep -Milliseconds 200
        }
    }
    return $why
}

try {
    $A = Get-TrArgs
    $applyId = [string]$A.apply_id
    $file = Get-TrJournalFile $applyId
    $changes = @($A.changes)
    [void](Use-TrJournalFolder -Create)
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
        if ($null -ne $before -and $null -eq $before.type) { throw ('existing value cannot be backed up (' + $before.problem + '), refusing to overwrite: ' + $path + '\' + $name) }
        $entry = @{ path = $path; name = $name; existed = ($null -ne $before); type = $null; data = $null; key_existed = $keyExisted }
        if ($null -ne $before) { $entry.type = $before.type; $entry.data = $before.data }
        [void]$backup.Add($entry)
        $planned = @{ type = [string]$c.type; data = $c.data }
        if ($planned.type -eq 'REG_BINARY') { $planned.data = ([string]$c.data).ToLowerInvariant() }
        [void]$results.Add(@{ path = $path; name = $name; status = 'not_attempted'; planned = $planned; before = $before; after = $null; error = $null })
    }
    $me = [Diagnostics.Process]::GetCurrentProcess()
    $doc = @{ apply_id = $applyId; revision = 0; pid = $me.Id; process_started = (Get-TrProcessStart $me); completed = $false; journal_error = $null; backup = $backup; results = $results }
    try {
        Save-TrJournal $file $doc
    } catch {
        if ([IO.File]::Exists($file)) { throw ('apply_id ' + $applyId + ' was already used or claimed on this host: nothing was written') }
        throw
    }
    $failed = $false
    for ($i = 0; $i -lt $changes.Length; $i++) {
        $r = $results[$i]
        try {
            if (Test-TrSameValue $r.before $r.planned) {
                $r.status = 'unchanged'
                $r.after = $r.before
            } else {
                $key = $base.CreateSubKey((Get-TrSubKeyPath $r.path))
                try { Set-TrValue $key $r.name $r.planned.type $r.planned.data } finally { $key.Close() }
                $r.after = Read-TrValue $base $r.path $r.name
                if (-not (Test-TrSameValue $r.after $r.planned)) { throw 'value read back differs from the value written' }
                $r.status = 'written'
            }
        } catch {
            $r.status = 'failed'
            $r.error = Get-TrErrorText $_
            $failed = $true
        }
        $doc.journal_error = Save-TrJournalRetrying $file $doc
        if ($failed -or $null -ne $doc.journal_error) { break }
    }
    $doc.completed = -not $failed -and $null -eq $doc.journal_error
    if ($doc.completed) { $doc.journal_error = Save-TrJournalRetrying $file $doc }
    Write-TrResult 'apply' $doc
} catch {
    Write-TrError 'apply' $_
}
