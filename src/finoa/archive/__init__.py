"""The electronic accounting archive (电子会计档案): packages, 四性检测, catalog, handover."""
