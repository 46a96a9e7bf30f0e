"""MVTec AD facts: categories, split sizes, the official archive (docs/reference.md#mvtec-ad)."""

TEXTURES = ["carpet", "grid", "leather", "tile", "wood"]
OBJECTS = ["bottle", "cable", "capsule", "hazelnut", "metal_nut", "pill", "screw",
           "toothbrush", "transistor", "zipper"]
MVTEC_CATEGORIES = TEXTURES + OBJECTS
GREYSCALE = ["grid", "screw", "zipper"]

# category: (train good, test good, test defective, defect kinds)
MVTEC_COUNTS = {
    "bottle": (209, 20, 63, 3), "cable": (224, 58, 92, 8), "capsule": (219, 23, 109, 5),
    "carpet": (280, 28, 89, 5), "grid": (264, 21, 57, 5), "hazelnut": (391, 40, 70, 4),
    "leather": (245, 32, 92, 5), "metal_nut": (220, 22, 93, 4), "pill": (267, 26, 141, 7),
    "screw": (320, 41, 119, 5), "tile": (230, 33, 84, 5), "toothbrush": (60, 12, 30, 1),
    "transistor": (213, 60, 40, 4), "wood": (247, 19, 60, 5), "zipper": (240, 32, 119, 7),
}

# The official full archive. The hash has stayed the same through the host's URL moves.
MVTEC_URL = ("https://www.mydrive.ch/shares/150996/b52ecdcbf521176e9db9c731f2304b27/download/"
             "420938113-1629960298/mvtec_anomaly_detection.tar.xz")
MVTEC_SHA256 = "cf4313b13603bec67abb49ca959488f7eedce2a9f7795ec54446c649ac98cd3d"
MVTEC_ARCHIVE_NAME = "mvtec_anomaly_detection.tar.xz"

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
