# A TestCase both interpreters can run.
#
# Under CPython this is unittest.TestCase, so pytest collects the portable tests as usual. The
# MicroPython unix port ships no unittest, so there a small class with the same assertion methods
# stands in, and tests/portable/run.py finds and runs the tests.

try:
    import unittest

    TestCase = unittest.TestCase
except ImportError:  # MicroPython

    class TestCase:  # type: ignore[no-redef]
        def assertEqual(self, a, b, msg=None):
            if not a == b:
                raise AssertionError(msg or "%r != %r" % (a, b))

        def assertNotEqual(self, a, b, msg=None):
            if a == b:
                raise AssertionError(msg or "%r == %r" % (a, b))

        def assertTrue(self, x, msg=None):
            if not x:
                raise AssertionError(msg or "%r is not true" % (x,))

        def assertFalse(self, x, msg=None):
            if x:
                raise AssertionError(msg or "%r is not false" % (x,))

        def assertIs(self, a, b, msg=None):
            if a is not b:
                raise AssertionError(msg or "%r is not %r" % (a, b))

        def assertIsNone(self, x, msg=None):
            if x is not None:
                raise AssertionError(msg or "%r is not None" % (x,))

        def assertIsNotNone(self, x, msg=None):
            if x is None:
                raise AssertionError(msg or "unexpectedly None")

        def assertIn(self, a, b, msg=None):
            if a not in b:
                raise AssertionError(msg or "%r not in %r" % (a, b))

        def assertNotIn(self, a, b, msg=None):
            if a in b:
                raise AssertionError(msg or "%r in %r" % (a, b))

        def assertLess(self, a, b, msg=None):
            if not a < b:
                raise AssertionError(msg or "%r not less than %r" % (a, b))

        def assertLessEqual(self, a, b, msg=None):
            if not a <= b:
                raise AssertionError(msg or "%r not less than or equal to %r" % (a, b))

        def assertGreaterEqual(self, a, b, msg=None):
            if not a >= b:
                raise AssertionError(msg or "%r not greater than or equal to %r" % (a, b))

        def assertGreater(self, a, b, msg=None):
            if not a > b:
                raise AssertionError(msg or "%r not greater than %r" % (a, b))

        def assertIsInstance(self, x, cls, msg=None):
            if not isinstance(x, cls):
                raise AssertionError(msg or "%r is not an instance of %r" % (x, cls))

        def assertRaises(self, exc, func=None, *args, **kwargs):
            ctx = _RaisesContext(exc)
            if func is None:
                return ctx
            with ctx:
                func(*args, **kwargs)
            return ctx

        def assertRaisesRegex(self, exc, text, func=None, *args, **kwargs):
            # No `re` on every port: the "regex" is matched as a plain substring here.
            ctx = _RaisesContext(exc, text)
            if func is None:
                return ctx
            with ctx:
                func(*args, **kwargs)
            return ctx

        def subTest(self, msg=None, **params):
            return _NullContext()

    class _NullContext:
        def __enter__(self):
            return self

        def __exit__(self, *exc_info):
            return False

    class _RaisesContext:
        def __init__(self, exc, text=None):
            self.expected = exc
            self.text = text
            self.exception = None

        def __enter__(self):
            return self

        def __exit__(self, exc_type, exc_value, tb):
            if exc_type is None:
                raise AssertionError("%s not raised" % (self.expected.__name__,))
            if not issubclass(exc_type, self.expected):
                return False
            if self.text is not None and self.text not in str(exc_value):
                raise AssertionError("%r does not contain %r" % (str(exc_value), self.text))
            self.exception = exc_value
            return True
