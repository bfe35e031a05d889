# Runs tests/portable/test_*.py on any interpreter, CPython or the MicroPython unix port.
#
# Usage: micropython tests/portable/run.py [test_module ...]
# Prints one line per failure and closes with "N passed, N failed". Exit status 1 on any failure.

import os
import sys

HERE = sys.argv[0].rsplit("/", 1)[0] if "/" in sys.argv[0] else "."
ROOT = HERE + "/../.."
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)

from harness import TestCase  # noqa: E402


def test_modules(names):
    if names:
        return names
    found = [n[:-3] for n in os.listdir(HERE) if n.startswith("test_") and n.endswith(".py")]
    found.sort()
    return found


def main():
    passed = 0
    failed = 0
    for mod_name in test_modules(sys.argv[1:]):
        module = __import__(mod_name)
        for attr in sorted(dir(module)):
            cls = getattr(module, attr)
            if not isinstance(cls, type) or cls is TestCase or not issubclass(cls, TestCase):
                continue
            for meth in sorted(dir(cls)):
                if not meth.startswith("test"):
                    continue
                case = cls()
                if hasattr(case, "setUp"):
                    case.setUp()
                try:
                    getattr(case, meth)()
                    passed += 1
                except Exception as exc:  # report and go on
                    failed += 1
                    print("FAIL %s.%s.%s: %s: %s" % (mod_name, attr, meth, type(exc).__name__, exc))
    print("portable (%s): %d passed, %d failed" % (sys.implementation.name, passed, failed))
    if passed == 0:
        print("no portable test ran")
        return 1
    return 1 if failed else 0


sys.exit(main())
