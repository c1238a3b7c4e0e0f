"""drcollab: collaborative semi-supervised lesion segmentation and DR grading.

Implements Zhou et al., "Collaborative Learning of Semi-Supervised Segmentation and Classification for
Medical Images" (CVPR 2019). The package is built in layers, bottom up: data -> models and losses -> inference ->
evaluation -> training -> service -> CLI (README's "Project layout").

For prediction from Python::

    import drcollab

    model = drcollab.load("release/drcollab-idrid-cpu")
    result = model.predict("photo.jpg")

(:mod:`drcollab.inference.api`; ``load``, ``Model`` and ``Result`` are imported on first use, so ``import
drcollab.data.io`` stays light.)
"""

from typing import Any

from drcollab.constants import GRADES, LESION_NAMES, LESIONS, NUM_GRADES, NUM_LESIONS, VERSION

__version__ = VERSION
__all__ = ["GRADES", "LESIONS", "LESION_NAMES", "NUM_GRADES", "NUM_LESIONS", "Model", "Result", "__version__", "load"]
_API = ("load", "Model", "Result")


def __getattr__(name: str) -> Any:
    if name in _API:
        from drcollab.inference import api

        return getattr(api, name)
    raise AttributeError(f"module 'drcollab' has no attribute {name!r}")
