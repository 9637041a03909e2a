"""The generic REST OA connector (`generic-oa`): approval todos and claim status written back
over REST, claims and decisions received as Standard Webhooks.

`manifest` (what it is and its config), `client` (outbound: deliver, posted-lookup, health,
task reports), `inbound` (verify, parse, reply), `mapping` (canonical payloads -> wire
format) and `simulator` (an OA that speaks the same format, with simulated approvers).
"""
