"""The DingTalk connector (`dingtalk`, 钉钉): approvals in DingTalk's 审批 app (OA-led) or
finoa's approvals pushed to the approvers' DingTalk 待办 (hub-led).

`manifest` (what it is, its config), `crypto` (the callbacks' SHA-1 signature and AES),
`client` (the open API: access token, workflow, todo, contacts; the connector's outbound
side), `inbound` (encrypted `bpms_instance_change` / `bpms_task_change` callbacks, the
`check_url` registration, todo buttons), `mapping` (canonical payloads <-> DingTalk's forms)
and `simulator` (a DingTalk that enforces what DingTalk enforces).
"""
