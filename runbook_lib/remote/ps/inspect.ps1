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
#    "observed": {"security_protocol": {"x64": int, "x86": int}, "probes": [probe, ...]},   (the probes of
#                 probe.ps1: tcp, default, tls12, app per endpoint, run in this process)
#    "group_policy": {"rsop": {"available": bool, "reason": str|null, "settings": [rsop setting, ...]},
#                     "preferences": {"available": bool, "reason": str|null, "items": [gpp item, ...]}}}
#   rsop setting: {"path", "name": str|null, "type": str|null, "data", "deleted": bool, "gpo_id": str,
#                  "gpo_name": str|null, "precedence": int}
#   gpp item: {"path", "name": str|null, "action": "C"|"R"|"U"|"D", "type": str|null, "data", "disabled": bool,
#              "targeting": "none"|"uncertain", "filters": [str], "run_once": bool, "gpo_id": str, "gpo_name": str|null}
# plus envelope warnings (strings) for anything the facts schema has no field for.
# Registry values are read from the 64-bit view; on CLR 2 (PowerShell 2.0) from the process's view, with a warning.
# group_policy lists only the policy entries that touch a requested value (name null: the whole key). RSoP comes
# from WMI root\rsop\computer (RSOP_RegistryPolicySetting, GPO names from RSOP_GPO); when RSoP logging is off or
# left no session there, "available" is false with the reason: not available is not "no policy". GPP items come
# from the Group Policy client's history cache (%ALLUSERSPROFILE%\Microsoft\Group Policy\History\{GPO}\Machine\
# Preferences\Registry\Registry.xml), read with no DTD and no resolver; item-level targeting is not evaluated
# ("uncertain"), "Apply once" (FilterRunOnce) is run_once. "policy" is true under HKLM\SOFTWARE\Policies, when the
# winning RSoP setting sets the value, or when an enabled GPP item without targeting replaces or updates it on
# every refresh. security_protocol is read in fresh 64-bit and 32-bit Windows PowerShell
# processes; a bitness the host does not have is left out, one that could not be read is left out with a warning. pwsh is found
# through its MSI registration (PowerShellCore\InstalledVersions; numeric part only, so 7.5.0-rc.1 is 7.5.0);
# zip or Store installs are not seen.

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

# ---------------------------------------------------------------- Group Policy
# $Wanted: @{ values = @{ "HKLM\KEY|NAME" = $true }; keys = @{ "HKLM\KEY" = $true } } in upper case.
# A $null name is the whole key and its subkeys.
function Test-TrPolicyCovers($Wanted, [string]$Path, $Name) {
    $p = $Path.ToUpperInvariant()
    if ($null -ne $Name) { return $Wanted.values.ContainsKey($p + '|' + ([string]$Name).ToUpperInvariant()) }
    foreach ($k in $Wanted.keys.Keys) { if ($k -eq $p -or $k.StartsWith($p + '\')) { return $true } }
    return $false
}

# Policy sources name machine keys relative to HKEY_LOCAL_MACHINE; a hive prefix, if one is there, is dropped.
function Get-TrPolicyKeyPath([string]$Key) {
    $k = $Key.Trim('\')
    foreach ($hive in @('HKEY_LOCAL_MACHINE\', 'HKLM\', 'MACHINE\')) {
        if ($k.ToUpperInvariant().StartsWith($hive)) { $k = $k.Substring($hive.Length); break }
    }
    return ('HKLM\' + $k)
}

function Get-TrHex([byte[]]$Bytes) {
    $sb = New-Object System.Text.StringBuilder
    foreach ($b in $Bytes) { [void]$sb.Append($b.ToString('x2')) }
    return $sb.ToString()
}

# RSoP logs the value bytes as the registry stores them; @{type; data} in the JSON form, or type $null.
function ConvertFrom-TrPolicyBytes([int]$ValueType, $Raw) {
    $none = @{ type = $null; data = $null }
    if ($null -eq $Raw) { return $none }
    $b = [byte[]]$Raw
    if ($ValueType -eq 4 -and $b.Length -eq 4) { return @{ type = 'REG_DWORD'; data = [int64][BitConverter]::ToUInt32($b, 0) } }
    if ($ValueType -eq 11 -and $b.Length -eq 8) { return @{ type = 'REG_QWORD'; data = [decimal][BitConverter]::ToUInt64($b, 0) } }
    if ($ValueType -eq 3) { return @{ type = 'REG_BINARY'; data = (Get-TrHex $b) } }
    if (($ValueType -eq 1 -or $ValueType -eq 2 -or $ValueType -eq 7) -and $b.Length % 2 -eq 0) {
        $text = [Text.Encoding]::Unicode.GetString($b)
        if ($ValueType -eq 7) {
            $list = New-Object System.Collections.ArrayList
            foreach ($part in $text.Split([char]0)) { [void]$list.Add($part) }
            while ($list.Count -gt 0 -and $list[$list.Count - 1] -eq '') { $list.RemoveAt($list.Count - 1) }
            return @{ type = 'REG_MULTI_SZ'; data = $list.ToArray() }
        }
        $kind = 'REG_SZ'
        if ($ValueType -eq 2) { $kind = 'REG_EXPAND_SZ' }
        return @{ type = $kind; data = $text.TrimEnd([char]0) }
    }
    return $none
}

function Get-TrRsopLoggingOff($BaseKey) {
    foreach ($spot in @(@('HKLM\SOFTWARE\Policies\Microsoft\Windows\System', 'RSoPLogging'),
                        @('HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Winlogon', 'RsopLogging'))) {
        $v = Read-TrValue $BaseKey $spot[0] $spot[1]
        if ($null -ne $v -and $v.type -eq 'REG_DWORD' -and $v.data -eq 0) { return ($spot[0] + '\' + $spot[1] + '=0') }
    }
    return $null
}

# Administrative-template settings (Registry.pol) as the last policy processing logged them in RSoP.
function Get-TrRsopPolicy($Wanted, $BaseKey, $GpoNames) {
    $r = @{ available = $false; reason = $null; settings = (New-Object System.Collections.ArrayList) }
    $ns = 'root\rsop\computer'
    $off = Get-TrRsopLoggingOff $BaseKey
    if ($null -ne $off) { $r.reason = 'RSoP logging is turned off (' + $off + ')'; return $r }
    try {
        if (@(Get-TrWmiObjects 'RSOP_Session' $ns).Count -eq 0) {
            $r.reason = 'no RSoP logging session in ' + $ns
            return $r
        }
        foreach ($gpo in (Get-TrWmiObjects 'RSOP_GPO' $ns)) {
            $GpoNames[[string](Get-TrWmiValue $gpo 'id')] = [string](Get-TrWmiValue $gpo 'name')
            $GpoNames[([string](Get-TrWmiValue $gpo 'guidName')).ToUpperInvariant()] = [string](Get-TrWmiValue $gpo 'name')
        }
        foreach ($s in (Get-TrWmiObjects 'RSOP_RegistryPolicySetting' $ns)) {
            $valueName = [string](Get-TrWmiValue $s 'valueName')
            $deleted = [bool](Get-TrWmiValue $s 'deleted')
            $lower = $valueName.ToLowerInvariant()
            $name = $valueName
            if ($lower.StartsWith('**del.')) { $deleted = $true; $name = $valueName.Substring(6) }
            elseif ($lower -eq '**delvals.') { $deleted = $true; $name = $null }
            elseif ($lower.StartsWith('**')) { continue }
            elseif ($valueName -eq '') { if (-not $deleted) { continue }; $name = $null }
            $path = Get-TrPolicyKeyPath ([string](Get-TrWmiValue $s 'registryKey'))
            if (-not (Test-TrPolicyCovers $Wanted $path $name)) { continue }
            $value = @{ type = $null; data = $null }
            if (-not $deleted) { $value = ConvertFrom-TrPolicyBytes ([int](Get-TrWmiValue $s 'valueType')) (Get-TrWmiValue $s 'value') }
            $gpoId = [string](Get-TrWmiValue $s 'GPOID')
            $gpoName = $null
            if ($GpoNames.ContainsKey($gpoId)) { $gpoName = $GpoNames[$gpoId] }
            [void]$r.settings.Add(@{ path = $path; name = $name; type = $value.type; data = $value.data;
                deleted = $deleted; gpo_id = $gpoId; gpo_name = $gpoName; precedence = [int](Get-TrWmiValue $s 'precedence') })
        }
        $r.available = $true
    } catch {
        $r.settings.Clear()
        $r.reason = $ns + ' could not be read: ' + (Get-TrErrorText $_)
    }
    return $r
}

# An XML file with no DTD processing and no resolver: a history-cache file cannot make this script fetch anything.
function Read-TrXmlFile([string]$Path) {
    $settings = New-Object System.Xml.XmlReaderSettings
    $settings.XmlResolver = $null
    if ($null -ne $settings.PSObject.Properties['DtdProcessing']) { $settings.DtdProcessing = 'Prohibit' } else { $settings.ProhibitDtd = $true }
    $stream = [System.IO.File]::OpenRead($Path)
    try {
        $doc = New-Object System.Xml.XmlDocument
        $doc.XmlResolver = $null
        $doc.Load([System.Xml.XmlReader]::Create($stream, $settings))
        return , $doc
    } finally {
        $stream.Close()
    }
}

function ConvertFrom-TrGppValue([string]$Type, [string]$Value) {
    if (-not (('REG_DWORD', 'REG_QWORD', 'REG_SZ', 'REG_EXPAND_SZ', 'REG_MULTI_SZ', 'REG_BINARY') -contains $Type)) { return @{ type = $null; data = $null } }
    $data = $null
    try {
        if ($Type -eq 'REG_DWORD') { $data = [int64][Convert]::ToUInt32($Value, 16) }
        elseif ($Type -eq 'REG_QWORD') { $data = [decimal][Convert]::ToUInt64($Value, 16) }
        elseif ($Type -eq 'REG_SZ' -or $Type -eq 'REG_EXPAND_SZ') { $data = $Value }
        elseif ($Type -eq 'REG_BINARY' -and $Value -match '^([0-9A-Fa-f]{2})*$') { $data = $Value.ToLowerInvariant() }
    } catch {
        $data = $null  # not the hex GPP writes: the item is still reported, with its data unknown
    }
    return @{ type = $Type; data = $data }
}

# Registry items of one Registry.xml, through nested collections: a disabled collection disables its items, and
# targeting on a collection applies to its items.
function Add-TrGppItems($Node, [string]$GpoId, $GpoName, [bool]$Disabled, $Filters, $Items, $Wanted) {
    foreach ($child in $Node.ChildNodes) {
        if ($child.NodeType -ne [System.Xml.XmlNodeType]::Element) { continue }
        $off = $Disabled -or ($child.GetAttribute('disabled') -eq '1')
        $own = New-Object System.Collections.ArrayList
        foreach ($f in $Filters) { [void]$own.Add($f) }
        foreach ($group in $child.ChildNodes) {
            if ($group.NodeType -ne [System.Xml.XmlNodeType]::Element -or $group.LocalName -ne 'Filters') { continue }
            foreach ($f in $group.ChildNodes) { if ($f.NodeType -eq [System.Xml.XmlNodeType]::Element) { [void]$own.Add($f.LocalName) } }
        }
        if ($child.LocalName -eq 'Collection') { Add-TrGppItems $child $GpoId $GpoName $off $own $Items $Wanted; continue }
        if ($child.LocalName -ne 'Registry') { continue }
        $p = $null
        foreach ($n in $child.ChildNodes) { if ($n.NodeType -eq [System.Xml.XmlNodeType]::Element -and $n.LocalName -eq 'Properties') { $p = $n } }
        if ($null -eq $p -or [string]$p.GetAttribute('hive') -ne 'HKEY_LOCAL_MACHINE' -or $p.GetAttribute('default') -eq '1') { continue }
        $action = [string]$p.GetAttribute('action')
        if (-not (('C', 'R', 'U', 'D') -contains $action)) { continue }
        $name = [string]$p.GetAttribute('name')
        if ($name -eq '') { $name = $null }
        $path = Get-TrPolicyKeyPath ([string]$p.GetAttribute('key'))
        if (-not (Test-TrPolicyCovers $Wanted $path $name)) { continue }
        $value = @{ type = $null; data = $null }
        if ($null -ne $name) { $value = ConvertFrom-TrGppValue ([string]$p.GetAttribute('type')) ([string]$p.GetAttribute('value')) }
        $targeting = New-Object System.Collections.ArrayList
        $runOnce = $false
        foreach ($f in $own) { if ($f -eq 'FilterRunOnce') { $runOnce = $true } elseif (-not $targeting.Contains($f)) { [void]$targeting.Add($f) } }
        $certainty = 'none'
        if ($targeting.Count -gt 0) { $certainty = 'uncertain' }
        [void]$Items.Add(@{ path = $path; name = $name; action = $action; type = $value.type; data = $value.data;
            disabled = [bool]$off; targeting = $certainty; filters = $targeting.ToArray(); run_once = $runOnce;
            gpo_id = $GpoId; gpo_name = $GpoName })
    }
}

# Group Policy Preferences registry items for the machine, from the history cache the GP client keeps per GPO.
function Get-TrGppPolicy($Wanted, $GpoNames) {
    $r = @{ available = $true; reason = $null; items = (New-Object System.Collections.ArrayList) }
    $root = Join-Path $env:ALLUSERSPROFILE 'Microsoft\Group Policy\History'
    if (-not (Test-Path -LiteralPath $root)) { return $r }
    $unreadable = New-Object System.Collections.ArrayList
    foreach ($file in @(Get-ChildItem -Path $root -Recurse -Force -Filter 'Registry.xml' -ErrorAction SilentlyContinue)) {
        $parts = $file.FullName.Substring($root.Length).TrimStart('\').Split('\')
        if ($parts.Length -ne 5 -or $parts[1] -ne 'Machine') { continue }
        $gpoName = $null
        if ($GpoNames.ContainsKey($parts[0].ToUpperInvariant())) { $gpoName = $GpoNames[$parts[0].ToUpperInvariant()] }
        try {
            $xml = Read-TrXmlFile $file.FullName
            Add-TrGppItems $xml.DocumentElement $parts[0] $gpoName $false @() $r.items $Wanted
        } catch {
            [void]$unreadable.Add($parts[0] + ': ' + (Get-TrErrorText $_))
        }
    }
    if ($unreadable.Count -gt 0) {
        $r.available = $false
        $r.reason = 'Registry.xml not readable for ' + [string]::Join('; ', [string[]]$unreadable.ToArray())
    }
    return $r
}

# "HKLM\KEY|NAME" (upper case) of every value an applying policy sets: the winning RSoP setting, or an enabled GPP
# item without targeting that replaces or updates it on every refresh.
function Get-TrPolicySetValues($Rsop, $Gpp) {
    $set = @{}
    $winners = @{}
    foreach ($s in $Rsop.settings) {
        if ($null -eq $s.name) { continue }
        $k = ($s.path + '|' + $s.name).ToUpperInvariant()
        if (-not $winners.ContainsKey($k) -or $s.precedence -lt $winners[$k].precedence) { $winners[$k] = $s }
    }
    foreach ($k in $winners.Keys) { if (-not $winners[$k].deleted) { $set[$k] = $true } }
    foreach ($i in $Gpp.items) {
        if ($null -eq $i.name -or $i.disabled -or $i.run_once -or $i.targeting -ne 'none') { continue }
        if ($i.action -eq 'R' -or $i.action -eq 'U') { $set[($i.path + '|' + $i.name).ToUpperInvariant()] = $true }
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

    $wanted = @{ values = @{}; keys = @{} }
    foreach ($item in @($A['values'])) {
        $wanted.values[([string]$item.path + '|' + [string]$item.name).ToUpperInvariant()] = $true
        $wanted.keys[([string]$item.path).ToUpperInvariant()] = $true
    }
    $gpoNames = @{}
    $rsop = Get-TrRsopPolicy $wanted $base $gpoNames
    $gpp = Get-TrGppPolicy $wanted $gpoNames
    $policySet = Get-TrPolicySetValues $rsop $gpp

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
        $policy = (Test-TrPolicyPath $item.path) -or $policySet.ContainsKey(([string]$item.path + '|' + [string]$item.name).ToUpperInvariant())
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
        group_policy = @{ rsop = $rsop; preferences = $gpp }
    }
    Write-TrResult 'inspect' $facts $warnings
} catch {
    Write-TrError 'inspect' $_
}
