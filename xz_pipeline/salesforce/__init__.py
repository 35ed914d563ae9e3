"""The Salesforce connector: the crm role over Salesforce's REST API (accounts, contacts, opportunities)."""
