"""Trusted helper for the TA checks' model calls (autograder/ta/student.py),
loaded by path into a worker next to the CNN part's helper, which the worker
loads first as ``cnn`` (autograder/worker/torch_steps.py); torch and numpy only,
never the autograder package. Its functions return plain data."""
import sys

import numpy as np
import torch


def forward(class_name, x, checkpoint=None, seed=0):
    """Logits (float32) of class_name() built after torch.manual_seed(seed),
    or with the checkpoint file loaded strictly, on x as given, in eval mode."""
    cnn = sys.modules["cnn"]
    if checkpoint:
        _, model = cnn.load_checkpoint(class_name, checkpoint)
    else:
        model = cnn.build_model(class_name, seed)
    model.eval()
    with torch.no_grad():
        out = model(torch.as_tensor(np.asarray(x, dtype=np.float32)))
    if not isinstance(out, torch.Tensor):
        raise cnn.StudentError(f"{class_name}.forward returned a {type(out).__name__}, not a tensor")
    return out.detach().float().numpy()


def predict(class_name, checkpoint, images):
    """Logits of class_name() with the checkpoint loaded on uint8 images,
    computed as the accuracy checks compute them (cnn.predict)."""
    cnn = sys.modules["cnn"]
    _, model = cnn.load_checkpoint(class_name, checkpoint)
    return cnn.predict(model, images, class_name=class_name)
