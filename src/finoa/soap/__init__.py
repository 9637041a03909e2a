"""SOAP 1.1 plumbing shared by finoa's own Web Service and the simulators that speak SOAP."""
