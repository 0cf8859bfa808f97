"""The pure core: host facts and the verdict as contracts, the Windows TLS knowledge as data, and the engine that
turns one into the other. Nothing here talks to a host, a kernel or the network; everything above depends on it.

Its only file access is :mod:`.files` (bounded reads, private atomic writes), which the contract loaders use and
every layer above shares, and :mod:`.errors`, the exception tree every layer raises from.
"""
