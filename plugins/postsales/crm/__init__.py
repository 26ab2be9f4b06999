"""Pushing segment tags back to the CRM: adapters (sql, Salesforce, HubSpot), the diff-only sync."""
