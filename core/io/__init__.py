"""Files on disk: the one atomic writer, the safetensors codec, output-path checks."""
