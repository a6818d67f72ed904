"""The app's views, one module per feature: compare, ablation, matrix, collect."""
