"""The colours that mean "dataset A" and "dataset B" everywhere in the app, and the grid's grey."""

from __future__ import annotations

A_RGB = (64, 160, 255)
B_RGB = (255, 150, 50)
A_HEX = "#40a0ff"
B_HEX = "#ff9632"
#: Axes, zero lines and boundaries of the charts: visible, but behind A's and B's colours.
GRID_RGB = (120, 120, 120)
GRID_HEX = "#787878"
