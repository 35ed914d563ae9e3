"""The QuickBooks Online wing of the sandbox: the Accounting API (v3), Intuit's OAuth server, limits and webhooks."""

from xz_pipeline.sandbox.quickbooks.emulator import QuickBooksEmulator, realm_for
from xz_pipeline.sandbox.quickbooks.limits import QboLimits

__all__ = ["QboLimits", "QuickBooksEmulator", "realm_for"]
