"""The SAP connector (`sap`): vouchers posted as FI documents through
`BAPI_ACC_DOCUMENT_CHECK` -> `BAPI_ACC_DOCUMENT_POST` -> `BAPI_TRANSACTION_COMMIT`, called over
an HTTP gateway in the BAPIs' own shape; found again by `REF_DOC_NO` (BKPF-XBLNR), reversed
with `BAPI_ACC_DOCUMENT_REV_POST`.

`manifest`, `client` (deliver, posted-lookup, health), `mapping` (canonical voucher -> BAPI
parameters, RETURN -> error classes) and `simulator` (a gateway in front of an SAP ledger).

The gateway contract (what a real gateway in front of SAP must offer):

- `GET {base_url}/` with `X-CSRF-Token: Fetch` and basic auth answers a token in
  `X-CSRF-Token` and a session cookie; every POST carries both, or is refused with 403 and
  `X-CSRF-Token: Required`.
- `POST {base_url}/rfc/{FUNCTION}` takes a JSON object of the function module's import
  parameters and tables, and answers a JSON object of its export parameters and tables
  (`RETURN` among them). Calls in one session share one SAP session and so one LUW: a document
  posted there is written only by `BAPI_TRANSACTION_COMMIT` in the same session, and is rolled
  back by `BAPI_TRANSACTION_ROLLBACK` or when the session ends.
"""
