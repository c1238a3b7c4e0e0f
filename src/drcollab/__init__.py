"""drcollab: collaborative semi-supervised lesion segmentation and DR grading.

Implements Zhou et al., "Collaborative Learning of Semi-Supervised Segmentation and
Classification for Medical Images" (CVPR 2019). The package is built in layers, bottom up: data -> models and
losses -> inference -> evaluation -> training -> service -> CLI (README's "Project layout").
"""

from drcollab.constants import GRADES, LESION_NAMES, LESIONS, NUM_GRADES, NUM_LESIONS

__version__ = "0.1.0"
__all__ = ["GRADES", "LESIONS", "LESION_NAMES", "NUM_GRADES", "NUM_LESIONS", "__version__"]
