# tls-runbook-operation: session_fix
# Demonstrates the per-process workaround and proves it in the same process. Changes nothing on the host.
#
# Arguments: {"mode": "bor"|"pin", "endpoints": ["name:port", ...], "timeout_ms": int (optional, 5000)}
# Result: {"before": int, "after": int, "mode": "bor"|"pin", "error": str|null, "probes": [probe, ...]}
# with two probes per endpoint (see probe.ps1 for their fields): "session" and "app", both in this process.
# before/after are [int][Net.ServicePointManager]::SecurityProtocol in this process.
#   bor - before -bor 3072 (Microsoft's PowerShell Gallery guidance; 0 -bor 3072 pins TLS 1.2 and drops the
#         OS choice, TLS 1.3 included);
#   pin - exactly 3072 (the form in Microsoft's AADSTS1002016 article).
# The session probe then authenticates with the protocols now in SecurityProtocol, and the app probe makes the
# token request Connect-AzureAD would make from this session. If the runtime refuses the assignment (.NET 3.5
# without the TLS 1.2 update), error says so and after equals before.

try {
    $A = Get-TrArgs
    $mode = [string]$A.mode
    $before = [int][Net.ServicePointManager]::SecurityProtocol
    $target = 3072
    if ($mode -eq 'bor') { $target = $before -bor 3072 }
    $fixError = $null
    try {
        # Enum.ToObject, not a cast: see Get-TrSslProtocols (.NET 3.5 has no Tls12 name even when patched).
        [Net.ServicePointManager]::SecurityProtocol = [Enum]::ToObject([Net.SecurityProtocolType], $target)
    } catch {
        $fixError = Get-TrErrorText $_
    }
    $after = [int][Net.ServicePointManager]::SecurityProtocol
    $timeout = Get-TrTimeout $A
    $probes = New-Object System.Collections.ArrayList
    foreach ($endpoint in @($A.endpoints)) {
        [void]$probes.Add((Invoke-TrProbe ([string]$endpoint) 'session' $timeout))
        [void]$probes.Add((Invoke-TrEntraRequest ([string]$endpoint) $timeout))
    }
    Write-TrResult 'session_fix' @{ before = $before; after = $after; mode = $mode; error = $fixError; probes = $probes }
} catch {
    Write-TrError 'session_fix' $_
}
