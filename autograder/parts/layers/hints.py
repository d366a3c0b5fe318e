"""Fixes for the errors real student code raises, named from the error text.

Many layers.py files were written for Python 2 or an older numpy (the CS231n
assignments of 2016-2018), or lean on packages the grader does not install.
The exception they raise says what broke but not why, e.g. "'float' object
cannot be interpreted as an integer" for an output size computed with `/`.
hint_for(text) maps such a message to the likely mistake and its fix, or
returns None. The text is the student's own error (type, message and their
frames), so nothing here can reveal expected values.
"""
import re

# numpy aliases removed in NumPy 1.24 (np.int, ...) and 2.0 (np.float_, ...): alias -> replacement
REMOVED_NUMPY = {
    "int": "int", "float": "float", "bool": "bool", "object": "object", "str": "str",
    "long": "int", "unicode": "str", "complex": "complex",
    "float_": "np.float64", "int_": None, "complex_": "np.complex128", "string_": "np.bytes_",
    "unicode_": "np.str_", "NaN": "np.nan", "NAN": "np.nan", "Inf": "np.inf", "Infinity": "np.inf",
    "infty": "np.inf", "PINF": "np.inf", "NINF": "-np.inf", "product": "np.prod",
    "cumproduct": "np.cumprod", "alltrue": "np.all", "sometrue": "np.any", "asfarray": "np.asarray",
    "round_": "np.round", "row_stack": "np.vstack", "trapz": "np.trapezoid", "in1d": "np.isin",
    "mat": "np.asarray", "msort": "np.sort(a, axis=0)",
}
REMOVED_SUBMODULE = {"lib.pad": "np.pad", "lib.stride_tricks.as_strided": None}
PYTHON2 = {
    "xrange": "xrange is Python 2: use range",
    "unicode": "unicode is Python 2: use str",
    "long": "long is Python 2: use int",
    "raw_input": "raw_input is Python 2: use input",
    "reduce": "reduce is no longer a builtin: from functools import reduce (or use np.prod)",
    "izip": "izip is Python 2: use zip",
}
FLOAT_SIZE = ("an output size computed with / is a float in Python 3: use // for sizes, e.g. "
              "H_out = 1 + (H + 2 * pad - HH) // stride")
SHAPE_SPECIFIC_MASK = ("the mask assumes 2-D input (np.random.rand(x.shape[0], x.shape[1]) or "
                       "N, D = x.shape); dropout takes x of any shape: np.random.rand(*x.shape)")
WINDOW_INDEX = ("an index falls outside the window or the image: check how positions inside a "
                "window are computed; e.g. a window's argmax is unravelled with the window's own "
                "shape, np.unravel_index(k, (pool_height, pool_width)), plus the window's start "
                "(i*stride, j*stride)")
ARRAY_TO_SCALAR = ("int() or float() of an array is an error in NumPy 2, even of a 1-element one "
                   "such as a np.where or np.argwhere result: take the element (rows[0]), or find a "
                   "window's maximum with np.unravel_index(np.argmax(window), window.shape)")
DICT_ITER = "dict.{0}() is Python 2: use dict.{1}()"
ASSERT_DIVISIBLE = ("the code asserts that the sizes divide evenly, but they need not: the output "
                    "size is floored, H_out = 1 + (H + 2 * pad - HH) // stride, and the rows and "
                    "columns left over are not covered")
EMPTY_PAD_SLICE = ("dx has no rows or columns left: dx_pad[:, :, pad:-pad, pad:-pad] is empty when "
                   "pad = 0 (-0 is 0); crop with dx_pad[:, :, pad:pad + H, pad:pad + W]")


def _failing_line(text):
    """The source line of the innermost frame of a "your code" traceback in
    text (StepResult.error_text), or ''."""
    if "Traceback (your code" not in text:
        return ""
    lines = [line.strip() for line in text.split("\n") if line.strip()]
    return lines[-1] if lines else ""


def hint_for(text, function=None):
    """The likely cause and fix of an error raised by student code (in
    `function`, when known), or None."""
    if not text:
        return None
    first = text.split("\n")[0]
    if function and function.startswith("dropout"):
        shapes = re.search(r"broadcast together with shapes \(([\d, ]*)\) \(([\d, ]*)\)", first)
        unpacks = "too many values to unpack" in first or "not enough values to unpack" in first
        # An unpacking error is the 2-D habit only where the failing line takes
        # x's shape apart or builds the mask (not, e.g., unpacking the cache).
        if shapes or (unpacks and re.search(r"\.shape|rand", _failing_line(text))):
            return SHAPE_SPECIFIC_MASK
    if (function and function.startswith("max_pool")
            and re.search(r"index -?\d+ is out of bounds for (array|axis)", first)):
        return WINDOW_INDEX
    if (function and function.startswith("conv_backward")
            and re.search(r"could not broadcast input array from shape \([\d, ]*\b0, ?0,?\)", first)):
        return EMPTY_PAD_SLICE
    if first.startswith("raised AssertionError") and re.match(r"assert\b.*%", _failing_line(text)):
        return ASSERT_DIVISIBLE
    match = re.search(r"module 'numpy(\.\w+)*' has no attribute '(\w+)'", first)
    if match:
        sub, name = (match.group(1) or "")[1:], match.group(2)
        if sub:
            full = f"{sub}.{name}"
            if full in REMOVED_SUBMODULE or name == "pad":
                return f"np.{full} is not part of numpy any more: use np.pad"
            return f"np.{full} does not exist in this numpy ({_numpy_version()}); use the np.{name} of numpy's main namespace if there is one"
        if name in REMOVED_NUMPY:
            replacement = REMOVED_NUMPY[name]
            removed_in = "1.24" if name in ("int", "float", "bool", "object", "str", "long",
                                            "unicode", "complex") else "2.0"
            fix = f"use {replacement}" if replacement else "use int or np.int64"
            return f"np.{name} was removed in NumPy {removed_in}: {fix}"
        return f"np.{name} does not exist in this numpy ({_numpy_version()})"
    match = re.search(r"No module named '([\w.]+)'", first)
    if match:
        module = match.group(1)
        return (f"'{module}' is not available to the grader (layers.py may use numpy and the "
                f"standard library): write that part with numpy")
    match = re.search(r"name '(\w+)' is not defined", first)
    if match and match.group(1) in PYTHON2:
        return PYTHON2[match.group(1)]
    match = re.search(r"'dict' object has no attribute '(iteritems|itervalues|iterkeys|has_key)'",
                      first)
    if match:
        old = match.group(1)
        if old == "has_key":
            return "dict.has_key() is Python 2: use `key in d`"
        return DICT_ITER.format(old, old[4:])
    if ("'float' object cannot be interpreted as an integer" in first
            or "slice indices must be integers" in first
            or "only integers, slices (`:`), ellipsis" in first
            or "expected a sequence of integers or a single integer, got" in first
            or "'float' object is not iterable" in first and "range" in text):
        return FLOAT_SIZE
    if ("only 0-dimensional arrays can be converted to Python scalars" in first
            or "only length-1 arrays can be converted to Python scalars" in first
            or "only size-1 arrays can be converted to Python scalars" in first):
        return ARRAY_TO_SCALAR
    if "Missing parentheses in call to 'print'" in text:
        return "print is a function in Python 3: print(...)"
    return None


def _numpy_version():
    import numpy
    return f"numpy {numpy.__version__}"
