"""QuickBooks Online: the books role over the QBO Accounting API (v3)."""
