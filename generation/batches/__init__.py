"""Variant batches: planning (plan), services, progress, targets, variants, forms, views and URLs."""
