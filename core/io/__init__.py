"""Byte-level I/O every format shares: the one atomic writer and the safetensors codec."""
