"""marlstack: sim-to-real multi-robot control stack.

The user's layout keeps sim/, policies/, controllers/, ros_nodes/, hardware/, bench/, targets/ and replay/ at the
top of the repository; they are imported as marlstack.sim, marlstack.policies, ... (setup.py's package_dir maps
them so when installed). In a source checkout the repository root joins this package's search path, so the same
names resolve to those folders without an install.
"""
from pathlib import Path

__version__ = "0.1.0"

_ROOT = Path(__file__).resolve().parent.parent
if (_ROOT / "package.xml").is_file() and (_ROOT / "sim" / "__init__.py").is_file():
    __path__.append(str(_ROOT))
