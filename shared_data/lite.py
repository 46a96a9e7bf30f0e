"""Cut a small, deterministic subset of an MVTec-layout copy (the TIPC lite data).

    python -m shared_data.lite --src data/mvtec --dst test_tipc/data/MVTec --categories capsule \\
        --n_train 8 --n_test 8 --seed 0

Files are copied byte for byte under their original names; masks come along with their images.
"""
import os
import random
import shutil

from adbase import ArgumentParser, UserError, make_dirs, make_temp_dir, run_cli

from .categories import IMAGE_EXTENSIONS, MVTEC_CATEGORIES

__all__ = ["make_lite", "main"]


def _images(folder):
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    return sorted(n for n in names if not n.startswith(".") and n.lower().endswith(IMAGE_EXTENSIONS)
                  and os.path.isfile(os.path.join(folder, n)))


def _sample(names, n, rng):
    """``n`` names drawn without replacement, in sorted order so listings look like MVTec's."""
    return sorted(rng.sample(names, min(n, len(names))))


def _pick_test(test_dir, n_test, rng):
    """{kind: [names]} with ``n_test`` images in all, dealt round-robin over the kinds (good first).

    Round-robin keeps one image of every kind whenever ``n_test`` >= the number of kinds.
    """
    kinds = sorted(k for k in os.listdir(test_dir) if _images(os.path.join(test_dir, k)))
    kinds = (["good"] if "good" in kinds else []) + [k for k in kinds if k != "good"]
    # Shuffle each kind once with the seeded rng, then deal from the front of each queue.
    queues = {}
    for k in kinds:
        names = _images(os.path.join(test_dir, k))
        rng.shuffle(names)
        queues[k] = names
    picked = {k: [] for k in kinds}
    left = n_test
    while left > 0 and any(queues.values()):
        for k in kinds:
            if left and queues[k]:
                picked[k].append(queues[k].pop(0))
                left -= 1
    return {k: sorted(v) for k, v in picked.items() if v}


def _mask_for(cat_dir, kind, name):
    """Path of the mask of test/<kind>/<name>, or None (lite data may have no ground_truth at all)."""
    stem = os.path.splitext(name)[0]
    gt = os.path.join(cat_dir, "ground_truth", kind)
    for ext in (".png", ".PNG") + tuple(e for e in IMAGE_EXTENSIONS if e != ".png"):
        p = os.path.join(gt, stem + "_mask" + ext)
        if os.path.isfile(p):
            return p
    return None


def _copy(src, dst):
    make_dirs(os.path.dirname(dst))
    shutil.copyfile(src, dst)  # bytes only: no re-encoding, so the lite images equal the originals


def _check_category(src, c):
    cat_dir = os.path.join(src, c)
    if not os.path.isdir(cat_dir):
        if c in MVTEC_CATEGORIES:
            raise UserError(f"{cat_dir} not found; get it with: python -m shared_data.download "
                            f"--data_dir {src} --categories {c}")
        raise UserError(f"unknown category {c!r}: no folder {cat_dir} (MVTec categories: "
                        f"{', '.join(MVTEC_CATEGORIES)})")
    if not _images(os.path.join(cat_dir, "train", "good")):
        raise UserError(f"{cat_dir} is not in MVTec layout: no images in train/good")
    if not os.path.isdir(os.path.join(cat_dir, "test")):
        raise UserError(f"{cat_dir} is not in MVTec layout: no test/ folder")


def make_lite(src, dst, categories, n_train, n_test, seed=0, force=False):
    """Copy ``n_train`` train/good and ``n_test`` test images (+ masks) per category from ``src`` to ``dst``.

    The same seed picks the same files. Written to a temp dir beside ``dst`` and renamed into place;
    a non-empty ``dst`` is replaced only with ``force``. Returns {category: {"train": n, "test": {kind: n},
    "masks": n}}.
    """
    src, dst = os.path.abspath(os.fspath(src)), os.path.abspath(os.fspath(dst))
    if not os.path.isdir(src):
        raise UserError(f"--src {src} does not exist")
    if n_train < 1 or n_test < 1:
        raise UserError(f"--n_train and --n_test must be >= 1 (got {n_train}, {n_test})")
    categories = list(dict.fromkeys(categories))
    if not categories:
        raise UserError("no categories given")
    # --force deletes dst, so it must not hold the source.
    if dst == src or src.startswith(dst + os.sep):
        raise UserError(f"--dst {dst} contains --src {src}; choose another folder")
    if os.path.exists(dst) and not os.path.isdir(dst):
        raise UserError(f"--dst {dst} exists and is not a folder")
    if os.path.isdir(dst) and os.listdir(dst) and not force:
        raise UserError(f"--dst {dst} is not empty; pass --force to replace it")
    for c in categories:
        _check_category(src, c)

    parent = os.path.dirname(dst)
    make_dirs(parent)
    tmp = make_temp_dir(os.path.basename(dst), parent)
    summary = {}
    try:
        # Keep the dataset's licence/readme next to the subset (MVTec is CC BY-NC-SA: attribution travels).
        for name in sorted(os.listdir(src)):
            if name.lower().startswith(("license", "readme")) and os.path.isfile(os.path.join(src, name)):
                _copy(os.path.join(src, name), os.path.join(tmp, name))
        for c in categories:
            # One rng per category and split: adding a category or changing n_test leaves the others alone.
            cat_dir = os.path.join(src, c)
            train = _sample(_images(os.path.join(cat_dir, "train", "good")), n_train,
                            random.Random(f"{seed}/{c}/train"))
            for name in train:
                _copy(os.path.join(cat_dir, "train", "good", name), os.path.join(tmp, c, "train", "good", name))
            test = _pick_test(os.path.join(cat_dir, "test"), n_test, random.Random(f"{seed}/{c}/test"))
            masks = 0
            for kind, names in test.items():
                for name in names:
                    _copy(os.path.join(cat_dir, "test", kind, name), os.path.join(tmp, c, "test", kind, name))
                    mask = _mask_for(cat_dir, kind, name) if kind != "good" else None
                    if mask:
                        _copy(mask, os.path.join(tmp, c, "ground_truth", kind, os.path.basename(mask)))
                        masks += 1
            summary[c] = {"train": len(train), "test": {k: len(v) for k, v in test.items()}, "masks": masks}
        if os.path.isdir(dst):
            shutil.rmtree(dst)  # empty, or --force
        os.rename(tmp, dst)
    except OSError as e:
        raise UserError(f"cannot write {dst}: {e.strerror or e}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return summary


def main(argv=None):
    p = ArgumentParser(prog="python -m shared_data.lite",
                                description="Copy a small deterministic subset of an MVTec-layout dataset.")
    p.add_argument("--src", required=True, help="full dataset root (holds <category>/train, test, ground_truth)")
    p.add_argument("--dst", required=True, help="where the subset goes (must be empty unless --force)")
    p.add_argument("--categories", nargs="+", required=True, help="space or comma separated")
    p.add_argument("--n_train", type=int, required=True, help="train/good images per category")
    p.add_argument("--n_test", type=int, required=True,
                   help="test images per category, dealt over good and every defect kind")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--force", action="store_true", help="replace a non-empty --dst")
    args = p.parse_args(argv)
    categories = [c.strip() for v in args.categories for c in v.split(",") if c.strip()]
    summary = make_lite(args.src, args.dst, categories, args.n_train, args.n_test, seed=args.seed,
                        force=args.force)
    for c, s in summary.items():
        kinds = ", ".join(f"{k} {n}" for k, n in s["test"].items())
        print(f"{c}: {s['train']} train, test: {kinds}; {s['masks']} masks")
    print(f"wrote {args.dst}")
    return 0


if __name__ == "__main__":
    run_cli(main)
