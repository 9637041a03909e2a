"""The pure core: money, claims, vouchers, approvers. No I/O, no frameworks."""
