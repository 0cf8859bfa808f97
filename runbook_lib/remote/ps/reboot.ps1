# tls-runbook-operation: reboot
# Schedules a restart so SCHANNEL and WinHTTP changes take effect.
#
# Arguments: {"delay_s": int (5..3600)}
# Result: {"scheduled": bool, "already_scheduled": bool, "last_boot": "YYYY-MM-DDTHH:MM:SSZ"}
# shutdown.exe /r /t <delay_s> /d p:2:4 (Operating System: Reconfiguration, planned); the delay leaves the WinRM
# reply time to reach the caller before the host goes down. "last_boot" is the boot time before the restart: the
# caller knows the restart happened when the host reports a different one. When a shutdown is already scheduled
# (shutdown.exe exit 1190), nothing is scheduled ("scheduled" false, "already_scheduled" true): that one may be a
# power-off, and it is not the runbook's. Any other refusal is an error.

try {
    $A = Get-TrArgs
    $delay = [int]$A.delay_s
    if ($delay -lt 5 -or $delay -gt 3600) { throw 'delay_s must be between 5 and 3600' }
    $lastBoot = Get-TrLastBoot
    $shutdown = Join-Path $env:SystemRoot 'System32\shutdown.exe'
    $ErrorActionPreference = 'Continue'
    $said = @(& $shutdown /r /t $delay /d p:2:4 /c 'tls-runbook: TLS configuration change' 2>&1)
    $code = $LASTEXITCODE
    $ErrorActionPreference = 'Stop'
    if ($code -ne 0 -and $code -ne 1190) { throw ('shutdown.exe refused the restart (exit code ' + $code + '): ' + [string]::Join(' ', [string[]]$said)) }
    Write-TrResult 'reboot' @{ scheduled = ($code -eq 0); already_scheduled = ($code -eq 1190); last_boot = $lastBoot }
} catch {
    Write-TrError 'reboot' $_
}
