# tls-runbook-operation: common
# Shared code, placed by runbook_lib.remote.scripts.compose() between the argument line and one operation script,
# all inside one "& { }" block (see scripts.py: an empty line there would cut the block, so compose drops them).
#
# Runs unchanged on Windows PowerShell 2.0 (.NET 3.5, CLR 2) through 5.1 and PowerShell 7, so it avoids every
# construct newer than 2.0 (ConvertTo-Json, [pscustomobject], ::new(), -in, member enumeration, enum names that
# .NET 3.5 lacks). Arguments arrive as data: the composed script assigns $TlsRunbookArgs a base64 string of UTF-8
# JSON and Get-TrArgs decodes it; no caller text is ever part of the code.
#
# Output contract: exactly one line of JSON between the marker lines
#   <<<TLS-RUNBOOK-RESULT
#   {"schema":"tls-runbook/result/v1","operation":"<op>","ok":true,"result":{...},"warnings":["..."]}
#   TLS-RUNBOOK-RESULT>>>
# or, when the operation failed as a whole, "ok":false with "error":"<one line>" instead of "result".
# Every character outside printable ASCII is written as \uXXXX, so the block survives any console code page.

$ProgressPreference = 'SilentlyContinue'
$ErrorActionPreference = 'Stop'

# ---------------------------------------------------------------- JSON writer
function ConvertTo-TrJsonString([string]$Text) {
    $sb = New-Object System.Text.StringBuilder
    [void]$sb.Append('"')
    foreach ($ch in $Text.ToCharArray()) {
        $code = [int]$ch
        if ($code -eq 34) { [void]$sb.Append('\"') }
        elseif ($code -eq 92) { [void]$sb.Append('\\') }
        elseif ($code -lt 32 -or $code -gt 126) { [void]$sb.Append('\u'); [void]$sb.Append($code.ToString('x4')) }
        else { [void]$sb.Append($ch) }
    }
    [void]$sb.Append('"')
    return $sb.ToString()
}

function ConvertTo-TrJson($Value) {
    $inv = [Globalization.CultureInfo]::InvariantCulture
    if ($null -eq $Value) { return 'null' }
    if ($Value -is [string] -or $Value -is [char]) { return (ConvertTo-TrJsonString ([string]$Value)) }
    if ($Value -is [bool]) { if ($Value) { return 'true' } else { return 'false' } }
    if ($Value -is [int] -or $Value -is [long] -or $Value -is [decimal] -or $Value -is [byte] -or
        $Value -is [int16] -or $Value -is [uint16] -or $Value -is [uint32] -or $Value -is [uint64] -or
        $Value -is [sbyte]) {
        return $Value.ToString($inv)
    }
    if ($Value -is [double] -or $Value -is [single]) {
        if ([double]::IsNaN($Value) -or [double]::IsInfinity($Value)) { return 'null' }
        return ([double]$Value).ToString('R', $inv)
    }
    if ($Value -is [DateTime]) {
        return (ConvertTo-TrJsonString ($Value.ToUniversalTime().ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", $inv)))
    }
    if ($Value -is [System.Collections.IDictionary]) {
        $keys = New-Object System.Collections.ArrayList
        foreach ($k in $Value.Keys) { [void]$keys.Add([string]$k) }
        $keys.Sort([StringComparer]::Ordinal)
        $parts = New-Object System.Collections.ArrayList
        foreach ($k in $keys) {
            [void]$parts.Add((ConvertTo-TrJsonString $k) + ':' + (ConvertTo-TrJson $Value[$k]))
        }
        return '{' + [string]::Join(',', [string[]]$parts.ToArray()) + '}'
    }
    if ($Value -is [System.Collections.IEnumerable]) {
        $parts = New-Object System.Collections.ArrayList
        foreach ($item in $Value) { [void]$parts.Add((ConvertTo-TrJson $item)) }
        return '[' + [string]::Join(',', [string[]]$parts.ToArray()) + ']'
    }
    return (ConvertTo-TrJsonString ([string]$Value))
}

# ---------------------------------------------------------------- JSON reader
# State is a hashtable (text + index) passed by reference, so no scope rules are involved.
function Skip-TrJsonSpace($St) {
    while ($St.i -lt $St.s.Length) {
        $c = [int]$St.s[$St.i]
        if ($c -eq 32 -or $c -eq 9 -or $c -eq 10 -or $c -eq 13) { $St.i++ } else { break }
    }
}

function Read-TrJsonString($St) {
    # $St.i is on the opening quote
    $St.i++
    $sb = New-Object System.Text.StringBuilder
    while ($true) {
        if ($St.i -ge $St.s.Length) { throw 'arguments: unterminated JSON string' }
        $ch = $St.s[$St.i]
        $c = [int]$ch
        $St.i++
        if ($c -eq 34) { break }
        if ($c -ne 92) { [void]$sb.Append($ch); continue }
        if ($St.i -ge $St.s.Length) { throw 'arguments: bad JSON escape' }
        $e = [int]$St.s[$St.i]
        $St.i++
        if ($e -eq 34) { [void]$sb.Append([char]34) }
        elseif ($e -eq 92) { [void]$sb.Append([char]92) }
        elseif ($e -eq 47) { [void]$sb.Append([char]47) }
        elseif ($e -eq 98) { [void]$sb.Append([char]8) }
        elseif ($e -eq 102) { [void]$sb.Append([char]12) }
        elseif ($e -eq 110) { [void]$sb.Append([char]10) }
        elseif ($e -eq 114) { [void]$sb.Append([char]13) }
        elseif ($e -eq 116) { [void]$sb.Append([char]9) }
        elseif ($e -eq 117) {
            if ($St.i + 4 -gt $St.s.Length) { throw 'arguments: bad JSON \u escape' }
            [void]$sb.Append([char][Convert]::ToInt32($St.s.Substring($St.i, 4), 16))
            $St.i += 4
        }
        else { throw 'arguments: bad JSON escape' }
    }
    return $sb.ToString()
}

function Read-TrJsonNumber($St) {
    $m = [regex]::Match($St.s.Substring($St.i), '^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?')
    if (-not $m.Success) { throw 'arguments: bad JSON value' }
    $St.i += $m.Length
    $inv = [Globalization.CultureInfo]::InvariantCulture
    if ($m.Groups[2].Success -or $m.Groups[3].Success) {
        return [double]::Parse($m.Value, [Globalization.NumberStyles]::Float, $inv)
    }
    [int64]$n = 0
    if ([int64]::TryParse($m.Value, [Globalization.NumberStyles]::AllowLeadingSign, $inv, [ref]$n)) { return $n }
    return [decimal]::Parse($m.Value, [Globalization.NumberStyles]::AllowLeadingSign, $inv)
}

function Read-TrJsonValue($St) {
    Skip-TrJsonSpace $St
    if ($St.i -ge $St.s.Length) { throw 'arguments: unexpected end of JSON' }
    $c = [int]$St.s[$St.i]
    if ($c -eq 123) {
        $St.i++
        $h = @{}
        Skip-TrJsonSpace $St
        if ($St.i -lt $St.s.Length -and [int]$St.s[$St.i] -eq 125) { $St.i++; return $h }
        while ($true) {
            Skip-TrJsonSpace $St
            if ($St.i -ge $St.s.Length -or [int]$St.s[$St.i] -ne 34) { throw 'arguments: JSON object key expected' }
            $key = Read-TrJsonString $St
            Skip-TrJsonSpace $St
            if ($St.i -ge $St.s.Length -or [int]$St.s[$St.i] -ne 58) { throw 'arguments: JSON colon expected' }
            $St.i++
            $h[$key] = Read-TrJsonValue $St
            Skip-TrJsonSpace $St
            if ($St.i -ge $St.s.Length) { throw 'arguments: unexpected end of JSON' }
            $d = [int]$St.s[$St.i]
            $St.i++
            if ($d -eq 125) { break }
            if ($d -ne 44) { throw 'arguments: JSON comma expected' }
        }
        return $h
    }
    if ($c -eq 91) {
        $St.i++
        $list = New-Object System.Collections.ArrayList
        Skip-TrJsonSpace $St
        if ($St.i -lt $St.s.Length -and [int]$St.s[$St.i] -eq 93) { $St.i++; return , $list.ToArray() }
        while ($true) {
            $item = Read-TrJsonValue $St
            [void]$list.Add($item)
            Skip-TrJsonSpace $St
            if ($St.i -ge $St.s.Length) { throw 'arguments: unexpected end of JSON' }
            $d = [int]$St.s[$St.i]
            $St.i++
            if ($d -eq 93) { break }
            if ($d -ne 44) { throw 'arguments: JSON comma expected' }
        }
        return , $list.ToArray()
    }
    if ($c -eq 34) { return (Read-TrJsonString $St) }
    if ($St.s.Length -ge $St.i + 4 -and $St.s.Substring($St.i, 4) -ceq 'true') { $St.i += 4; return $true }
    if ($St.s.Length -ge $St.i + 5 -and $St.s.Substring($St.i, 5) -ceq 'false') { $St.i += 5; return $false }
    if ($St.s.Length -ge $St.i + 4 -and $St.s.Substring($St.i, 4) -ceq 'null') { $St.i += 4; return $null }
    return (Read-TrJsonNumber $St)
}

function ConvertFrom-TrJson([string]$Text) {
    $st = @{ s = $Text; i = 0 }
    $value = Read-TrJsonValue $st
    Skip-TrJsonSpace $st
    if ($st.i -ne $st.s.Length) { throw 'arguments: trailing characters after JSON' }
    return , $value
}

function Get-TrArgs {
    $json = [Text.Encoding]::UTF8.GetString([Convert]::FromBase64String($TlsRunbookArgs))
    return (ConvertFrom-TrJson $json)
}

# ---------------------------------------------------------------- result and error emission
function Get-TrErrorText($ErrorRecord) {
    $text = $ErrorRecord.Exception.GetBaseException().Message
    if ([string]::IsNullOrEmpty($text)) { $text = [string]$ErrorRecord }
    return ([regex]::Replace($text, '\s+', ' ')).Trim()
}

function Write-TrEnvelope([string]$Operation, [string]$Tail) {
    $doc = '{"schema":"tls-runbook/result/v1","operation":' + (ConvertTo-TrJsonString $Operation) + ',' + $Tail + '}'
    [Console]::Out.Write("`r`n<<<TLS-RUNBOOK-RESULT`r`n" + $doc + "`r`nTLS-RUNBOOK-RESULT>>>`r`n")
    [Console]::Out.Flush()
}

# Warnings are things the caller should know that do not fit the result's own schema (host facts are strict).
function Write-TrResult([string]$Operation, $Result, $Warnings) {
    if ($null -eq $Warnings) { $Warnings = @() }
    Write-TrEnvelope $Operation ('"ok":true,"result":' + (ConvertTo-TrJson $Result) + ',"warnings":' + (ConvertTo-TrJson $Warnings))
}

function Write-TrError([string]$Operation, $ErrorRecord) {
    Write-TrEnvelope $Operation ('"ok":false,"error":' + (ConvertTo-TrJsonString (Get-TrErrorText $ErrorRecord)))
}

# ---------------------------------------------------------------- registry
# Paths are "HKLM\<subkey>". The 64-bit view needs RegistryKey.OpenBaseKey (.NET 4); on CLR 2 the process's own
# view is used and Get-TrRegistryView says so, which is the 64-bit view whenever PowerShell itself is 64-bit.
function Get-TrBaseKey {
    try {
        return [Microsoft.Win32.RegistryKey]::OpenBaseKey([Microsoft.Win32.RegistryHive]::LocalMachine, [Microsoft.Win32.RegistryView]::Registry64)
    } catch {
        return [Microsoft.Win32.Registry]::LocalMachine
    }
}

function Get-TrRegistryView {
    try {
        [void][Microsoft.Win32.RegistryKey]::OpenBaseKey([Microsoft.Win32.RegistryHive]::LocalMachine, [Microsoft.Win32.RegistryView]::Registry64)
        return 'registry64'
    } catch {
        if ([IntPtr]::Size -eq 8) { return 'process-64bit' }
        return 'process-32bit'
    }
}

function Get-TrSubKeyPath([string]$Path) {
    if ($Path.Length -lt 6 -or $Path.Substring(0, 5).ToUpperInvariant() -ne 'HKLM\') { throw ('registry path must start with HKLM\: ' + $Path) }
    return $Path.Substring(5)
}

$TrTwo32 = [decimal]4294967296
$TrTwo63 = [decimal]::Parse('9223372036854775808', [Globalization.CultureInfo]::InvariantCulture)
$TrTwo64 = [decimal]::Parse('18446744073709551616', [Globalization.CultureInfo]::InvariantCulture)

function Get-TrKindName($Kind) {
    $k = [string]$Kind
    if ($k -eq 'DWord') { return 'REG_DWORD' }
    if ($k -eq 'QWord') { return 'REG_QWORD' }
    if ($k -eq 'String') { return 'REG_SZ' }
    if ($k -eq 'ExpandString') { return 'REG_EXPAND_SZ' }
    if ($k -eq 'MultiString') { return 'REG_MULTI_SZ' }
    if ($k -eq 'Binary') { return 'REG_BINARY' }
    return $null
}

function Get-TrKind([string]$TypeName) {
    if ($TypeName -eq 'REG_DWORD') { return [Microsoft.Win32.RegistryValueKind]::DWord }
    if ($TypeName -eq 'REG_QWORD') { return [Microsoft.Win32.RegistryValueKind]::QWord }
    if ($TypeName -eq 'REG_SZ') { return [Microsoft.Win32.RegistryValueKind]::String }
    if ($TypeName -eq 'REG_EXPAND_SZ') { return [Microsoft.Win32.RegistryValueKind]::ExpandString }
    if ($TypeName -eq 'REG_MULTI_SZ') { return [Microsoft.Win32.RegistryValueKind]::MultiString }
    if ($TypeName -eq 'REG_BINARY') { return [Microsoft.Win32.RegistryValueKind]::Binary }
    throw ('unsupported registry type: ' + $TypeName)
}

# Reads one value as @{type; data} in the JSON form (DWORD/QWORD unsigned, binary as lower-case hex), or $null
# when the key or the value is absent. A value the JSON form cannot carry comes back as @{type = $null; data =
# $null; problem = <why>}: a kind outside the six supported ones, or data of the wrong size for its kind (.NET
# returns an 8-byte REG_DWORD as an Int64; the Windows components that read a DWORD do not see it as one).
function Read-TrValue($BaseKey, [string]$Path, [string]$Name) {
    $key = $BaseKey.OpenSubKey((Get-TrSubKeyPath $Path), $false)
    if ($null -eq $key) { return $null }
    try {
        $present = $false
        foreach ($n in $key.GetValueNames()) { if ($n -eq $Name) { $present = $true; break } }
        if (-not $present) { return $null }
        $kind = $key.GetValueKind($Name)
        $typeName = Get-TrKindName $kind
        $raw = $key.GetValue($Name, $null, [Microsoft.Win32.RegistryValueOptions]::DoNotExpandEnvironmentNames)
        if ($null -eq $typeName) { return @{ type = $null; data = $null; problem = ('kind ' + [string]$kind + ' is not supported') } }
        if ($typeName -eq 'REG_DWORD') {
            if (-not ($raw -is [int])) { return @{ type = $null; data = $null; problem = ('REG_DWORD whose data is not 4 bytes (reads as ' + $raw.GetType().Name + ')') } }
            $v = [decimal]$raw
            if ($v -lt 0) { $v = $v + $TrTwo32 }
            return @{ type = $typeName; data = [int64]$v }
        }
        if ($typeName -eq 'REG_QWORD') {
            if (-not ($raw -is [long])) { return @{ type = $null; data = $null; problem = ('REG_QWORD whose data is not 8 bytes (reads as ' + $raw.GetType().Name + ')') } }
            $v = [decimal]$raw
            if ($v -lt 0) { $v = $v + $TrTwo64 }
            return @{ type = $typeName; data = $v }
        }
        if ($typeName -eq 'REG_MULTI_SZ') {
            $list = New-Object System.Collections.ArrayList
            foreach ($s in $raw) { [void]$list.Add([string]$s) }
            return @{ type = $typeName; data = $list.ToArray() }
        }
        if ($typeName -eq 'REG_BINARY') {
            $sb = New-Object System.Text.StringBuilder
            foreach ($b in [byte[]]$raw) { [void]$sb.Append($b.ToString('x2')) }
            return @{ type = $typeName; data = $sb.ToString() }
        }
        return @{ type = $typeName; data = [string]$raw }
    } finally {
        $key.Close()
    }
}

# Converts JSON-form data to what RegistryKey.SetValue expects for the kind.
function ConvertTo-TrRegistryData([string]$TypeName, $Data) {
    if ($TypeName -eq 'REG_DWORD') {
        $v = [decimal]$Data
        if ($v -lt 0 -or $v -ge $TrTwo32) { throw 'REG_DWORD data out of range' }
        if ($v -ge [decimal]2147483648) { $v = $v - $TrTwo32 }
        return [int32]$v
    }
    if ($TypeName -eq 'REG_QWORD') {
        $v = [decimal]$Data
        if ($v -lt 0 -or $v -ge $TrTwo64) { throw 'REG_QWORD data out of range' }
        if ($v -ge $TrTwo63) { $v = $v - $TrTwo64 }
        return [int64]$v
    }
    if ($TypeName -eq 'REG_MULTI_SZ') {
        $list = New-Object System.Collections.ArrayList
        foreach ($s in @($Data)) { [void]$list.Add([string]$s) }
        return , ([string[]]$list.ToArray())
    }
    if ($TypeName -eq 'REG_BINARY') {
        $hex = [string]$Data
        $bytes = New-Object byte[] ($hex.Length / 2)
        for ($j = 0; $j -lt $bytes.Length; $j++) { $bytes[$j] = [Convert]::ToByte($hex.Substring(2 * $j, 2), 16) }
        return , $bytes
    }
    return [string]$Data
}

# Equal when kind and data match exactly (case-sensitive strings), compared in the JSON form.
# Writes one value with its real kind; shared by apply (the fix) and restore (the rollback).
function Set-TrValue($Key, [string]$Name, [string]$TypeName, $Data) {
    $kind = Get-TrKind $TypeName
    $value = ConvertTo-TrRegistryData $TypeName $Data
    if ($TypeName -eq 'REG_DWORD') { $Key.SetValue($Name, [int32]$value, $kind) }
    elseif ($TypeName -eq 'REG_QWORD') { $Key.SetValue($Name, [int64]$value, $kind) }
    elseif ($TypeName -eq 'REG_MULTI_SZ') { $Key.SetValue($Name, [string[]]$value, $kind) }
    elseif ($TypeName -eq 'REG_BINARY') { $Key.SetValue($Name, [byte[]]$value, $kind) }
    else { $Key.SetValue($Name, [string]$value, $kind) }
}

function Test-TrSameValue($A, $B) {
    if ($null -eq $A -or $null -eq $B) { return ($null -eq $A -and $null -eq $B) }
    return ([string]$A.type -ceq [string]$B.type) -and ((ConvertTo-TrJson $A.data) -ceq (ConvertTo-TrJson $B.data))
}

# ---------------------------------------------------------------- WMI
function Get-TrWmiObjects([string]$Class, [string]$Namespace = 'root\cimv2') {
    if ($null -ne (Get-Command Get-WmiObject -ErrorAction SilentlyContinue)) {
        return @(Get-WmiObject -Namespace $Namespace -Class $Class)
    }
    if (-not ('System.Management.ManagementObjectSearcher' -as [type])) { Add-Type -AssemblyName System.Management }
    $searcher = New-Object System.Management.ManagementObjectSearcher -ArgumentList $Namespace, ('SELECT * FROM ' + $Class)
    return @($searcher.Get())
}

function Get-TrWmiValue($Object, [string]$Name) {
    return $Object.psbase.GetPropertyValue($Name)
}

# A CIM datetime ("20260101120000.500000+060") as UTC "YYYY-MM-DDTHH:MM:SSZ".
function ConvertFrom-TrWmiDate([string]$Text) {
    $local = [System.Management.ManagementDateTimeConverter]::ToDateTime($Text)
    return $local.ToUniversalTime().ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", [Globalization.CultureInfo]::InvariantCulture)
}

# When Windows last started: a restart that happened changes it, a network blip does not.
function Get-TrLastBoot {
    $os = @(Get-TrWmiObjects 'Win32_OperatingSystem')[0]
    return (ConvertFrom-TrWmiDate (Get-TrWmiValue $os 'LastBootUpTime'))
}

# Which Windows this is (host-facts v1 "os"): inspect reports it, and preflight, so a fleet run can pick one
# canary host per caption before it changes anything.
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

# ---------------------------------------------------------------- journal folder and journals
# %ProgramData%\tls-runbook holds every apply's journal: its backup and what it wrote. Standard users may create
# folders in ProgramData, and one who made this folder could forge the journals a recovery or a restore believes.
# So the folder is created with a protected ACL (SYSTEM and Administrators only, nothing inherited, owned by
# Administrators), and one that exists is used only when no one else owns it or may change it.
$TrJournalSddl = 'O:BAG:SYD:PAI(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)'
$TrTrustedSids = @('S-1-5-18', 'S-1-5-32-544')
# Write data, append data, write (extended) attributes, delete child or self, change permissions, take ownership,
# and the generic write and all bits.
$TrChangeRights = [int64]0x500D0156

function Get-TrJournalFolder {
    return (Join-Path $env:ProgramData 'tls-runbook')
}

function Get-TrJournalFile([string]$ApplyId) {
    if ($ApplyId -cnotmatch '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$') { throw 'apply_id is not a safe file name' }
    return (Join-Path (Get-TrJournalFolder) ($ApplyId + '.json'))
}

# .NET Framework has the ACL calls on Directory and DirectoryInfo; .NET (PowerShell 7) has them as static methods
# of FileSystemAclExtensions. Reflection finds whichever this runtime has.
function Get-TrAclExtensions {
    $type = 'System.IO.FileSystemAclExtensions' -as [type]
    if ($null -eq $type) {
        Add-Type -AssemblyName System.IO.FileSystem.AccessControl
        $type = 'System.IO.FileSystemAclExtensions' -as [type]
    }
    return $type
}

function New-TrJournalFolder([string]$Dir) {
    $sd = New-Object System.Security.AccessControl.DirectorySecurity
    $sd.SetSecurityDescriptorSddlForm($TrJournalSddl)
    $types = [Type[]]@([string], [System.Security.AccessControl.DirectorySecurity])
    $create = [System.IO.Directory].GetMethod('CreateDirectory', $types)
    if ($null -ne $create) {
        [void]$create.Invoke($null, [object[]]@($Dir, $sd))
        return
    }
    $info = New-Object System.IO.DirectoryInfo -ArgumentList $Dir
    $types = [Type[]]@([System.IO.DirectoryInfo], [System.Security.AccessControl.DirectorySecurity])
    $create = (Get-TrAclExtensions).GetMethod('Create', $types)
    if ($null -eq $create) { throw ('this PowerShell cannot create ' + $Dir + ' with its own ACL; use Windows PowerShell') }
    [void]$create.Invoke($null, [object[]]@($info, $sd))
}

function Get-TrDirectorySecurity([string]$Dir) {
    $info = New-Object System.IO.DirectoryInfo -ArgumentList $Dir
    $get = $info.GetType().GetMethod('GetAccessControl', [Type[]]@())
    if ($null -ne $get) { return $get.Invoke($info, $null) }
    return (Get-TrAclExtensions).GetMethod('GetAccessControl', [Type[]]@([System.IO.DirectoryInfo])).Invoke($null, [object[]]@($info))
}

function Get-TrAccountText($Sid) {
    $name = $Sid.Value
    try { $name = $Sid.Translate([System.Security.Principal.NTAccount]).Value } catch { $name = $Sid.Value }
    return ($name + ' (' + $Sid.Value + ')')
}

# $null when the folder may be trusted, otherwise why not (one line).
function Test-TrJournalFolder([string]$Dir) {
    $sidType = [System.Security.Principal.SecurityIdentifier]
    $sd = Get-TrDirectorySecurity $Dir
    $owner = $sd.GetOwner($sidType)
    $advice = ': it may have been planted to forge journals; check it, remove it, then run again'
    if ($TrTrustedSids -notcontains $owner.Value) {
        return ('journal folder ' + $Dir + ' is owned by ' + (Get-TrAccountText $owner) + ', not Administrators or SYSTEM' + $advice)
    }
    foreach ($rule in $sd.GetAccessRules($true, $true, $sidType)) {
        if ($rule.AccessControlType -ne [System.Security.AccessControl.AccessControlType]::Allow) { continue }
        if ($TrTrustedSids -contains $rule.IdentityReference.Value) { continue }
        $rights = [int64][int]$rule.FileSystemRights
        if ($rights -lt 0) { $rights = $rights + 4294967296 }
        if (($rights -band $TrChangeRights) -ne 0) {
            return ('journal folder ' + $Dir + ' lets ' + (Get-TrAccountText $rule.IdentityReference) + ' change it' + $advice)
        }
    }
    return $null
}

# Creates the folder protected when it is missing; refuses one that is not trustworthy. Returns the folder.
function Use-TrJournalFolder([switch]$Create) {
    $dir = Get-TrJournalFolder
    if (-not [IO.Directory]::Exists($dir)) {
        if (-not $Create) { return $null }
        New-TrJournalFolder $dir
    }
    $problem = Test-TrJournalFolder $dir
    if ($null -ne $problem) { throw $problem }
    return $dir
}

# The newest copy of a journal that parses: <id>.json, or <id>.json.tmp when apply stopped between writing the
# next revision and moving it into place. @{ doc; revision } or $null.
function Read-TrJournal([string]$File) {
    $best = $null
    foreach ($candidate in @($File, ($File + '.tmp'))) {
        if (-not [IO.File]::Exists($candidate)) { continue }
        try {
            $doc = ConvertFrom-TrJson ([IO.File]::ReadAllText($candidate, [Text.Encoding]::ASCII))
        } catch {
            continue
        }
        if (-not ($doc -is [hashtable]) -or -not $doc.ContainsKey('revision')) { continue }
        if ($null -eq $best -or [int64]$doc.revision -gt $best.revision) { $best = @{ doc = $doc; revision = [int64]$doc.revision } }
    }
    return $best
}

function Get-TrProcessStart($Process) {
    return $Process.StartTime.ToUniversalTime().ToString("yyyy-MM-dd'T'HH:mm:ss.fffffff'Z'", [Globalization.CultureInfo]::InvariantCulture)
}

# Whether the apply process a journal names still runs: $true, $false, or $null when this cannot be told.
function Test-TrApplyRunning($Doc) {
    if (-not $Doc.ContainsKey('pid') -or -not $Doc.ContainsKey('process_started')) { return $null }
    try {
        $process = [Diagnostics.Process]::GetProcessById([int]$Doc.pid)
    } catch {
        return $false
    }
    try {
        return ((Get-TrProcessStart $process) -eq [string]$Doc.process_started) -and -not $process.HasExited
    } catch {
        return $null
    }
}

# ---------------------------------------------------------------- TLS probes
# A probe reports only what this process can know; whether Entra accepts the session is decided by the caller
# (runbook_lib/acceptance.py). Entra completes TLS 1.0/1.1 handshakes and refuses the request afterwards, so "ok"
# means "the handshake completed", nothing more.

# PowerShell refuses a numeric cast to a [Flags] enum when a bit has no name, and .NET 3.5's enums have no Tls11,
# Tls12 or Tls13 even where the runtime supports them; Enum.ToObject takes the number as it is.
function Get-TrSslProtocols([int]$Value) {
    return [Enum]::ToObject([System.Security.Authentication.SslProtocols], $Value)
}

$TrProtocolNames = @('Ssl2', 'Ssl3', 'Tls', 'Tls11', 'Tls12', 'Tls13')
$TrProtocolBits = @{ Ssl2 = 12; Ssl3 = 48; Tls = 192; Tls11 = 768; Tls12 = 3072; Tls13 = 12288 }

# Named bit by bit, lowest first ("Tls, Tls12"): a CLR 2 process can report a combination, and 3.5's enum has no
# name for the newer bits. Bits without a name stay a number; 0 is "None".
function Get-TrProtocolName($Protocol) {
    $n = [int]$Protocol
    if ($n -eq 0) { return 'None' }
    $names = New-Object System.Collections.ArrayList
    $rest = $n
    foreach ($name in $TrProtocolNames) {
        $bits = $TrProtocolBits[$name]
        if (($n -band $bits) -ne 0) {
            [void]$names.Add($name)
            $rest = $rest -band (-bnot $bits)
        }
    }
    if ($rest -ne 0) { [void]$names.Add([string]$rest) }
    return [string]::Join(', ', [string[]]$names.ToArray())
}

function Split-TrEndpoint([string]$Endpoint) {
    $at = $Endpoint.LastIndexOf(':')
    if ($at -lt 1) { throw ('endpoint must be host:port: ' + $Endpoint) }
    return @{ host = $Endpoint.Substring(0, $at); port = [int]$Endpoint.Substring($at + 1) }
}

# SslPolicyErrors names, bit by bit (RemoteCertificateNotAvailable 1, NameMismatch 2, ChainErrors 4).
function Get-TrPolicyErrorNames([int]$Errors) {
    $names = New-Object System.Collections.ArrayList
    if (($Errors -band 1) -ne 0) { [void]$names.Add('RemoteCertificateNotAvailable') }
    if (($Errors -band 2) -ne 0) { [void]$names.Add('RemoteCertificateNameMismatch') }
    if (($Errors -band 4) -ne 0) { [void]$names.Add('RemoteCertificateChainErrors') }
    return , $names.ToArray()
}

# Mode "tcp": TCP connect only. "default": SslStream.AuthenticateAsClient(host), what a .NET app negotiates by
# default. "tls12": explicit TLS 1.2 (3072). "session": the protocols in this process's
# ServicePointManager.SecurityProtocol, what HttpWebRequest would offer after a session fix.
# The certificate is checked as .NET would, but its errors are recorded instead of ending the handshake, so a
# missing root (DigiCert Global Root G2) or a TLS-inspecting proxy shows as a certificate problem with the session
# it negotiated, not as a TLS failure. hash and key_exchange are the ALG_ID numbers SslStream reports.
function Invoke-TrProbe([string]$Endpoint, [string]$Mode, [int]$TimeoutMs) {
    $r = @{ endpoint = $Endpoint; mode = $Mode; ok = $false; connected = $false; protocol = $null; cipher = $null; error = $null }
    $seen = @{ errors = $null; chain = $null }
    $client = $null
    $ssl = $null
    try {
        $ep = Split-TrEndpoint $Endpoint
        $client = New-Object System.Net.Sockets.TcpClient
        $pending = $client.BeginConnect($ep.host, $ep.port, $null, $null)
        if (-not $pending.AsyncWaitHandle.WaitOne($TimeoutMs, $false)) { throw ('TCP connect timed out after ' + $TimeoutMs + ' ms') }
        $client.EndConnect($pending)
        $r.connected = $true
        if ($Mode -ne 'tcp') {
            $stream = $client.GetStream()
            $stream.ReadTimeout = $TimeoutMs
            $stream.WriteTimeout = $TimeoutMs
            # A closure over $seen (GetNewClosure exists from PowerShell 2.0), so the callback fills this call's
            # table whatever scope .NET invokes it from; it returns only $true.
            $check = {
                param($Caller, $Certificate, $Chain, $PolicyErrors)
                $seen.errors = [int]$PolicyErrors
                $statuses = New-Object System.Collections.ArrayList
                if ($null -ne $Chain) {
                    foreach ($status in $Chain.ChainStatus) { [void]$statuses.Add([string]$status.Status) }
                }
                $seen.chain = $statuses.ToArray()
                return $true
            }
            $record = [System.Net.Security.RemoteCertificateValidationCallback]($check.GetNewClosure())
            $ssl = New-Object System.Net.Security.SslStream -ArgumentList $stream, $false, $record
            if ($Mode -eq 'default') {
                $ssl.AuthenticateAsClient($ep.host)
            } elseif ($Mode -eq 'tls12') {
                $ssl.AuthenticateAsClient($ep.host, $null, (Get-TrSslProtocols 3072), $false)
            } else {
                $session = Get-TrSslProtocols ([int][Net.ServicePointManager]::SecurityProtocol)
                $ssl.AuthenticateAsClient($ep.host, $null, $session, $false)
            }
            $r.protocol = Get-TrProtocolName $ssl.SslProtocol
            $r.cipher = [string]$ssl.CipherAlgorithm
            $r.hash = [int]$ssl.HashAlgorithm
            $r.key_exchange = [int]$ssl.KeyExchangeAlgorithm
        }
        $r.ok = $true
    } catch {
        $r.error = Get-TrErrorText $_
    } finally {
        if ($null -ne $ssl) { $ssl.Close() }
        if ($null -ne $client) { $client.Close() }
    }
    if ($null -ne $seen.errors) {
        $r.certificate_errors = Get-TrPolicyErrorNames $seen.errors
        $r.certificate_chain = $seen.chain
    }
    return $r
}

# ---------------------------------------------------------------- the application-level probe
# The request Connect-AzureAD's sign-in starts with, made the same way: HttpWebRequest in this Windows PowerShell
# process, so with its ServicePointManager.SecurityProtocol, default proxy and certificate checks. It is an
# unauthenticated token request for a made-up client id (no secret): Entra answers with an AADSTS code -
# AADSTS1002016 when it refuses the legacy session, another code (unknown application) when TLS passed - and
# nothing changes in any tenant. Every operation runs in a new powershell.exe, so before a script changes
# SecurityProtocol this is what a fresh process gets.
$TrProbeClientId = '11111111-1111-1111-1111-111111111111'

# The first AADSTS code of an Entra error answer (JSON error_codes, else "AADSTSnnn" in the text) and the first
# line of its error_description.
function Read-TrAadsts([string]$Text) {
    $answer = @{ code = $null; text = $null }
    $doc = $null
    try { $doc = ConvertFrom-TrJson $Text } catch { $doc = $null }
    if ($doc -is [System.Collections.IDictionary]) {
        if ($doc.ContainsKey('error_codes') -and @($doc['error_codes']).Count -gt 0) {
            $answer.code = [int64](@($doc['error_codes'])[0])
        }
        if ($doc.ContainsKey('error_description') -and $doc['error_description'] -is [string]) {
            $answer.text = ($doc['error_description'].Split([char[]]@([char]13, [char]10)))[0]
        }
    }
    $m = [regex]::Match($Text, 'AADSTS([0-9]{4,9})')
    if ($null -eq $answer.code -and $m.Success) { $answer.code = [int64]$m.Groups[1].Value }
    if ($null -ne $answer.text -and $answer.text.Length -gt 500) { $answer.text = $answer.text.Substring(0, 500) }
    return $answer
}

function Invoke-TrEntraRequest([string]$Endpoint, [int]$TimeoutMs) {
    $r = @{ endpoint = $Endpoint; mode = 'app'; ok = $false; protocol = $null; cipher = $null; error = $null
            url = $null; security_protocol = [int][Net.ServicePointManager]::SecurityProtocol; web_status = $null
            http_status = $null; aadsts = $null; aadsts_text = $null }
    $response = $null
    try {
        $ep = Split-TrEndpoint $Endpoint
        $authority = $ep.host
        if ($ep.port -ne 443) { $authority = $authority + ':' + $ep.port }
        $r.url = 'https://' + $authority + '/organizations/oauth2/v2.0/token'
        $body = [Text.Encoding]::ASCII.GetBytes('grant_type=client_credentials&client_id=' + $TrProbeClientId +
                                                 '&scope=https%3A%2F%2Fgraph.microsoft.com%2F.default')
        $request = [System.Net.WebRequest]::Create($r.url)
        $request.Method = 'POST'
        $request.ContentType = 'application/x-www-form-urlencoded'
        $request.Timeout = $TimeoutMs
        $request.ReadWriteTimeout = $TimeoutMs
        $request.ContentLength = $body.Length
        $upload = $request.GetRequestStream()
        try { $upload.Write($body, 0, $body.Length) } finally { $upload.Close() }
        $response = $request.GetResponse()
        $r.web_status = 'Success'
    } catch {
        $web = $_.Exception
        while ($null -ne $web -and -not ($web -is [System.Net.WebException])) { $web = $web.InnerException }
        if ($null -ne $web) {
            $r.web_status = [string]$web.Status
            $response = $web.Response
        }
        if ($null -eq $response) { $r.error = Get-TrErrorText $_ }
    }
    if ($null -ne $response) {
        $r.ok = $true
        try {
            $r.http_status = [int]$response.StatusCode
            $reader = New-Object System.IO.StreamReader -ArgumentList $response.GetResponseStream()
            try { $answer = Read-TrAadsts $reader.ReadToEnd() } finally { $reader.Close() }
            $r.aadsts = $answer.code
            $r.aadsts_text = $answer.text
        } catch {
            $r.error = Get-TrErrorText $_
        } finally {
            $response.Close()
        }
    }
    return $r
}

function Get-TrTimeout($Arguments) {
    if ($Arguments.ContainsKey('timeout_ms')) { return [int]$Arguments.timeout_ms }
    return 5000
}
