"""The Salesforce wing of the sandbox: the REST API, the OAuth server, limits and Outbound Messages."""

from xz_pipeline.sandbox.salesforce.emulator import ReceivedRequest, SalesforceEmulator
from xz_pipeline.sandbox.salesforce.limits import SalesforceLimits

__all__ = ["ReceivedRequest", "SalesforceEmulator", "SalesforceLimits"]
