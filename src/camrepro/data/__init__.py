"""Image sources and generated datasets.

* :mod:`~camrepro.data.transforms` — PIL → [3,H,W] float tensors in [0,1] (no mean/std: networks normalise).
* :mod:`~camrepro.data.photos` — packaged unlabelled photos (ai-benchmark, scikit-image samples).
* :mod:`~camrepro.data.fashion_mnist` — Fashion-MNIST from its idx files.
* :mod:`~camrepro.data.canvas` — Fashion-MNIST items on cluttered canvases, with exact boxes and masks.
* :mod:`~camrepro.data.grid` — 2×2 grids of photos of four different classes (grid pointing game).
* :mod:`~camrepro.data.folders` — user-provided image folders for the ``paper`` profile.
* :mod:`~camrepro.data.packaged`, :mod:`~camrepro.data.checksums` — files inside installed distributions.
* :mod:`~camrepro.data.check` — ``camrepro data``: check every source, generate the default datasets.
"""

from camrepro.data.canvas import CanvasDataset, CanvasSet, default_canvas, make_canvas
from camrepro.data.checksums import sha256_file, verify_hash_prefix
from camrepro.data.fashion_mnist import FashionMNIST, load_fashion_mnist, read_idx
from camrepro.data.folders import ImageFileDataset, image_folder, imagenet_val
from camrepro.data.grid import GridSet, make_grids, quadrant_boxes
from camrepro.data.packaged import EFFICIENTNET_LITE0_WEIGHTS, MOBILENET_V2_WEIGHTS, PackagedWeights
from camrepro.data.photos import PhotoSet, load_photos
from camrepro.data.transforms import ImagenetPreprocess, imagenet_preprocess

__all__ = [
    "CanvasDataset", "CanvasSet", "EFFICIENTNET_LITE0_WEIGHTS", "FashionMNIST", "GridSet", "ImageFileDataset",
    "ImagenetPreprocess", "MOBILENET_V2_WEIGHTS", "PackagedWeights", "PhotoSet", "default_canvas",
    "image_folder", "imagenet_preprocess", "imagenet_val", "load_fashion_mnist", "load_photos", "make_canvas",
    "make_grids", "quadrant_boxes", "read_idx", "sha256_file", "verify_hash_prefix",
]
