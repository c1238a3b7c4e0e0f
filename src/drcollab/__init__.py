"""drcollab: collaborative semi-supervised lesion segmentation and DR grading.

Implements Zhou et al., "Collaborative Learning of Semi-Supervised Segmentation and
Classification for Medical Images" (CVPR 2019). The package follows the pipeline:
data -> models -> losses -> training -> evaluation -> inference -> CLI/service.
"""

from drcollab.constants import GRADES, LESION_NAMES, LESIONS, NUM_GRADES, NUM_LESIONS

__version__ = "0.1.0"
__all__ = ["GRADES", "LESIONS", "LESION_NAMES", "NUM_GRADES", "NUM_LESIONS", "__version__"]
