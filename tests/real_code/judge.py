"""An independent judge of a CS231n-style layers.py, for measuring the grader
(see README.md here): torch computes every expected value, on random inputs
the grader never sees, and the verdict per function is 'right' or 'wrong'.

    python judge.py LAYERS_PY [FUNCTIONS_JSON]  ->  JSON {function: verdict, ...}

Verdicts: 'right', 'wrong', 'absent', or 'borderline' (right, but its time is
within a factor 2 of the limit: whether the grader's clock stops it depends
on the machine's load).

It applies the course contract where torch alone is silent:
- max-pool backward with tied maxima: exactly one tied position (any) gets
  the window's gradient (torch routes to one; the handout says so);
- a forward's mistake is charged once, to the forward: a backward is judged
  only on inputs where the student's own forward ran, and a backward that
  is the exact derivative of the student's own (wrong) forward is right; a
  backward that can be judged on no input is 'wrong';
- dropout: p is the probability of keeping a unit (inverted dropout);
- time: a call on an input of the size the grader's largest cases have must
  finish within the grader's per-call limit (10 s scaled to this machine's
  speed by the grader's own calibration, as the student README states).
Student code runs in this process: run it in a throwaway process (measure.py does).
"""
import contextlib
import importlib.util
import io
import json
import signal
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)
FUNCTIONS = ["conv_forward", "conv_backward", "max_pool_forward", "max_pool_backward",
             "avg_pool_forward", "avg_pool_backward", "batchnorm_forward", "batchnorm_backward",
             "spatial_batchnorm_forward", "spatial_batchnorm_backward", "dropout_forward",
             "dropout_backward"]
# (x shape, w shape, stride, pad): square and not, pad 0 and not, strides 1-3
CONV_CASES = [((2, 3, 5, 5), (2, 3, 3, 3), 1, 1), ((2, 2, 7, 9), (3, 2, 3, 2), 2, 1),
              ((1, 1, 4, 6), (1, 1, 2, 3), 1, 0), ((2, 3, 8, 8), (4, 3, 4, 4), 2, 0),
              ((3, 2, 6, 5), (2, 2, 3, 3), 3, 2), ((2, 3, 7, 7), (2, 3, 3, 3), 2, 0),
              ((1, 2, 6, 6), (3, 2, 1, 1), 1, 0)]     # 1x1 kernel: x[:, :, i:-HH+1] is empty
# (x shape, pool height, pool width, stride)
POOL_CASES = [((2, 3, 4, 4), 2, 2, 2), ((2, 2, 6, 9), 3, 3, 3), ((1, 2, 5, 7), 2, 3, 1),
              ((2, 1, 7, 5), 3, 2, 2), ((2, 2, 8, 6), 2, 2, 1),
              ((1, 2, 8, 8), 3, 3, 2)]    # 1 + 5/2 = 3.5: round() and ceil give 4, floor 3
TIE_CASES = [((2, 3, 6, 6), 2, 2, 2), ((1, 2, 6, 9), 3, 3, 3)]
CALL_LIMIT = 10.0    # seconds per call on the reference machine (the grader's CALL_TIMEOUT)


def load(path):
    spec = importlib.util.spec_from_file_location("student_layers", path)
    module = importlib.util.module_from_spec(spec)
    with contextlib.redirect_stdout(io.StringIO()):
        spec.loader.exec_module(module)
    return module


def close(got, want, tol=1e-6):
    try:
        got = np.asarray(got, dtype=np.float64)
    except (TypeError, ValueError):
        return False
    want = np.asarray(want)
    return (got.shape == want.shape and bool(np.all(np.isfinite(got)))
            and float(np.max(np.abs(got - want), initial=0)) <= tol * (1 + float(np.max(np.abs(want)))))


def leaf(array):
    return torch.tensor(array, requires_grad=True)


def own_forward(forward, *args):
    """The student's forward's (out, cache), or None where it raises: the
    backward is not judged on that input."""
    try:
        return forward(*args)
    except Exception:
        return None


def each_right(true_gradients, forward, arrays, dout, gradients):
    """Each gradient is the true one or the exact derivative of the student's
    own forward (judged per output, as the grader scores them: a backward
    whose dgamma follows the student's eps-less cache while its dx is true is
    right, the mistake being the forward's)."""
    return all(close(g, t) or own_derivative(forward, arrays, dout, [g], only=k)
               for k, (g, t) in enumerate(zip(gradients, true_gradients)))


def own_derivative(forward, arrays, dout, gradients, h=1e-6, only=None):
    """Whether gradients are the derivatives of sum(forward(*arrays) * dout)
    with respect to each of arrays (central differences); with only=k, the
    one gradient given is that with respect to arrays[k]."""
    for k, gradient in (enumerate(gradients) if only is None else [(only, gradients[0])]):
        numeric = np.zeros_like(arrays[k])
        for index in np.ndindex(*arrays[k].shape):
            values = []
            for step in (h, -h):
                moved = [a.copy() for a in arrays]
                moved[k][index] += step
                values.append(np.sum(np.asarray(forward(*moved), dtype=np.float64) * dout))
            numeric[index] = (values[0] - values[1]) / (2 * h)
        if not close(gradient, numeric, tol=1e-5):
            return False
    return True


def judge_conv(module, name, rng):
    for x_shape, w_shape, stride, pad in CONV_CASES:
        x, w, b = rng.randn(*x_shape), rng.randn(*w_shape), rng.randn(w_shape[0])
        param = {"stride": stride, "pad": pad}
        tx, tw, tb = leaf(x), leaf(w), leaf(b)
        out = F.conv2d(tx, tw, tb, stride=stride, padding=pad)
        if name == "conv_forward":
            got, _ = module.conv_forward(x.copy(), w.copy(), b.copy(), dict(param))
            yield close(got, out.detach().numpy())
            continue
        forward_result = own_forward(module.conv_forward, x.copy(), w.copy(), b.copy(), dict(param))
        if forward_result is None:
            yield None
            continue
        cache = forward_result[1]
        dout = rng.randn(*out.shape)
        if np.shape(forward_result[0]) != tuple(out.shape):
            yield None      # the forward's size is wrong: charged to the forward
            continue
        out.backward(torch.tensor(dout))
        dx, dw, db = module.conv_backward(dout.copy(), cache)
        yield each_right([tx.grad.numpy(), tw.grad.numpy(), tb.grad.numpy()],
                         lambda *a: module.conv_forward(*a, dict(param))[0], [x, w, b], dout, [dx, dw, db])


def one_max_each(x, dx, dout, ph, pw, stride):
    """Every window's dout went to exactly one of its maximal positions
    (non-overlapping windows), and nothing went anywhere else."""
    dx = np.asarray(dx, dtype=np.float64)
    if dx.shape != x.shape:
        return False
    expected_total = np.zeros_like(x)
    for i in range(dout.shape[2]):
        for j in range(dout.shape[3]):
            rows, cols = slice(i * stride, i * stride + ph), slice(j * stride, j * stride + pw)
            xw, dw = x[:, :, rows, cols], dx[:, :, rows, cols]
            is_max = xw == xw.max(axis=(2, 3), keepdims=True)
            nonzero = np.abs(dw) > 1e-12
            if np.any(nonzero & ~is_max) or np.any(nonzero.sum(axis=(2, 3)) != 1):
                return False
            expected_total[:, :, rows, cols] = 1
            if not close(dw.sum(axis=(2, 3)), dout[:, :, i, j]):
                return False
    return not np.any(np.abs(dx[expected_total == 0]) > 1e-12)


def judge_pool(module, name, rng):
    kind = "max" if name.startswith("max") else "avg"
    torch_pool = F.max_pool2d if kind == "max" else F.avg_pool2d
    forward = getattr(module, f"{kind}_pool_forward")
    for x_shape, ph, pw, stride in POOL_CASES:
        x = rng.randn(*x_shape)
        param = {"pool_height": ph, "pool_width": pw, "stride": stride}
        tx = leaf(x)
        out = torch_pool(tx, (ph, pw), stride=stride)
        if name.endswith("forward"):
            got, _ = forward(x.copy(), dict(param))
            yield close(got, out.detach().numpy())
            continue
        forward_result = own_forward(forward, x.copy(), dict(param))
        dout = rng.randn(*out.shape)
        if forward_result is None or np.shape(forward_result[0]) != tuple(out.shape):
            yield None      # the forward failed or its size is wrong: charged to the forward
            continue
        cache = forward_result[1]
        out.backward(torch.tensor(dout))
        dx = getattr(module, name)(dout.copy(), cache)
        yield (close(dx, tx.grad.numpy())
               or own_derivative(lambda a: forward(a, dict(param))[0], [x], dout, [dx]))
    if name == "max_pool_backward":
        for x_shape, ph, pw, stride in TIE_CASES:
            x = rng.randint(0, 3, size=x_shape).astype(np.float64)
            param = {"pool_height": ph, "pool_width": pw, "stride": stride}
            forward_result = own_forward(forward, x.copy(), dict(param))
            dout = rng.randn(x_shape[0], x_shape[1], (x_shape[2] - ph) // stride + 1,
                             (x_shape[3] - pw) // stride + 1)
            if forward_result is None:
                yield None
                continue
            cache = forward_result[1]
            yield one_max_each(x, module.max_pool_backward(dout.copy(), cache), dout, ph, pw, stride)


def judge_batchnorm(module, name, rng):
    spatial = name.startswith("spatial")
    forward = getattr(module, name.replace("backward", "forward"))
    axes = (0, 2, 3) if spatial else (0,)
    for shape in ([(4, 3, 5, 3), (2, 4, 3, 6)] if spatial else [(6, 5), (10, 3)]):
        channels = shape[1]
        broadcast = (1, channels, 1, 1) if spatial else (1, channels)
        x = 3 * rng.randn(*shape) + 2
        gamma, beta = rng.randn(channels), rng.randn(channels)
        running_mean, running_var = rng.randn(channels), rng.rand(channels) + 0.5
        for eps, momentum in ((1e-5, 0.9), (1e-3, 0.7)):
            tx, tg, tb = leaf(x), leaf(gamma), leaf(beta)
            mean = tx.mean(dim=axes, keepdim=True)
            var = ((tx - mean) ** 2).mean(dim=axes, keepdim=True)
            out = (tx - mean) / torch.sqrt(var + eps) * tg.reshape(broadcast) + tb.reshape(broadcast)
            param = {"mode": "train", "eps": eps, "momentum": momentum,
                     "running_mean": running_mean.copy(), "running_var": running_var.copy()}
            if name.endswith("forward"):
                got, _ = forward(x.copy(), gamma.copy(), beta.copy(), param)
                mean_np, var_np = mean.detach().numpy().reshape(-1), var.detach().numpy().reshape(-1)
                yield (close(got, out.detach().numpy())
                       and close(param["running_mean"], momentum * running_mean + (1 - momentum) * mean_np)
                       and close(param["running_var"], momentum * running_var + (1 - momentum) * var_np))
                test = {"mode": "test", "eps": eps, "momentum": momentum,
                        "running_mean": running_mean.copy(), "running_var": running_var.copy()}
                got, _ = forward(x.copy(), gamma.copy(), beta.copy(), test)
                want = ((x - running_mean.reshape(broadcast)) / np.sqrt(running_var.reshape(broadcast) + eps)
                        * gamma.reshape(broadcast) + beta.reshape(broadcast))
                yield (close(got, want) and close(test["running_mean"], running_mean)
                       and close(test["running_var"], running_var))
            else:
                forward_result = own_forward(forward, x.copy(), gamma.copy(), beta.copy(), param)
                dout = rng.randn(*shape)
                fresh = {"running_mean": running_mean.copy(), "running_var": running_var.copy()}
                if forward_result is None:
                    # The API lets bn_param start without running statistics: judge
                    # the backward there when the forward only runs that way.
                    param = {"mode": "train", "eps": eps, "momentum": momentum}
                    forward_result = own_forward(forward, x.copy(), gamma.copy(), beta.copy(), dict(param))
                    fresh = {}
                if forward_result is None:
                    yield None
                    continue
                cache = forward_result[1]
                out.backward(torch.tensor(dout))
                dx, dgamma, dbeta = getattr(module, name)(dout.copy(), cache)
                own = lambda *a: forward(*a, {**param, **{k: v.copy() for k, v in fresh.items()}})[0]
                yield each_right([tx.grad.numpy(), tg.grad.numpy(), tb.grad.numpy()],
                                 own, [x, gamma, beta], dout, [dx, dgamma, dbeta])


def judge_dropout(module, name, rng):
    for shape, keep in (((50, 40), 0.3), ((8, 6, 10, 12), 0.8), ((30, 7, 11), 0.55)):
        x = rng.rand(*shape) + 0.5
        param = {"mode": "train", "p": keep}
        if name == "dropout_forward":
            out, _ = module.dropout_forward(x.copy(), dict(param))
        else:
            forward_result = own_forward(module.dropout_forward, x.copy(), param)
            if forward_result is None:
                yield None
                continue
            out, cache = forward_result
        out = np.asarray(out, dtype=np.float64)
        if out.shape != x.shape:
            yield False if name == "dropout_forward" else None   # charged to the forward
            continue
        kept = out != 0
        if name == "dropout_forward":
            spread = 5 * np.sqrt(keep * (1 - keep) / kept.size)
            yield close(out[kept], x[kept] / keep) and abs(kept.mean() - keep) <= spread
            test_out, _ = module.dropout_forward(x.copy(), {"mode": "test", "p": keep})
            yield close(test_out, x)
        else:
            dout = rng.randn(*shape)
            yield close(module.dropout_backward(dout.copy(), cache), dout * out / x)
            test_result = own_forward(module.dropout_forward, x.copy(), {"mode": "test", "p": keep})
            yield None if test_result is None else close(module.dropout_backward(dout.copy(), test_result[1]), dout)


def fast_enough(module, name, limit):
    """The time contract, on inputs as large as the grader's largest cases:
    True, False, or None when it takes between half and twice the limit."""
    rng = np.random.RandomState(2)
    family = name.split("_")[0]
    if family == "conv":
        x, w, b = rng.randn(4, 3, 16, 16), rng.randn(8, 3, 3, 3), rng.randn(8)
        make = lambda: module.conv_forward(x.copy(), w.copy(), b.copy(), {"stride": 1, "pad": 1})
    elif family in ("max", "avg"):
        x = rng.randn(2, 3, 32, 32)
        param = {"pool_height": 3, "pool_width": 3, "stride": 2}
        make = lambda: getattr(module, f"{family}_pool_forward")(x.copy(), dict(param))
    else:
        return True      # batch norm and dropout: no loops over pixels in any file seen
    started = time.monotonic()
    out, cache = make()
    if name.endswith("backward"):
        started = time.monotonic()
        getattr(module, name)(np.ones(np.shape(out)), cache)
    seconds = time.monotonic() - started
    # Within a factor 2 of the limit, the verdict depends on the machine's load.
    return True if seconds <= limit / 2 else False if seconds > 2 * limit else None


JUDGES = {"conv": judge_conv, "pool": judge_pool, "batchnorm": judge_batchnorm, "dropout": judge_dropout}


class InputsWatched:
    """The handout's contract: arrays are never modified in place. Wraps the
    module's functions; modified[name] says whether a call of name changed
    one of its array arguments (charged to that function only)."""

    def __init__(self, module):
        self.modified = {}
        for name in FUNCTIONS:
            if hasattr(module, name):
                setattr(module, name, self.watch(name, getattr(module, name)))

    def watch(self, name, function):
        def watched(*args):
            before = [np.copy(a) if isinstance(a, np.ndarray) else None for a in args]
            result = function(*args)
            if any(b is not None and (a.shape != b.shape or not np.array_equal(a, b, equal_nan=True))
                   for a, b in zip(args, before)):
                self.modified[name] = True
            return result
        return watched


def verdict(module, name):
    """'right' if every judged input agrees (at least one judged) and no call
    of name modified its array arguments, else 'wrong'."""
    family = next(key for key in JUDGES if key in name)
    watched = InputsWatched(module) if not hasattr(module, "_inputs_watched") else module._inputs_watched
    module._inputs_watched = watched
    judged = 0
    for seed in (0, 1):
        for ok in JUDGES[family](module, name, np.random.RandomState(seed)):
            if ok is None:          # not judged on this input: its forward failed
                continue
            if not ok:
                return "wrong"
            judged += 1
    return "right" if judged and not watched.modified.get(name) else "wrong"


def _timeout(*_):
    raise TimeoutError("took longer than 60 s")


def call_limit():
    """CALL_LIMIT scaled by the grader's speed calibration of this machine."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from autograder import speed
    return CALL_LIMIT * speed.slowness()[0]


def main(argv):
    limit = call_limit()
    present = json.loads(argv[2]) if len(argv) > 2 else FUNCTIONS
    verdicts = {}
    try:
        module = load(argv[1])
    except BaseException as error:
        module, verdicts["_import_error"] = None, repr(error)[:200]
    for name in FUNCTIONS:
        if name not in present:
            verdicts[name] = "absent"
            continue
        if module is None:
            verdicts[name] = "wrong"
            continue
        signal.signal(signal.SIGALRM, _timeout)
        signal.alarm(60)
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                verdicts[name] = verdict(module, name)
                fast = fast_enough(module, name, limit) if verdicts[name] == "right" else True
                if not fast:
                    verdicts[name] = "wrong" if fast is False else "borderline"
                    verdicts["_time_" + name] = f"limit {limit:.1f} s"
        except BaseException as error:
            verdicts[name], verdicts["_error_" + name] = "wrong", repr(error)[:200]
        finally:
            signal.alarm(0)
    print(json.dumps(verdicts))


if __name__ == "__main__":
    main(sys.argv)
