"""Insights: what accounting knows that sales should see (payment risk first). Roles only, like reconcile."""
