"""The Xero wing of the sandbox: the accounting API, its identity server, limits and webhooks."""

from xz_pipeline.sandbox.xero.emulator import XeroEmulator
from xz_pipeline.sandbox.xero.limits import XeroLimits

__all__ = ["XeroEmulator", "XeroLimits"]
