"""The Kingdee K/3 Cloud (金蝶云星空) WebAPI connector (`kingdee`).

K/3 Cloud keeps no idempotency keys, and a Save that carries a voucher's internal id
(`FVOUCHERID`) overwrites that voucher. So the connector never sends an internal id on create,
writes the hub's reference into every voucher it saves, and finds vouchers again by that
reference through `ExecuteBillQuery` before any Save that follows an unknown outcome.

`protocol` (service names, the app-secret signature scheme, answer shapes and the MsgCode
table), `manifest`, `mapping` (canonical voucher -> `GL_VOUCHER` model), `client` (login,
Save -> Submit -> Audit, the posted-lookup, health) and `simulator` (a K/3 Cloud that enforces
sessions, signatures and base data, and overwrites on an internal id as the real one does).
"""
