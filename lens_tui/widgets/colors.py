"""The two colours that mean "dataset A" and "dataset B" everywhere in the app."""

from __future__ import annotations

A_RGB = (64, 160, 255)
B_RGB = (255, 150, 50)
A_HEX = "#40a0ff"
B_HEX = "#ff9632"
