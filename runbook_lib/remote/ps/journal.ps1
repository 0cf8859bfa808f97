# tls-runbook-operation: journal
# Tells what an apply run did on this host, for when the connection dropped while it ran.
#
# Arguments: {"apply_id": "[A-Za-z0-9][A-Za-z0-9._-]{0,63}", "claim_if_absent": bool (optional, false)}
# Result: {"apply_id": str, "state": "absent"|"claimed"|"present",
#          "journal": the journal document as apply saved it (see apply.ps1) | null,
#          "apply_running": bool|null,
#          "current": [{"path", "name", "value": {"type", "data"}|null}, ...]}
# "present": the journal is the newest copy that parses (Read-TrJournal), "apply_running" says whether the process
# it names still runs (null: cannot tell), and "current" is the live value of every value in its backup, which
# shows a write the process made but could not journal before it ended. "absent": no journal, so no value was
# written (apply saves its backup before the first write). With claim_if_absent, an absent journal is replaced by
# a claim file and the state is "claimed": apply refuses that apply_id from then on, so an apply that had not
# started yet never will. A journal folder someone else could have planted is refused (common.ps1).

try {
    $A = Get-TrArgs
    $applyId = [string]$A.apply_id
    $file = Get-TrJournalFile $applyId
    $claim = $A.ContainsKey('claim_if_absent') -and [bool]$A.claim_if_absent
    $dir = Use-TrJournalFolder -Create:$claim
    $found = $null
    if ($null -ne $dir) { $found = Read-TrJournal $file }
    if ($null -eq $found -and $claim) {
        $marker = [Text.Encoding]::ASCII.GetBytes((ConvertTo-TrJson @{ apply_id = $applyId; claimed = $true; revision = 0 }))
        try {
            $fs = New-Object System.IO.FileStream -ArgumentList $file, ([System.IO.FileMode]::CreateNew), ([System.IO.FileAccess]::Write)
            try { $fs.Write($marker, 0, $marker.Length) } finally { $fs.Close() }
        } catch {
            if (-not [IO.File]::Exists($file)) { throw }
        }
        $found = Read-TrJournal $file
        if ($null -eq $found) { throw ('the journal of ' + $applyId + ' exists but cannot be read') }
    }
    $result = @{ apply_id = $applyId; state = 'absent'; journal = $null; apply_running = $null; current = @() }
    if ($null -ne $found -and $found.doc.ContainsKey('claimed')) {
        $result.state = 'claimed'
    } elseif ($null -ne $found) {
        $result.state = 'present'
        $result.journal = $found.doc
        $result.apply_running = Test-TrApplyRunning $found.doc
        $base = Get-TrBaseKey
        $current = New-Object System.Collections.ArrayList
        foreach ($entry in @($found.doc.backup)) {
            $value = Read-TrValue $base ([string]$entry.path) ([string]$entry.name)
            if ($null -ne $value -and $null -eq $value.type) { $value = @{ type = $null; data = $null } }
            [void]$current.Add(@{ path = [string]$entry.path; name = [string]$entry.name; value = $value })
        }
        $result.current = $current
    }
    Write-TrResult 'journal' $result
} catch {
    Write-TrError 'journal' $_
}
