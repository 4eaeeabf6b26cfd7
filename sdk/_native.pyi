# Type stub of the cffi extension built from sdk/native/ (build_cffi.py): C declarations, untyped in Python.
from typing import Any

ffi: Any
lib: Any
