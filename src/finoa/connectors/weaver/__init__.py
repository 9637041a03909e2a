"""Weaver e-cology (泛微 E9): E9 REST with the RSA token handshake, the SOAP WorkflowService,
unified todo (统一待办) for hub-led approvals, HRM master data, and a simulator."""
