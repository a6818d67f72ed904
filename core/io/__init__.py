"""Files on disk: atomic writes, safetensors, output-path checks."""
