"""STFPM's own script flags beyond the shared ones (adcommon.method.scripts)."""
from adbase import UserError


def add_export_flags(p):
    p.add_argument("--img_size", "--image_size", dest="img_size", type=int, default=None,
                   help="input size; must equal the size the model was trained at (the default)")


def check_export(args):
    """The seed's --img_size may only repeat the training size: the threshold and the colour scale were
    measured there."""
    if args.img_size is not None:
        from adcommon.checkpoint import checkpoint_path, load_checkpoint
        from stfpm.engine import METHOD
        ck = load_checkpoint(checkpoint_path(args.model_path, args.output_dir, args.category), METHOD)
        if args.img_size != ck["model_args"]["image_size"]:
            raise UserError(f"--img_size {args.img_size}: this model was trained at "
                            f"{ck['model_args']['image_size']}; leave --img_size out")
    return None
