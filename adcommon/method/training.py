"""The whole train.py of every method, written once: the categories, the processes of
paddle.distributed.launch, a finished run under --resume, the output folder (claimed and locked) and its
train.log, args.yml, and --val. The method's engine trains one category (adcommon.method.contract: its training
half); each paper's train.py declares its flags and calls ``train_main``."""
import os

from adcommon.method.contract import bind


def train_main(engine, args):
    """Train every category of --category into <output_dir>/<category>; returns the exit code.

    Per category: a finished run is left as it is under --resume (a line says so); otherwise the folder
    is claimed and locked for the run (adcommon.outputs), the seed is set (a category's run does not
    depend on the ones before it), the engine trains it and writes its checkpoint, and the process that
    writes (the only one without the launcher) adds args.yml (the flags, the category and what the
    engine resolved) and, with --val, evaluates the test split into the same folder.
    """
    from adcommon import checkpoint as C
    from adcommon import cli, distributed, vdl
    from adcommon.files import save_yaml
    from adcommon.method.pipeline import Evaluation, evaluate, load_for_run, summary
    m = bind(engine)
    m.prepare_args(args)                               # the method's own checks and aliases, before any work
    vdl.check_available(args)
    main_process = distributed.init()[0] == 0          # under paddle.distributed.launch: rank 0 writes
    for cat in cli.training_categories(args):
        out = os.path.join(args.output_dir, cat)
        if m.progress and getattr(args, "resume", False):
            done = C.finished_run(out, m.name, m.progress, getattr(args, m.progress + "s"))
            if done:                                   # --resume on a finished run: says so, leaves it as it is
                print(done)
                continue
        with cli.training_output(out, main_process, os.path.join(args.data_dir, cat)) as log, \
                vdl.board(args, m.name, cat, out, main_process):
            cli.set_seed(args.seed)
            resolved = m.train_category(args, cat, out, log, main_process)
            if not main_process:
                continue
            save_yaml(os.path.join(out, "args.yml"), dict(vars(args), category=cat, **(resolved or {})))
            if args.val:
                batch_size, configure = m.val_settings(args)
                model, ck = load_for_run(m, os.path.join(out, C.MODEL), configure)
                res = evaluate(m, model, ck, Evaluation(args.data_dir, cat, out, batch_size, args.save_vis))
                log(summary(m, cat, res, os.path.join(out, "metrics.json")))
    return 0
