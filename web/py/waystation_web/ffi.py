"""Pyodide's foreign-function interface, importable (as stand-ins) under CPython for type checks."""

from typing import Any

__all__ = ["JsException", "to_js"]

try:  # only inside Pyodide
    from pyodide.ffi import JsException, to_js
except ImportError:  # CPython: linting and type checking only; nothing runs this
    JsException = Exception

    def to_js(obj: Any) -> Any:
        """Pyodide's to_js (identity outside Pyodide)."""
        return obj
