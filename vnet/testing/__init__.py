"""Helpers for testing with vnet: a pytest plugin that brings labs up and always tears them down."""
