"""Security: webhook signatures, system tokens, the tamper-evident audit chain (F12)."""
