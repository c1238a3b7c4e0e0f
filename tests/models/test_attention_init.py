import torch

from drcollab.config import GraderConfig
from drcollab.models import LesionGrader


def test_masks_init_makes_attention_a_calibrated_copy_of_the_masks():
    torch.manual_seed(0)
    grader = LesionGrader(GraderConfig(backbone="resnet18", att_channels=8, attention_gain=10.0)).eval()
    masks = torch.zeros(2, 4, 64, 64)
    masks[:, 0, 8:12, 8:12] = 1.0
    masks[:, 2] = 0.3
    alpha = grader(torch.randn(2, 3, 64, 64), masks).attention  # (2, 4, 16, 16)
    pooled = torch.nn.functional.adaptive_max_pool2d(masks, alpha.shape[-2:])
    assert torch.allclose(alpha, torch.sigmoid(10.0 * (pooled - 0.5)), atol=1e-5)


def test_random_init_does_not_follow_the_masks():
    torch.manual_seed(0)
    grader = LesionGrader(GraderConfig(backbone="resnet18", att_channels=8, attention_init="random")).eval()
    masks = torch.zeros(2, 4, 64, 64)
    masks[:, 0, 8:12, 8:12] = 1.0
    alpha = grader(torch.randn(2, 3, 64, 64), masks).attention
    assert alpha[:, 0].max() < 0.9
