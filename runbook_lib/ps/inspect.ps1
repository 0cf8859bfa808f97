# tls-runbook-operation: inspect
# Collects the host facts the decision engine needs. Read-only.
#
# Arguments: {"host": str, "values": [{"path": "HKLM\\...", "name": str}, ...],
#             "endpoints": ["name:port", ...] (optional: also run probes), "timeout_ms": int (optional, 5000)}
# Result (tls-runbook/host-facts/v1):
#   {"schema": "tls-runbook/host-facts/v1", "host": str, "simulated": false, "collected_at": "YYYY-MM-DDTHH:MM:SSZ",
#    "os": {"caption": str, "version": "6.1.7601", "service_pack": int,
#           "product_type": "workstation"|"server"|"domain_controller", "architecture": "x64"|"x86"|"arm64",
#           "last_boot": "YYYY-MM-DDTHH:MM:SSZ"},
#    "hotfixes": ["KB...", ...],
#    "powershell": {"windows_powershell": "5.1.14409.1005"|null, "pwsh": "7.4.1"|null},
#    "registry": [{"path", "name", "type": REG_DWORD|REG_QWORD|REG_SZ|REG_EXPAND_SZ|REG_MULTI_SZ|REG_BINARY,
#                  "data": int|str|[str]|hex str, "policy": bool}, ...],   (absent values are not listed)
#    "observed": {"security_protocol": {"x64": int, "x86": int}, "probes": [probe, ...]}}
# with the probes of probe.ps1 (tcp, default, tls12, app per endpoint), run in this process.
# plus envelope warnings (strings) for anything the facts schema has no field for.
# Registry values are read from the 64-bit view; on CLR 2 (PowerShell 2.0) from the process's view, with a warning.
# "policy" is true under HKLM\SOFTWARE\Policies or when a Group Policy Preferences registry item in the local GP
# history cache sets that value. security_protocol is read in fresh 64-bit and 32-bit Windows PowerShell
# processes; a bitness the host does not have is left out, one that could not be read is left out with a warning. pwsh is found
# through its MSI registration (PowerShellCore\InstalledVersions; numeric part only, so 7.5.0-rc.1 is 7.5.0);
# zip or Store installs are not seen.

function Get-TrOsFacts {
    $os = @(Get-TrWmiObjects 'Win32_OperatingSystem')[0]
    $productType = [int](Get-TrWmiValue $os 'ProductType')
    $kind = 'server'
    if ($productType -eq 1) { $kind = 'workstation' } elseif ($productType -eq 2) { $kind = 'domain_controller' }
    $arch = $null
    try {
        $cpu = @(Get-TrWmiObjects 'Win32_Processor')[0]
        $code = [int](Get-TrWmiValue $cpu 'Architecture')
        if ($code -eq 9) { $arch = 'x64' } elseif ($code -eq 0) { $arch = 'x86' } elseif ($code -eq 12) { $arch = 'arm64' }
    } catch {
        $arch = $null
    }
    if ($null -eq $arch) {
        $envArch = $env:PROCESSOR_ARCHITEW6432
        if ([string]::IsNullOrEmpty($envArch)) { $envArch = $env:PROCESSOR_ARCHITECTURE }
        if ($envArch -eq 'AMD64') { $arch = 'x64' } elseif ($envArch -eq 'ARM64') { $arch = 'arm64' } else { $arch = 'x86' }
    }
    return @{
        caption = ([string](Get-TrWmiValue $os 'Caption')).Trim()
        version = [string](Get-TrWmiValue $os 'Version')
        service_pack = [int](Get-TrWmiValue $os 'ServicePackMajorVersion')
        product_type = $kind
        architecture = $arch
        last_boot = (ConvertFrom-TrWmiDate (Get-TrWmiValue $os 'LastBootUpTime'))
    }
}

function Get-TrHotfixes {
    $ids = New-Object System.Collections.ArrayList
    foreach ($qfe in (Get-TrWmiObjects 'Win32_QuickFixEngineering')) {
        $id = ([string](Get-TrWmiValue $qfe 'HotFixID')).Trim().ToUpperInvariant()
        if ($id -match '^KB[0-9]{4,8}$' -and -not $ids.Contains($id)) { [void]$ids.Add($id) }
    }
    $ids.Sort([StringComparer]::Ordinal)
    return , $ids.ToArray()
}

function Get-TrPowerShellVersions($BaseKey) {
    $wps = $null
    foreach ($engine in @('HKLM\SOFTWARE\Microsoft\PowerShell\3\PowerShellEngine', 'HKLM\SOFTWARE\Microsoft\PowerShell\1\PowerShellEngine')) {
        $v = Read-TrValue $BaseKey $engine 'PowerShellVersion'
        if ($null -ne $v -and $v.type -eq 'REG_SZ' -and $v.data) { $wps = $v.data; break }
    }
    $pwsh = $null
    $best = $null
    $installed = $BaseKey.OpenSubKey('SOFTWARE\Microsoft\PowerShellCore\InstalledVersions', $false)
    if ($null -ne $installed) {
        try {
            foreach ($sub in $installed.GetSubKeyNames()) {
                $v = Read-TrValue $BaseKey ('HKLM\SOFTWARE\Microsoft\PowerShellCore\InstalledVersions\' + $sub) 'SemanticVersion'
                if ($null -eq $v -or $v.type -ne 'REG_SZ') { continue }
                $numeric = [regex]::Match([string]$v.data, '^[0-9]+(\.[0-9]+){1,3}')
                if (-not $numeric.Success) { continue }
                $candidate = New-Object Version -ArgumentList $numeric.Value
                if ($null -eq $best -or $candidate -gt $best) { $best = $candidate; $pwsh = $numeric.Value }
            }
        } finally {
            $installed.Close()
        }
    }
    return @{ windows_powershell = $wps; pwsh = $pwsh }
}

# GPP registry items cached by the Group Policy client: "HKLM\<key>|<name>" (upper case) for every item that
# creates, replaces or updates a machine value.
function Get-TrGppValueSet {
    $set = @{}
    $root = Join-Path $env:ALLUSERSPROFILE 'Microsoft\Group Policy\History'
    if (-not (Test-Path -LiteralPath $root)) { return $set }
    foreach ($file in @(Get-ChildItem -Path $root -Recurse -Force -Filter 'Registry.xml' -ErrorAction SilentlyContinue)) {
        try {
            $xml = New-Object System.Xml.XmlDocument
            $xml.Load($file.FullName)
            foreach ($p in $xml.SelectNodes('//Registry/Properties')) {
                $hive = [string]$p.GetAttribute('hive')
                $action = [string]$p.GetAttribute('action')
                if ($hive -ne 'HKEY_LOCAL_MACHINE' -or -not ('C', 'R', 'U' -contains $action)) { continue }
                $name = [string]$p.GetAttribute('name')
                if ($p.GetAttribute('default') -eq '1') { $name = '' }
                $key = ([string]$p.GetAttribute('key')).Trim('\')
                $set[('HKLM\' + $key + '|' + $name).ToUpperInvariant()] = $true
            }
        } catch {
            $set['?UNREADABLE'] = $true
        }
    }
    return $set
}

function Test-TrPolicyPath([string]$Path) {
    $p = $Path.ToUpperInvariant()
    return ($p.StartsWith('HKLM\SOFTWARE\POLICIES\') -or $p.StartsWith('HKLM\SOFTWARE\WOW6432NODE\POLICIES\'))
}

function Get-TrSecurityProtocol([string]$Exe) {
    if ([string]::IsNullOrEmpty($Exe) -or -not (Test-Path -LiteralPath $Exe)) { return $null }
    $ErrorActionPreference = 'Continue'
    try {
        $lines = @(& $Exe -NoProfile -NonInteractive -Command '[int][Net.ServicePointManager]::SecurityProtocol' 2>$null)
    } catch {
        return $null  # it did not start (e.g. the shell's process quota): reported as "could not be read"
    }
    $value = $null
    foreach ($line in $lines) {
        [int]$n = 0
        if ([int]::TryParse(([string]$line).Trim(), [ref]$n)) { $value = $n }
    }
    return $value
}

try {
    $A = Get-TrArgs
    $warnings = New-Object System.Collections.ArrayList
    $base = Get-TrBaseKey
    $view = Get-TrRegistryView
    if ($view -ne 'registry64') { [void]$warnings.Add('registry read through the process view (' + $view + '): .NET 4 is not loaded in this PowerShell') }

    $gpp = Get-TrGppValueSet
    if ($gpp.ContainsKey('?UNREADABLE')) { [void]$warnings.Add('a Group Policy Preferences Registry.xml could not be read; policy flags may be incomplete') }

    $registry = New-Object System.Collections.ArrayList
    foreach ($item in @($A['values'])) {
        # One value that cannot be read (no access, data of the wrong size) is a warning, not a failed inspect.
        try {
            $v = Read-TrValue $base ([string]$item.path) ([string]$item.name)
        } catch {
            [void]$warnings.Add('could not read ' + $item.path + '\' + $item.name + ': ' + (Get-TrErrorText $_))
            continue
        }
        if ($null -eq $v) { continue }
        if ($null -eq $v.type) {
            [void]$warnings.Add('left out ' + $item.path + '\' + $item.name + ': ' + $v.problem)
            continue
        }
        $policy = (Test-TrPolicyPath $item.path) -or $gpp.ContainsKey(([string]$item.path + '|' + [string]$item.name).ToUpperInvariant())
        [void]$registry.Add(@{ path = [string]$item.path; name = [string]$item.name; type = $v.type; data = $v.data; policy = [bool]$policy })
    }

    $windir = $env:SystemRoot
    $rel = 'WindowsPowerShell\v1.0\powershell.exe'
    $exe64 = $null
    $exe86 = Join-Path $windir ('System32\' + $rel)
    if ([IntPtr]::Size -eq 8) {
        $exe64 = Join-Path $windir ('System32\' + $rel)
        $exe86 = Join-Path $windir ('SysWOW64\' + $rel)
    } elseif (-not [string]::IsNullOrEmpty($env:PROCESSOR_ARCHITEW6432)) {
        $exe64 = Join-Path $windir ('Sysnative\' + $rel)
        $exe86 = Join-Path $windir ('System32\' + $rel)
    }
    $sp64 = Get-TrSecurityProtocol $exe64
    $sp86 = Get-TrSecurityProtocol $exe86
    if ($null -ne $exe64 -and $null -eq $sp64) { [void]$warnings.Add('SecurityProtocol could not be read from 64-bit Windows PowerShell') }
    if ($null -eq $sp86) { [void]$warnings.Add('SecurityProtocol could not be read from 32-bit Windows PowerShell') }
    $securityProtocol = @{}
    if ($null -ne $sp64) { $securityProtocol.x64 = $sp64 }
    if ($null -ne $sp86) { $securityProtocol.x86 = $sp86 }

    $probes = New-Object System.Collections.ArrayList
    if ($A.ContainsKey('endpoints')) {
        $timeout = Get-TrTimeout $A
        foreach ($endpoint in @($A.endpoints)) {
            foreach ($mode in @('tcp', 'default', 'tls12')) { [void]$probes.Add((Invoke-TrProbe ([string]$endpoint) $mode $timeout)) }
            [void]$probes.Add((Invoke-TrEntraRequest ([string]$endpoint) $timeout))
        }
    }

    $facts = @{
        schema = 'tls-runbook/host-facts/v1'
        host = [string]$A.host
        simulated = $false
        collected_at = [DateTime]::UtcNow.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", [Globalization.CultureInfo]::InvariantCulture)
        os = (Get-TrOsFacts)
        hotfixes = (Get-TrHotfixes)
        powershell = (Get-TrPowerShellVersions $base)
        registry = $registry
        observed = @{ security_protocol = $securityProtocol; probes = $probes }
    }
    Write-TrResult 'inspect' $facts $warnings
} catch {
    Write-TrError 'inspect' $_
}
