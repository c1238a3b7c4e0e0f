"""The training config: data, the three networks, the paper's three stages and the runtime.

Every ablation row of the paper is a combination of values here (see ``configs/`` and
``docs/method.md``):

=====================  =======================================================================
Row                    Values
=====================  =======================================================================
CE1 (Conv)             ``generator.variant: conv``; only ``seg_pretrain`` runs
CE2 (Xception)         ``generator.variant: xception``; only ``seg_pretrain`` runs
Ori                    ``grader.mode: ori``; ``grade_pretrain`` then ``joint`` train the grader alone
Lesion (Pretrained)    ``grader.mode: pretrained``; ``joint.train_generator: false``
Lesion (Semi) / CE2+Semi          ``grader.mode: attention``, ``joint.semi: true``, ``joint.adversarial: false``
Lesion (Semi+Adv) / CE2+Semi+Adv  ``grader.mode: attention``, ``joint.semi: true``, ``joint.adversarial: true``
=====================  =======================================================================

Those rows are the paper's formulation (the defaults). drcollab's stage-2 recipe, ``configs/cpu/base.yaml``, adds
``joint.pseudo_mask: refined``, ``joint.zero_absent: true``, ``grader.attention_init: masks`` and
``discriminator.sees_image: false`` (docs/method.md, "Stage 2: one recipe").
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from drcollab.config import (
    DiscriminatorConfig,
    GeneratorConfig,
    GraderConfig,
    LossConfig,
    PreprocessConfig,
    ReferableConfig,
    StrictModel,
)
from drcollab.data.presence import PresenceConfig
from drcollab.data.sources import DatasetSpec
from drcollab.data.transforms import AugmentConfig

STAGES = ("seg_pretrain", "grade_pretrain", "joint")


class DataConfig(StrictModel):
    """Where X^P (pixel-labelled) and X^I (grade-labelled) come from, and the validation fold."""

    pixel: list[DatasetSpec] = Field(default_factory=list, description="X^P: images with lesion masks.")
    image: list[DatasetSpec] = Field(
        default_factory=list, description="X^I: images with grades only (stage 1b, and stage 2's image-level set). "
        "With a 'share' on every source, each epoch draws that fraction of its samples from it (with replacement); "
        "with several sources, validation reports accuracy and kappa per source too."
    )
    preprocess: PreprocessConfig = Field(default_factory=PreprocessConfig)
    cache_dir: Path = Field(Path("cache"), description="Preprocessing cache folder (shared between runs).")
    n_folds: int = Field(5, ge=2, description="Folds of each source's training split, stratified by grade, a "
                         "patient's images in one fold (data/folds.py).")
    val_fold: int | None = Field(0, ge=0, description="Fold held out for validation; null trains on all.")
    fold_seed: int = Field(0, description="Seed of the fold assignment (fixed for comparable runs).")
    limit_pixel: int | None = Field(
        None, ge=1, description="Use only the first N X^P training images of each source (smoke runs).")
    limit_image: int | None = Field(
        None, ge=1, description="Use only the first N X^I training images of each source (smoke runs).")
    seg_size: int | None = Field(
        None, ge=32, le=8192, description="Side of G's preprocessed images (X^P training and validation, G at "
        "prediction), a whole multiple of preprocess.size so the grader's input is an exact average of G's; null = "
        "preprocess.size. Microaneurysms are a few pixels wide only from about 1024 px up."
    )
    workers: int = Field(2, ge=0, description="DataLoader worker processes per training process.")
    balanced: bool = Field(False, description="Draw grades class-balanced (with replacement) for the grader.")
    max_unusable: float = Field(
        0.01, ge=0, le=1, description="Photos the preprocessing cannot use (no field of view found, undecodable) are "
        "left out of training and named in the log and the data summary; more than this share of a source's photos "
        "stops the run (a wrong folder or wrong preprocessing settings, not a few bad photos)."
    )
    presence: PresenceConfig = Field(
        default_factory=PresenceConfig, description="What the DR grade and the edema risk of an X^I image imply "
        "about each lesion (absent / present / unknown): the presence codes of stage 2's batches."
    )

    @model_validator(mode="after")
    def _seg_size_multiple(self) -> DataConfig:
        if self.seg_size is not None and self.seg_size % self.preprocess.size:
            near = self.preprocess.size * max(1, round(self.seg_size / self.preprocess.size))
            raise ValueError(f"seg_size {self.seg_size} must be a whole multiple of preprocess.size "
                             f"{self.preprocess.size} (e.g. {near})")
        return self

    @model_validator(mode="after")
    def _shares(self) -> DataConfig:
        if any(spec.share is not None for spec in self.pixel):
            raise ValueError("data.pixel: 'share' applies to data.image sources only; remove it")
        shares = [spec.share for spec in self.image]
        if None in shares and any(x is not None for x in shares):
            raise ValueError("data.image: give every source a 'share' (fractions of each epoch summing to 1), or none")
        if shares and None not in shares and abs(sum(shares) - 1) > 1e-6:
            listed = " + ".join(f"{x:g}" for x in shares)
            raise ValueError(f"data.image shares sum to {sum(shares):g} ({listed}): they are the fractions of each "
                             "epoch's samples drawn from each source, so they must sum to 1")
        return self

    @property
    def seg_preprocess(self) -> PreprocessConfig:
        """G's preprocessing: ``preprocess`` at ``seg_size``."""
        if self.seg_size is None or self.seg_size == self.preprocess.size:
            return self.preprocess
        return self.preprocess.model_copy(update={"size": self.seg_size})


class StageConfig(StrictModel):
    """One training stage: Adam with the paper's lr 2e-4 and beta1 0.5."""

    epochs: int = Field(ge=0, description="0 skips the stage.")
    batch_size: int = Field(
        ge=1, description="Global batch: images per optimisation step over all processes (the paper's meaning). "
        "Each of N processes takes batch_size / N, in `accumulation` micro-batches; the lr is not rescaled."
    )
    accumulation: int = Field(
        1, ge=1, description="Micro-batches per step in each process, gradients accumulated (for memory): "
        "batch_size must be a multiple of processes x accumulation."
    )
    lr: float = Field(2e-4, gt=0)
    betas: tuple[float, float] = (0.5, 0.999)
    max_steps_per_epoch: int | None = Field(None, ge=1, description="Cap on steps per epoch (CPU budgets).")
    schedule: Literal["constant", "cosine"] = Field(
        "constant", description="constant = the paper's fixed lr; cosine = linear warm-up, then cosine decay "
        "(training/schedule.py)."
    )
    warmup_steps: int = Field(0, ge=0, description="Steps of linear warm-up of the cosine schedule.")
    min_lr_ratio: float = Field(0.01, ge=0, le=1, description="Final lr of the cosine schedule, as a share of lr.")
    augment: AugmentConfig = Field(default_factory=AugmentConfig)


class SegPretrainConfig(StageConfig):
    """Stage 1a: G on X^P with BCE (paper: 60 epochs, batch 32)."""

    epochs: int = Field(60, ge=0, description="0 skips the stage.")
    batch_size: int = Field(32, ge=1, description="Global batch size.")


class GradePretrainConfig(StageConfig):
    """Stage 1b: the plain grader on X^I with focal loss (paper: 30 epochs, batch 128)."""

    epochs: int = Field(30, ge=0, description="0 skips the stage.")
    batch_size: int = Field(128, ge=1, description="Global batch size.")


class JointConfig(StageConfig):
    """Stage 2, the joint end-to-end stage (Sec. 3.4, paper: 50 epochs, batch 16): which losses run, and the
    pseudo-mask rule (docs/method.md, "Stage 2")."""

    epochs: int = Field(50, ge=0, description="0 skips the stage.")
    batch_size: int = Field(16, ge=1, description="X^I images per step over all processes (global).")
    pixel_batch_size: int | None = Field(
        None, ge=1, description="X^P images per step over all processes (default: batch_size); each step also "
        "takes batch_size X^I images."
    )
    train_generator: bool = Field(True, description="Update G in stage 2 (false: G stays as pre-trained).")
    semi: bool = Field(True, description="G's BCE on X^I against pseudo masks (Eq. 1; the rule: pseudo_mask).")
    adversarial: bool = Field(True, description="Train D and add G's adversarial term (Eq. 3).")
    grade_to_generator: bool = Field(
        True, description="The grading loss back-propagates into G through its masks (end to end)."
    )
    semi_weight: float = Field(1.0, ge=0, description="Weight of the pseudo-mask BCE relative to the real-mask BCE.")
    pseudo_mask: Literal["attention", "refined", "labels"] = Field(
        "attention",
        description="attention = the up-sampled attention maps (the paper); refined = G's own lesion pixels "
        "(mask >= 0.5) where the up-sampled attention agrees (>= 0.5), each pixel weighted by how much alpha and G "
        "agree; labels = no pseudo mask, only zero targets for the lesions the labels rule out (the control: what "
        "the labels alone give G). training/pseudo.py.",
    )
    zero_absent: bool = Field(
        False, description="Pseudo masks of a lesion the labels rule out (data.presence) are 0 everywhere, at full "
        "weight; false = the paper (the labels say nothing about pixels)."
    )


class RuntimeConfig(StrictModel):
    """Devices, precision, checkpoints and logging."""

    device: str = Field("auto", description="auto, cpu, cuda or cuda:N (under torchrun: each rank's own GPU).")
    amp: Literal["auto", "bf16", "fp16", "off"] = Field(
        "auto", description="auto = bf16 autocast on GPUs of compute capability >= 8.0 and on CPUs with native bf16 "
        "(AVX512-BF16/AMX), fp16 autocast with a GradScaler on older GPUs, else off (drcollab/precision.py)."
    )
    channels_last: Literal["auto", "on", "off"] = Field("auto", description="auto = on wherever bf16 is on.")
    compile: bool = Field(False, description="torch.compile the networks.")
    deterministic: bool = Field(False, description="Deterministic algorithms (bit-reproducible on CPU).")
    threads: int | None = Field(None, ge=1, description="torch intra-op threads per process (default: torch's).")
    cpu_processes: int = Field(
        1, ge=1, description="On a CPU, train in this many single-threaded DDP processes (sharing each global batch)."
    )
    dist_timeout_s: int = Field(
        3600, ge=60, description="Process-group timeout: how long a rank waits for the others at a collective "
        "(e.g. while the preprocessing cache is filled) before the run fails."
    )
    activation_checkpointing: bool = Field(
        False, description="Keep only the inputs and outputs of G's nine tuples and of the grader's L + 1 passes "
        "through its upper backbone, recomputing the rest in the backward pass: the same gradients, less memory, "
        "about a third more compute for those parts (drcollab plan shows what it saves)."
    )
    sync_bn: bool = Field(False, description="Synchronised batch norm across DDP processes (CUDA only).")
    checkpoint_every: int = Field(50, ge=1, description="Write the training state every N steps (and each epoch).")
    log_every: int = Field(10, ge=1, description="Log training losses every N steps.")
    validate_every: int = Field(1, ge=1, description="Validate every N epochs (and always after the last).")
    progress: bool = Field(True, description="Show a progress bar per epoch.")


class InitConfig(StrictModel):
    """Networks to start from instead of this run's own pre-training stages (checkpoint stems)."""

    generator: Path | None = Field(
        None, description="G for stage 2 when seg_pretrain is skipped, e.g. RUN/models/seg_pretrain/generator "
        "(the paper starts its EyePACS runs from the G pre-trained on IDRiD)."
    )
    grader: Path | None = Field(
        None, description="An 'ori' grader for stage 2 when grade_pretrain is skipped, e.g. "
        "RUN/models/grade_pretrain/grader."
    )


class TrainConfig(StrictModel):
    """Everything ``drcollab train`` needs; written to ``RUN/config.yaml``."""

    name: str = "drcollab"
    seed: int = 0
    data: DataConfig = Field(default_factory=DataConfig)
    generator: GeneratorConfig = Field(default_factory=GeneratorConfig)
    discriminator: DiscriminatorConfig = Field(default_factory=DiscriminatorConfig)
    grader: GraderConfig = Field(default_factory=GraderConfig)
    loss: LossConfig = Field(default_factory=LossConfig)
    seg_pretrain: SegPretrainConfig = Field(default_factory=SegPretrainConfig)
    grade_pretrain: GradePretrainConfig = Field(default_factory=GradePretrainConfig)
    joint: JointConfig = Field(default_factory=JointConfig)
    init: InitConfig = Field(default_factory=InitConfig)
    referable: ReferableConfig = Field(
        default_factory=ReferableConfig, description="Who prediction refers (written to the bundle)."
    )
    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig)

    @model_validator(mode="after")
    def _consistent(self) -> TrainConfig:
        j = self.joint
        if self.grader.mode == "ori" and (j.semi or j.adversarial or j.train_generator):
            raise ValueError(
                "grader.mode 'ori' uses no masks: set joint.semi, joint.adversarial and joint.train_generator to false"
            )
        if j.semi and self.grader.mode != "attention":
            raise ValueError("joint.semi needs grader.mode 'attention' (pseudo masks are the attention maps)")
        if (j.semi or j.adversarial) and not j.train_generator:
            raise ValueError("joint.semi and joint.adversarial train G: they need joint.train_generator true")
        if not self.data.pixel and (self.seg_pretrain.epochs or (j.epochs and j.train_generator)):
            raise ValueError("data.pixel is empty but G trains on it: seg_pretrain.epochs > 0 or joint.train_generator")
        if j.epochs and self.grader.mode != "ori" and not self.seg_pretrain.epochs and self.init.generator is None:
            raise ValueError(
                f"grader.mode {self.grader.mode!r} needs G's masks but G would start untrained: "
                "set seg_pretrain.epochs > 0 or init.generator"
            )
        if not self.data.image and (self.grade_pretrain.epochs or j.epochs):
            raise ValueError("data.image is empty: set grade_pretrain.epochs and joint.epochs to 0")
        needs_g = self.grader.lesion_stats and (self.grade_pretrain.epochs or j.epochs)
        if needs_g and not self.seg_pretrain.epochs and self.init.generator is None:
            raise ValueError("grader.lesion_stats needs G's masks but G would start untrained: set "
                             "seg_pretrain.epochs > 0 or init.generator")
        if self.two_size_joint and self.seg_pretrain.augment.crop is None:
            raise ValueError(
                f"data.seg_size {self.data.seg_size} differs from data.preprocess.size: stage 2 then trains G on crops "
                "at its own size, of side seg_pretrain.augment.crop, which is null; set it (e.g. 256)"
            )
        if self.two_size_joint and j.grade_to_generator:
            raise ValueError(
                f"data.seg_size {self.data.seg_size} differs from data.preprocess.size {self.data.preprocess.size}: "
                "stage 2 then trains G on crops at its own size while the grader reads the masks of the G the stage "
                "started with (training/views.py), so no grading gradient can reach G; set "
                "joint.grade_to_generator false (or use one size, joint.train_generator false or joint.epochs 0)"
            )
        return self

    @property
    def two_size_joint(self) -> bool:
        """Whether stage 2 trains G at its own size (``data.seg_size``), on crops (``training/views.py``)."""
        j = self.joint
        sizes = self.data.seg_preprocess.size != self.data.preprocess.size
        return bool(sizes and j.epochs and j.train_generator)  # train_generator implies a mode with masks

    def stage(self, name: str) -> StageConfig:
        return getattr(self, name)
