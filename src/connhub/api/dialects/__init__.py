"""The HTTP dialects Connhub speaks; each folder is one: routes (thin), translate (pure), shapes (OpenAPI)."""
