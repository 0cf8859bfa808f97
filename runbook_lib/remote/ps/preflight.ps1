# tls-runbook-operation: preflight
# What a run needs to know before it starts that inspect and probe do not tell: which Windows this is (a fleet run
# picks one canary host per caption), whether apply could use the journal folder, and the WinRM service's shell
# quotas a run must fit in (tls-runbook check). Read-only: nothing is created, changed or started.
#
# Arguments: {}
# Result: {"os": host-facts v1 "os" (Get-TrOsFacts) | null when WMI cannot be read (a warning says why),
#          "journal_folder": {"path": str, "exists": bool, "owner": "ACCOUNT (SID)"|null, "problem": str|null},
#          "winrm": {"available": bool, "reason": str|null, "max_shells_per_user": int|null,
#                    "max_processes_per_shell": int|null, "max_memory_per_shell_mb": int|null,
#                    "shell_idle_timeout_s": number|null, "max_envelope_kb": int|null, "policy": [field name, ...]}}
# journal_folder: %ProgramData%\tls-runbook as Use-TrJournalFolder (common.ps1) would judge it; "problem" is the
# text apply would fail with (a folder someone besides SYSTEM and Administrators owns or may change), null when
# apply may use it or create it. winrm: WSMan:\localhost\Shell (MaxShellsPerUser, MaxProcessesPerShell,
# MaxMemoryPerShellMB, IdleTimeout in ms) and WSMan:\localhost\MaxEnvelopeSizekb, read through the WSMan provider;
# 0 means no limit. "policy" names the quotas Group Policy sets (SourceOfValue GPO: a local change does not last).
# When the provider cannot be read, "available" is false with the reason and every quota is null.

function Get-TrJournalFolderState {
    $dir = Get-TrJournalFolder
    $r = @{ path = $dir; exists = $false; owner = $null; problem = $null }
    if (-not [IO.Directory]::Exists($dir)) { return $r }
    $r.exists = $true
    try {
        $r.owner = Get-TrAccountText ((Get-TrDirectorySecurity $dir).GetOwner([System.Security.Principal.SecurityIdentifier]))
        $r.problem = Test-TrJournalFolder $dir
    } catch {
        $r.problem = 'journal folder ' + $dir + ' cannot be checked: ' + (Get-TrErrorText $_)
    }
    return $r
}

# (result field, path under WSMan:\localhost, divisor: IdleTimeout is in milliseconds)
$TrQuotaItems = @(
    @('max_shells_per_user', 'Shell\MaxShellsPerUser', 1),
    @('max_processes_per_shell', 'Shell\MaxProcessesPerShell', 1),
    @('max_memory_per_shell_mb', 'Shell\MaxMemoryPerShellMB', 1),
    @('shell_idle_timeout_s', 'Shell\IdleTimeout', 1000),
    @('max_envelope_kb', 'MaxEnvelopeSizekb', 1)
)

function Get-TrWinrmQuotas {
    $r = @{ available = $false; reason = $null; policy = (New-Object System.Collections.ArrayList) }
    foreach ($q in $TrQuotaItems) { $r[$q[0]] = $null }
    try {
        # Windows PowerShell 2.0 loads the WSMan provider as a snap-in; 3.0 and later load it with its module.
        if ($null -eq (Get-PSDrive -Name WSMan -ErrorAction SilentlyContinue)) { Import-Module Microsoft.WSMan.Management }
        $read = @{}
        foreach ($q in $TrQuotaItems) {
            $item = Get-Item -Path ('WSMan:\localhost\' + $q[1])
            $number = [decimal]::Parse([string]$item.Value, [Globalization.CultureInfo]::InvariantCulture)
            if ($q[2] -eq 1) { $read[$q[0]] = [int64]$number } else { $read[$q[0]] = [double]($number / $q[2]) }
            if ([string]$item.SourceOfValue -eq 'GPO') { [void]$r.policy.Add($q[0]) }
        }
        foreach ($k in $read.Keys) { $r[$k] = $read[$k] }
        $r.available = $true
    } catch {
        $r.policy.Clear()
        $r.reason = 'WSMan:\localhost could not be read: ' + (Get-TrErrorText $_)
    }
    return $r
}

try {
    $warnings = New-Object System.Collections.ArrayList
    $os = $null
    try {
        $os = Get-TrOsFacts
    } catch {
        [void]$warnings.Add('Win32_OperatingSystem could not be read: ' + (Get-TrErrorText $_))
    }
    Write-TrResult 'preflight' @{ os = $os; journal_folder = (Get-TrJournalFolderState); winrm = (Get-TrWinrmQuotas) } $warnings
} catch {
    Write-TrError 'preflight' $_
}
