"""The generic REST ERP connector (`generic-erp`): vouchers posted with an Idempotency-Key and
the hub's reference, found again by that reference.

`manifest`, `client` (deliver, posted-lookup, health), `mapping` (canonical voucher -> wire
format) and `simulator` (an ERP that keeps, forgets or ignores idempotency keys).
"""
