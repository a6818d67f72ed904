"""Expert Calibration Lens core: bundles, metrics, masks and collection.

Importing ``core`` must stay cheap and torch-free: the browsing path (CLI
analysis commands, the TUI) only needs numpy and safetensors. Modules that need
torch or transformers import them lazily, inside functions.
"""

from core.errors import LensError

__version__ = "0.1.0"

__all__ = ["LensError", "__version__"]
