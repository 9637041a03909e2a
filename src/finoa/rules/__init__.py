"""Default rules shipped with finoa (voucher rules); override with files in finoa.yaml."""
