# tls-runbook-operation: reboot
# Schedules a restart so SCHANNEL and WinHTTP changes take effect.
#
# Arguments: {"delay_s": int (5..3600)}
# Result: {"scheduled": true}
# shutdown.exe /r /t <delay_s> /d p:2:4 (Operating System: Reconfiguration, planned) runs first and the result is
# written only when it accepted the request; the delay leaves the WinRM reply time to reach the caller before the
# host goes down. A refusal (for example a shutdown already pending) is reported as an error.

try {
    $A = Get-TrArgs
    $delay = [int]$A.delay_s
    if ($delay -lt 5 -or $delay -gt 3600) { throw 'delay_s must be between 5 and 3600' }
    $shutdown = Join-Path $env:SystemRoot 'System32\shutdown.exe'
    $ErrorActionPreference = 'Continue'
    $said = @(& $shutdown /r /t $delay /d p:2:4 /c 'tls-runbook: TLS configuration change' 2>&1)
    $code = $LASTEXITCODE
    $ErrorActionPreference = 'Stop'
    if ($code -ne 0) { throw ('shutdown.exe refused the restart (exit code ' + $code + '): ' + [string]::Join(' ', [string[]]$said)) }
    Write-TrResult 'reboot' @{ scheduled = $true }
} catch {
    Write-TrError 'reboot' $_
}
