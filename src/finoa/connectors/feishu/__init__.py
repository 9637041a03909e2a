"""The Feishu/Lark connector (`feishu`, 飞书): approvals in Feishu's 审批 app (OA-led) or
finoa's approvals shown in Feishu's Approval Center as external instances (hub-led).

`manifest` (what it is, its config), `crypto` (Encrypt Key decryption and the
`X-Lark-Signature`), `client` (the open API: tenant access token, approval instances,
external instances, contacts; the connector's outbound side), `inbound` (`url_verification`,
`approval_instance` / `approval_task` events in schema 1.0 and 2.0, quick-approval actions),
`mapping` (canonical payloads <-> Feishu's form widgets) and `simulator` (a Feishu that
enforces what Feishu enforces).
"""
