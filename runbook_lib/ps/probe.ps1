# tls-runbook-operation: probe
# Shows which protocol and cipher this host actually negotiates with each endpoint. Read-only.
#
# Arguments: {"endpoints": ["name:port", ...], "timeout_ms": int (optional, 5000)}
# Result: {"probes": [{"endpoint": str, "mode": "tcp"|"default"|"tls12", "ok": bool,
#                      "protocol": "Tls12"|...|null, "cipher": "Aes256"|"TripleDes"|...|null, "error": str|null}, ...]}
# Three entries per endpoint, in the order tcp, default, tls12:
#   tcp     - TCP reachability alone (protocol and cipher null);
#   default - SslStream.AuthenticateAsClient(host): what a .NET Framework app negotiates with no code changes;
#   tls12   - AuthenticateAsClient(host, $null, [SslProtocols]3072, $false): whether the OS can do TLS 1.2 at all.
# protocol is SslStream.SslProtocol, cipher is SslStream.CipherAlgorithm, error the exception's own message.

try {
    $A = Get-TrArgs
    $timeout = Get-TrTimeout $A
    $probes = New-Object System.Collections.ArrayList
    foreach ($endpoint in @($A.endpoints)) {
        foreach ($mode in @('tcp', 'default', 'tls12')) { [void]$probes.Add((Invoke-TrProbe ([string]$endpoint) $mode $timeout)) }
    }
    Write-TrResult 'probe' @{ probes = $probes }
} catch {
    Write-TrError 'probe' $_
}
