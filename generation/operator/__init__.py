"""The operator page: what each backend is doing for a workspace (services), its views and URLs."""
