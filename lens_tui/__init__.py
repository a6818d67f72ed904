"""Expert Calibration Lens user interfaces: the ``lens`` CLI and the Textual app."""
