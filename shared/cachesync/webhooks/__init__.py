"""Webhooks (Standard Webhooks 1.0): subscriptions, signed deliveries, the SSRF guard."""
