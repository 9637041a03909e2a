"""Connectors: plug-ins that speak to OA and finance systems (F4)."""
