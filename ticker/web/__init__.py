"""Answering visitors: routes, prepared responses, queries, security headers, metrics, OpenAPI."""
