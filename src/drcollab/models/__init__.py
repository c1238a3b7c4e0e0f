"""The paper's three networks (generator G, discriminator D, lesion-attentive grader) and checkpoints."""

from drcollab.models.checkpoint import load_model, read_checkpoint_info, save_model
from drcollab.models.discriminator import LesionDiscriminator
from drcollab.models.generator import LesionGenerator
from drcollab.models.grader import GraderOutput, LesionGrader, grader_from_ori

__all__ = [
    "GraderOutput",
    "LesionDiscriminator",
    "LesionGenerator",
    "LesionGrader",
    "grader_from_ori",
    "load_model",
    "read_checkpoint_info",
    "save_model",
]
