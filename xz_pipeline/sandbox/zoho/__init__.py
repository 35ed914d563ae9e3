"""The Zoho CRM wing of the sandbox: the v8 API, its accounts server, credits and notifications."""

from xz_pipeline.sandbox.zoho.accounts import DEFAULT_SCOPES
from xz_pipeline.sandbox.zoho.emulator import ZohoEmulator
from xz_pipeline.sandbox.zoho.limits import ZohoLimits

__all__ = ["DEFAULT_SCOPES", "ZohoEmulator", "ZohoLimits"]
