"""Reusable widgets of the app: metric cards, sparkline rows, chart panels."""
