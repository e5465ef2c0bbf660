"""Spend per campaign, backend and month, and budget checks (services), and the spend page (views)."""
