"""Naming output-size mistakes of convolution and pooling from shapes and
case signatures rather than stored variants: an output one row or column
too large where the sizes do not divide (round() or ceil), a width computed
from a height, a size without the stride, a conv dx cropped by a fixed 1,
and a function right on every case whose heights and widths agree and wrong
only where they differ (a height used for a width somewhere).

Each rule reads only the case's inputs and parameters and the student's own
output, and names a mistake only on an output that is already wrong."""
import math

from autograder.parts.layers.compare import matches

ROUNDED_UP = ("the output has one row or column too many where the sizes do not divide "
              "(round() or ceil of the size, or another formula, rounds up): use integer "
              "division, H' = 1 + (H + 2 * pad - HH) // stride (for pooling, pool_height "
              "and no pad)")
WIDTH_FROM_KERNEL_HEIGHT = ("the width uses HH, the kernel's height: "
                            "W' = 1 + (W + 2 * pad - WW) // stride")
WIDTH_FROM_POOL_HEIGHT = ("the width uses pool_height: W' = 1 + (W - pool_width) // stride")
HEIGHT_FOR_WIDTH = ("a height is used for a width somewhere: the output is right wherever "
                    "heights and widths agree and wrong wherever they differ; use "
                    "W' = 1 + (W + 2 * pad - WW) // stride (pool_width for pooling) for the "
                    "width, and i * W' + j for a row-major position")
WITHOUT_STRIDE = ("H // pool_height is right only when the stride equals the window: "
                  "H' = 1 + (H - pool_height) // stride, W' = 1 + (W - pool_width) // stride")
CROP_FIXED_ONE = ("dx is cropped by 1 on each side whatever the padding: crop pad rows and "
                  "columns, not 1 (crop with dx_pad[:, :, pad:pad + H, pad:pad + W])")
# The names a height-for-width signature may come on top of.
WIDTH_FAMILY = (WIDTH_FROM_KERNEL_HEIGHT, WIDTH_FROM_POOL_HEIGHT, HEIGHT_FOR_WIDTH)


def geometry(case):
    """(H, W, HH, WW, stride, pad) of a conv or pooling case, or None."""
    if "x" not in case.inputs or case.inputs["x"].ndim != 4:
        return None
    H, W = case.inputs["x"].shape[2:]
    if "conv_param" in case.params:
        param = case.params["conv_param"]
        HH, WW = case.inputs["w"].shape[2:]
        return H, W, HH, WW, param["stride"], param["pad"]
    if "pool_param" in case.params:
        param = case.params["pool_param"]
        return H, W, param["pool_height"], param["pool_width"], param["stride"], 0
    return None


def size_mistake(name, actual, expected, case):
    """The likely mistake behind a conv or pooling output (or conv dx) of
    the wrong shape, from the case's sizes, or None."""
    sizes = geometry(case) if case is not None else None
    if (sizes is None or actual.ndim != 4 or expected.ndim != 4
            or actual.shape[:2] != expected.shape[:2]):
        return None
    H, W, HH, WW, stride, pad = sizes
    got = actual.shape[2:]
    if name == "dx":
        if pad != 1 and got == (H + 2 * pad - 2, W + 2 * pad - 2):
            return CROP_FIXED_ONE
        return None
    if name != "out":
        return None
    Ho, Wo = expected.shape[2:]
    common_h, common_w = min(Ho, got[0]), min(Wo, got[1])
    if not matches(actual[:, :, :common_h, :common_w].astype(float),
                   expected[:, :, :common_h, :common_w]):
        return None
    rounds_up = ((H + 2 * pad - HH) % stride != 0, (W + 2 * pad - WW) % stride != 0)
    if all(g in (e, e + 1) and (g == e or up) for g, e, up in zip(got, (Ho, Wo), rounds_up)):
        return ROUNDED_UP
    if got == (Ho, 1 + (W + 2 * pad - HH) // stride):
        return WIDTH_FROM_KERNEL_HEIGHT if "conv_param" in case.params else WIDTH_FROM_POOL_HEIGHT
    if "pool_param" in case.params and got == (H // HH, W // WW):
        return WITHOUT_STRIDE
    if got in ((Ho, Ho), (Wo, Wo)):
        return HEIGHT_FOR_WIDTH
    return None


def asymmetric(case):
    """Whether a case's heights and widths differ anywhere (image, kernel or window, output)."""
    H, W, HH, WW, _, _ = geometry(case)
    return H != W or HH != WW


def rounded_up(case):
    """The ways of rounding the output size that give more rows or columns
    than the floor on this case: a subset of {"ceil", "round", "half_up"}."""
    H, W, HH, WW, stride, pad = geometry(case)
    ways = set()
    for span in (H + 2 * pad - HH, W + 2 * pad - WW):
        floor = 1 + span // stride
        exact = 1 + span / stride
        for way, size in (("ceil", math.ceil(exact)), ("round", round(exact)),
                          ("half_up", math.floor(exact + 0.5))):
            if size > floor:
                ways.add(way)
    return ways


def signature_mistake(outcomes, named):
    """A size mistake recognised from which cases fail, or None:
    HEIGHT_FOR_WIDTH when a forward is right on every case whose heights and
    widths agree and wrong only on some where they differ; ROUNDED_UP (tried
    first) when it is wrong on exactly the cases where one way of rounding the
    size up adds a row or column (it may raise there: the last window is cut
    short).
    outcomes: [(case, correct)]; named: the mistakes already recognised
    (only these families may be among them)."""
    if not outcomes or any(geometry(case) is None for case, _ in outcomes):
        return None
    failing = {id(case) for case, correct in outcomes if not correct}
    if not failing or len(failing) == len(outcomes):
        return None
    # The exact rounding signature first: it is the narrower one.
    if all(message == ROUNDED_UP for message in named):
        for way in ("ceil", "round", "half_up"):
            if failing == {id(case) for case, _ in outcomes if way in rounded_up(case)}:
                return ROUNDED_UP
    if all(message in WIDTH_FAMILY for message in named):
        square = [correct for case, correct in outcomes if not asymmetric(case)]
        if square and all(square) and all(asymmetric(case) for case, correct in outcomes
                                          if not correct):
            return HEIGHT_FOR_WIDTH
    return None
