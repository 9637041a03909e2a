"""Yonyou (用友) connectors: `yonyou-u8` (U8 OpenAPI, JSON) and `yonyou-nc` (NC / NCC
`ufinterface` voucher XML over HTTP).

`manifest` (both manifests and config schemas), `mapping` (canonical voucher -> each wire
format, the result XML), `client` (deliver, posted-lookup, health), `simulator` (U8 and NC
simulators over one SQLite ledger) and `command` (`finoa sim yonyou`).
"""
