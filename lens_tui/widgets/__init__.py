"""Reusable widgets of the app: metric cards, sparkline rows, plotext panels."""
