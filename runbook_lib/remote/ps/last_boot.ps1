# tls-runbook-operation: last_boot
# Tells when Windows last started, so a caller waiting for a restart can prove it happened. Read-only.
#
# Arguments: {}
# Result: {"last_boot": "YYYY-MM-DDTHH:MM:SSZ"}   (Win32_OperatingSystem.LastBootUpTime in UTC)

try {
    Write-TrResult 'last_boot' @{ last_boot = (Get-TrLastBoot) }
} catch {
    Write-TrError 'last_boot' $_
}
