# tls-runbook-operation: probe
# Shows what this host negotiates with each endpoint and what Entra answers a Windows PowerShell. Read-only.
#
# Arguments: {"endpoints": ["name:port", ...], "timeout_ms": int (optional, 5000)}
# Result: {"probes": [probe, ...]}, four entries per endpoint, in the order tcp, default, tls12, app:
#   tcp     - TCP reachability alone;
#   default - SslStream.AuthenticateAsClient(host): what a .NET Framework app negotiates with no code changes;
#   tls12   - AuthenticateAsClient(host, $null, [SslProtocols]3072, $false): whether the OS can do TLS 1.2 at all;
#   app     - the token request Connect-AzureAD starts with, from this fresh process (Invoke-TrEntraRequest).
# A TLS probe is {"endpoint", "mode", "ok": the handshake completed, "connected": TCP connected, "protocol":
# "Tls12"|"Tls, Tls12"|..., "cipher": CipherAlgorithm name, "hash", "key_exchange": ALG_ID numbers,
# "certificate_errors": [SslPolicyErrors names], "certificate_chain": [X509ChainStatusFlags names], "error"}; the
# certificate fields are present once a certificate was seen. An app probe is {"endpoint", "mode": "app", "ok": an
# HTTP answer came back, "protocol": null, "cipher": null, "url", "security_protocol", "web_status", "http_status",
# "aadsts", "aadsts_text", "error"}. error is the innermost exception's own message, or null.

try {
    $A = Get-TrArgs
    $timeout = Get-TrTimeout $A
    $probes = New-Object System.Collections.ArrayList
    foreach ($endpoint in @($A.endpoints)) {
        foreach ($mode in @('tcp', 'default', 'tls12')) { [void]$probes.Add((Invoke-TrProbe ([string]$endpoint) $mode $timeout)) }
        [void]$probes.Add((Invoke-TrEntraRequest ([string]$endpoint) $timeout))
    }
    Write-TrResult 'probe' @{ probes = $probes }
} catch {
    Write-TrError 'probe' $_
}
