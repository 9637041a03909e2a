"""The WeCom connector (`wecom`, 企业微信): approvals in WeCom's 审批 app, either the claim's
own approval (OA-led) or one approval per finoa task, addressed to its approver (hub-led).

`manifest` (what it is, its config), `crypto` (the callbacks' SHA-1 signature, AES and XML
envelopes), `client` (the server API: access token, oa/applyevent, oa/getapprovaldetail,
oa/getapprovalinfo, contacts; the connector's outbound side), `inbound` (encrypted
`sys_approval_change` callbacks and the URL check), `mapping` (canonical payloads <->
approval controls) and `simulator` (a WeCom that enforces what WeCom enforces).
"""
