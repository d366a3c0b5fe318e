"""Shared checkpoints across a class (issue #20; a TA tool, never a score):
which submissions hand in the same convnet.pt / fcnet.pt, or a near copy of
another's (fine-tuned a little, noised, its units permuted).

Each checkpoint is loaded in this (staff) process as a state_dict only
(``torch.load(weights_only=True)``: no student object is ever unpickled); a
file that does not load that way is reported, never a crash. Then:

1. bucket by model and architecture signature (the sorted names, shapes and
   dtypes of its tensors): only same-architecture checkpoints are compared;
2. cheap fingerprints, kept instead of the tensors, pick candidate pairs:
   the same sha256, a count sketch per weight layer (its cosine follows the
   layer's cosine: one matrix product for the whole bucket; of the
   displacements from the seed-0 init when both models started from it),
   SimHash codes of the first layer's units (permutation-proof);
3. each candidate pair gets the full rule (``compare``), calibrated in
   README.md "Shared checkpoints": per Conv/Linear weight layer the cosine of
   the two tensors, or of their displacements from the common
   ``torch.manual_seed(0)`` initialization when both started from it (the
   notebook and train.py seed it, so independent students share it), also
   after matching each unit of one to the most similar unit of the other.

A flag is a lead for the staff to look at, not a verdict.
"""
import hashlib
import math
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

import torch

from autograder.layout import CHECKPOINTS

RUNNING = ("running_mean", "running_var", "num_batches_tracked")
SKETCH_DIM = 256
SIMHASH_BITS = 16
CANDIDATE_SKETCH = 0.5      # any layer's sketch cosine: a candidate pair (not both from the seed-0 init)
CANDIDATE_SIMHASH = 0.25    # share of first-layer unit codes in common: the same
CANDIDATE_MOVED = 0.6       # both from the seed-0 init: median layer sketch cosine of the displacements,
CANDIDATE_MOVED_LAYER = 0.8  # or any non-final layer's (the flags' 0.75 and 0.9, less the sketch's error)
SEED0_MIN = 0.2             # median layer cosine to the seed-0 init above which a model started from it
FLAG_MEDIAN = 0.5           # median layer score flagging a pair (different starts)
FLAG_MEDIAN_SHARED = 0.75   # the same when both started from the seed-0 init (displacements compared)
FLAG_LAYER = 0.9            # any non-final layer's score: a partial copy


@dataclass
class Checkpoint:
    submission: str
    model: str                      # "ConvNet" or "FCNet"
    sha256: str = ""
    state: dict = None              # name -> tensor while needed (None: not loaded, or it did not load)
    problem: str = None
    path: Path = None
    signature: str = ""             # the architecture: hash of the sorted (name, shape, dtype)
    seed0: bool = False             # kept much of the seed-0 init (from_seed0)
    sketch: torch.Tensor = None     # (weight layers, SKETCH_DIM) unit rows, kept after the tensors go
    moved: torch.Tensor = None      # the same of the displacement from the seed-0 init (seed0 only)
    codes: frozenset = frozenset()  # SimHash codes of the first layer's units

    def fingerprint(self, cache):
        """Fill signature, seed0, sketch, moved and codes from the tensors
        (cache: per architecture, the sketch hashes and the init's sketch)."""
        items = sorted((k, tuple(v.shape), str(v.dtype)) for k, v in self.state.items())
        self.signature = hashlib.sha256(repr(items).encode()).hexdigest()[:16]
        architecture = cache.setdefault(self.signature, {"hashes": {}})
        init = seed0_init(self.state)
        if "init" not in architecture:
            architecture["init"] = sketch(init, architecture["hashes"])
        raw = sketch(self.state, architecture["hashes"])
        self.seed0 = from_seed0(self.state, init)
        self.sketch = _unit(raw)
        self.moved = _unit(raw - architecture["init"]) if self.seed0 else None
        self.codes = frozenset(unit_codes(self.state))
        return self


@dataclass
class Pair:
    model: str
    first: str                      # submission names, first < second
    second: str
    evidence: str                   # "same file", "identical weights" or the per-layer similarities
    layers: dict = field(default_factory=dict)   # weight layer -> score (near copies)
    shared_init: bool = False       # both started from the seed-0 init: displacements compared


@dataclass
class Findings:
    pairs: list                     # Pair, flagged only
    problems: list                  # (submission, file, why it was not compared)
    compared: int = 0               # checkpoints compared
    candidates: int = 0             # pairs the fingerprints sent to the full comparison

    def shared_with(self, submission):
        """"ConvNet: b (same file); FCNet: c (near copy ...)" for one submission, "" if none."""
        found = []
        for pair in self.pairs:
            if submission in (pair.first, pair.second):
                other = pair.second if submission == pair.first else pair.first
                found.append(f"{pair.model}: {other} ({pair.evidence})")
        return "; ".join(found)


def load_checkpoint(path, submission, model):
    """A Checkpoint of the file at path: its tensors, or why it cannot be compared."""
    data = Path(path).read_bytes()
    found = Checkpoint(submission, model, hashlib.sha256(data).hexdigest(), path=Path(path))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        found.problem = f"does not load as a state_dict with weights_only=True ({type(exc).__name__})"
        return found
    if not isinstance(state, dict) or not state or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        found.problem = "is not a state_dict (a mapping of tensor names to tensors)"
    elif not weight_keys(state):
        found.problem = "holds no weight layer (no floating tensor of 2 or more dimensions)"
    else:
        found.state = state
    return found


def weight_keys(state):
    """The Conv/Linear weights: floating tensors of 2 or more dimensions, in state_dict order."""
    return [k for k, v in state.items() if v.is_floating_point() and v.ndim >= 2 and v.numel()]


def cosine(a, b):
    a, b = a.double().flatten(), b.double().flatten()
    return float(a @ b / (a.norm() * b.norm() + 1e-30))


# -- the common initialization ----------------------------------------------------------------

def seed0_init(state):
    """The weight layers as ``torch.manual_seed(0)`` then building the model
    initializes them, rebuilt from the checkpoint's shapes alone (no student
    code): nn.Conv2d and nn.Linear draw their weight, then their bias, in the
    order the modules were made, which is the state_dict's order."""
    generator = torch.Generator().manual_seed(0)
    init = {}
    for key in weight_keys(state):
        shape = state[key].shape
        weight = torch.empty(shape)
        torch.nn.init.kaiming_uniform_(weight, a=math.sqrt(5), generator=generator)
        init[key] = weight
        bias = key[:-len("weight")] + "bias" if key.endswith("weight") else None
        if bias in state and state[bias].shape == shape[:1]:
            bound = 1 / math.sqrt(math.prod(shape[1:]))
            torch.empty(shape[:1]).uniform_(-bound, bound, generator=generator)
    return init


def from_seed0(state, init):
    """Whether the model kept much of the seed-0 init (median layer cosine above SEED0_MIN)."""
    scores = sorted(cosine(state[k], init[k]) for k in init)
    return scores[len(scores) // 2] > SEED0_MIN


# -- unit alignment (undoes permuted hidden units) ---------------------------------------------

def _chain(state):
    """[(weight key, [1-D keys of the same units])] in order."""
    chain = []
    for key, value in state.items():
        if key in weight_keys(state):
            chain.append((key, []))
        elif chain and value.ndim == 1 and value.shape[0] == state[chain[-1][0]].shape[0]:
            chain[-1][1].append(key)
    return chain


def _permute_inputs(weight, perm, units):
    if weight.shape[1] == units:
        return weight[:, perm]
    block = weight.shape[1] // units
    return weight[:, (perm[:, None] * block + torch.arange(block)[None, :]).flatten()]


def aligned(first, second):
    """second's weight layers with each hidden unit matched to first's most
    similar one (the first layer's inputs are pixels, the last layer's units
    classes: neither is permuted), the match carried into the next layer."""
    out, perm, units = {}, None, None
    chain = [key for key, _ in _chain(first)]
    for position, key in enumerate(chain):
        a, b = first[key].double(), second[key].double()
        if perm is not None and b.shape[1] % units == 0:
            b = _permute_inputs(b, perm, units)
        if position < len(chain) - 1:
            rows_a, rows_b = a.flatten(1), b.flatten(1)
            similarity = ((rows_a / (rows_a.norm(dim=1, keepdim=True) + 1e-30))
                          @ (rows_b / (rows_b.norm(dim=1, keepdim=True) + 1e-30)).T)
            perm, units = similarity.argmax(dim=1), a.shape[0]
            b = b[perm]
        out[key] = b
    return out


# -- fingerprints -------------------------------------------------------------------------------

def _sketch_hash(key, shape, numel):
    seed = int(hashlib.sha256(f"{key}{tuple(shape)}".encode()).hexdigest()[:8], 16)
    generator = torch.Generator().manual_seed(seed)
    return (torch.randint(0, SKETCH_DIM, (numel,), generator=generator),
            torch.randint(0, 2, (numel,), generator=generator).double() * 2 - 1)


def sketch(state, hashes):
    """(layers, SKETCH_DIM): a count sketch per weight layer, linear in the
    weights (hashes: cached per architecture); its rows' cosines follow the layers'."""
    rows = []
    for key in weight_keys(state):
        if key not in hashes:
            hashes[key] = _sketch_hash(key, state[key].shape, state[key].numel())
        bucket, sign = hashes[key]
        rows.append(torch.zeros(SKETCH_DIM, dtype=torch.float64).index_add_(0, bucket, state[key].double().flatten() * sign))
    return torch.stack(rows)


def _unit(rows):
    return rows / (rows.norm(dim=1, keepdim=True) + 1e-30)


def unit_codes(state):
    """SimHash codes (SIMHASH_BITS random projections' signs) of the first weight layer's units."""
    rows = state[weight_keys(state)[0]].double().flatten(1)
    projection = torch.randn(rows.shape[1], SIMHASH_BITS, generator=torch.Generator().manual_seed(0),
                             dtype=torch.float64)
    return set(((rows @ projection > 0).long() * (2 ** torch.arange(SIMHASH_BITS))).sum(1).tolist())


def candidate_pairs(bucket):
    """Index pairs (i < j) of the bucket's fingerprinted checkpoints worth
    the full comparison: one matrix product over the whole bucket. Two models
    from the seed-0 init (most of a class following the notebook) are compared
    by their displacements from it, as the full rule does."""
    n = len(bucket)
    raw = torch.einsum("ild,jld->ijl", *[torch.stack([c.sketch for c in bucket])] * 2)
    candidate = raw.amax(dim=2) >= CANDIDATE_SKETCH
    seed0 = torch.tensor([c.seed0 for c in bucket])
    both = seed0[:, None] & seed0[None, :]
    if seed0.sum() > 1:
        moved = torch.stack([c.moved if c.seed0 else torch.zeros_like(c.sketch) for c in bucket])
        moved = torch.einsum("ild,jld->ijl", moved, moved)
        close = moved.median(dim=2).values >= CANDIDATE_MOVED
        if moved.shape[2] > 1:
            close |= moved[:, :, :-1].amax(dim=2) >= CANDIDATE_MOVED_LAYER
        candidate = torch.where(both, close, candidate)
    candidate, both, found = candidate.tolist(), both.tolist(), []
    for i, j in combinations(range(n), 2):
        if bucket[i].sha256 == bucket[j].sha256 or candidate[i][j]:
            found.append((i, j))
        elif not both[i][j]:
            shared = len(bucket[i].codes & bucket[j].codes) / max(1, min(len(bucket[i].codes), len(bucket[j].codes)))
            if shared >= CANDIDATE_SIMHASH:
                found.append((i, j))
    return found


# -- the full rule ------------------------------------------------------------------------------

def compare(first, second, model, init=None):
    """The Pair of two checkpoints of one architecture when the rule flags
    them, else None. init: their seed0_init (computed when not given)."""
    names = sorted([first.submission, second.submission])
    if first.sha256 == second.sha256:
        return Pair(model, *names, "same file")
    a, b = first.state, second.state
    if all(torch.equal(a[k], b[k]) for k in a):
        return Pair(model, *names, "identical weights")
    init = init or seed0_init(a)
    shared = from_seed0(a, init) and from_seed0(b, init)
    base = init if shared else {k: 0 for k in init}
    matched = aligned(a, b)
    plain = {k: cosine(a[k] - base[k], b[k] - base[k]) for k in init}
    after_matching = {k: cosine(a[k] - base[k], matched[k] - base[k]) for k in init}
    median = max(_median(plain.values()), _median(after_matching.values()))
    partial = max(list(plain.values())[:-1], default=-1.0)
    if median < (FLAG_MEDIAN_SHARED if shared else FLAG_MEDIAN) and partial < FLAG_LAYER:
        return None
    scores = {k: round(max(plain[k], after_matching[k]), 3) for k in init}
    what = "displacements from the common seed-0 init" if shared else "weights"
    evidence = (f"near copy: per-layer cosine of the {what}, median {median:.2f}"
                + (", after matching units" if _median(after_matching.values()) > _median(plain.values()) + 0.1
                   else "") + f"; {', '.join(f'{k} {v:.2f}' for k, v in scores.items())}")
    return Pair(model, *names, evidence, scores, shared)


def _median(values):
    values = sorted(values)
    middle = len(values) // 2
    return values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2


def find_copies(folders):
    """Findings over {submission name: its folder}: every flagged pair, per
    model and architecture. Only fingerprints stay in memory; the tensors of
    a candidate pair are loaded again for its comparison."""
    problems, by_architecture, cache = [], {}, {}
    for submission, folder in sorted(folders.items()):
        for checkpoint in _checkpoints(submission, folder, problems):
            checkpoint.fingerprint(cache)
            checkpoint.state = None
            by_architecture.setdefault((checkpoint.model, checkpoint.signature), []).append(checkpoint)
    findings = Findings([], problems, sum(map(len, by_architecture.values())))
    for (model, _), bucket in sorted(by_architecture.items()):
        candidates = candidate_pairs(bucket) if len(bucket) > 1 else []
        findings.candidates += len(candidates)
        held, init = (None, None), None
        for i, j in candidates:              # by first index: one checkpoint held, the other loaded
            if held[0] != i:
                held = (i, load_checkpoint(bucket[i].path, bucket[i].submission, model))
            second = load_checkpoint(bucket[j].path, bucket[j].submission, model)
            if held[1].state is None or second.state is None:     # changed since it was fingerprinted
                continue
            init = init or seed0_init(held[1].state)
            pair = compare(held[1], second, model, init)
            if pair is not None:
                findings.pairs.append(pair)
    return findings


def _checkpoints(submission, folder, problems):
    """The loaded checkpoints of one submission folder; what does not load goes to problems."""
    from autograder.submission import find_submission

    files = find_submission(folder).files if Path(folder).is_dir() else {}
    for model, name in CHECKPOINTS.items():
        if name not in files:
            continue
        try:
            checkpoint = load_checkpoint(files[name], submission, model)
        except OSError as exc:
            problems.append((submission, name, f"cannot be read ({type(exc).__name__})"))
            continue
        if checkpoint.problem:
            problems.append((submission, name, checkpoint.problem))
        else:
            yield checkpoint
