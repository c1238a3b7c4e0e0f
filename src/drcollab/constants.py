"""Fixed vocabularies shared by every part of the pipeline."""

VERSION = "0.1.0"  # the package's version (``drcollab.__version__``), recorded in checkpoints and reports

# Lesion channels, always in this order: (L, H, W) mask stacks index them by position.
LESIONS: tuple[str, ...] = ("MA", "HE", "EX", "SE")
LESION_NAMES: dict[str, str] = {
    "MA": "microaneurysms",
    "HE": "haemorrhages",
    "EX": "hard exudates",
    "SE": "soft exudates",
}
NUM_LESIONS = len(LESIONS)

# International clinical DR severity scale.
GRADES: tuple[str, ...] = ("no DR", "mild NPDR", "moderate NPDR", "severe NPDR", "PDR")
NUM_GRADES = len(GRADES)
# Risk of diabetic macular edema (IDRiD, Messidor): hard exudates and their distance from the macula's centre.
DME_GRADES: tuple[str, ...] = ("no DME", "exudates away from the macula", "exudates within 1 DD of the macula")
NUM_DME = len(DME_GRADES)
MISSING_DME = -1  # the DME target of an image whose dataset gives no DME label (left out of the DME loss)
# The risks each DME target allows: 0-2 an exact risk; 3 and 4 a partial label, from a dataset that says only on
# which side of a threshold the risk lies (Messidor-2's adjudicated DME: 3 = risk 0 or 1). The DME loss of a target
# is -log of the summed probability of its risks (losses/dme.py).
DME_TARGET_RISKS: tuple[tuple[int, ...], ...] = ((0,), (1,), (2,), (0, 1), (1, 2))
REFERABLE_FROM_GRADE = 2  # grade >= 2 is referable DR (the paper's Messidor "referral" setting)
# A field of view narrower than this fraction of the size the model resizes it to is too small to grade: the model
# would see it enlarged. The release bundle's grades of IDRiD photos shrunk to 0.76 of its size kept to their
# resampling noise (27/30 the same as at full size, as at 1.11), and drifted from 0.69 (24/30, then down to 19/30
# at 0.35): benchmarks/bench_fov_size.py.
MIN_FOV_FRACTION = 0.75

# Colours (RGB) used for every overlay, one per lesion.
LESION_COLOURS: dict[str, tuple[int, int, int]] = {
    "MA": (255, 0, 255),  # magenta: red would vanish on the orange-red retina
    "HE": (60, 120, 255),
    "EX": (255, 230, 0),
    "SE": (40, 230, 80),
}
