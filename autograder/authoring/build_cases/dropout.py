"""The dropout cases: their tables and build_dropout (inputs only: the
worker checks a dropout against its own seeded runs)."""
from autograder.authoring.build_cases.builder import rng_for

# (name, x shape, keep probability p, seed, another seed)
DROPOUT_TRAIN_CASES = [
    ("p1", (30, 40), 0.75, 11, 12),
    ("h1", (4, 3, 10, 10), 0.3, 5, 6),
    ("h2", (3000,), 0.6, 21, 22),
    ("h3", (50, 60), 0.9, 7, 8),
    ("h4", (2, 5, 20, 20), 0.15, 3, 4),
]
DROPOUT_TEST_CASES = [
    ("p2", (10, 20), 0.3),
    ("h5", (2, 3, 4, 4), 0.6),
]


def dropout_input(rng, shape):
    """Values of magnitude 0.5 to 2: a zero in the output can only mean a dropped unit."""
    return rng.choice([-1.0, 1.0], size=shape) * rng.uniform(0.5, 2.0, size=shape)


def build_dropout(builder):
    for name, shape, p, seed, other_seed in DROPOUT_TRAIN_CASES:
        rng = rng_for("dropout", name)
        builder.add("dropout", name, kind="train",
                    params={"p": p, "seed": seed, "other_seed": other_seed},
                    inputs={"x": dropout_input(rng, shape), "dout": rng.randn(*shape)})
    for name, shape, p in DROPOUT_TEST_CASES:
        rng = rng_for("dropout", name)
        builder.add("dropout", name, kind="test", params={"p": p},
                    inputs={"x": dropout_input(rng, shape), "dout": rng.randn(*shape)})
