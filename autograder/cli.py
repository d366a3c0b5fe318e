"""Command line: ``python -m autograder COMMAND``.

Each command lives in its own module, imported only when it runs, and that
module exposes ``add_arguments(parser)`` and ``run(args) -> exit code``.
"""
import argparse
import importlib

COMMANDS = {
    # name: (module, one-line help)
    "grade": ("autograder.grade", "grade a submission folder and write results.json"),
    "check": ("autograder.check", "check one function (or model) of a submission the way Gradescope does"),
    "pack": ("autograder.pack", "check a submission's files and write submission.zip, ready to upload"),
    "handout": ("autograder.authoring.handout", "regenerate assignments/ and dist/handout.zip from solutions/"),
    "build-cases": ("autograder.authoring.build_cases", "regenerate the grader's test cases from solutions/"),
    "calibrate-curves": ("autograder.staff.calibrate_curves", "retrain the reference ConvNet and write the curve band"),
    "calibrate-accuracy": ("autograder.staff.calibrate_accuracy",
                           "measure what the accuracy protocol costs given checkpoints, and their integrity flags"),
    "autograder-zip": ("autograder.authoring.autograder_zip", "build dist/autograder.zip for Gradescope"),
    "regrade": ("autograder.staff.regrade", "grade every submission of a Gradescope export into a CSV"),
    "bench": ("autograder.bench.bench", "measure what a grade costs, part by part and in a box of "
                                        "Gradescope's default size (make bench)"),
}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m autograder")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=help_text)
        command.set_defaults(module=module)
        try:
            importlib.import_module(module).add_arguments(command)
        except ModuleNotFoundError as exc:
            if exc.name is None or not (module == exc.name or module.startswith(exc.name + ".")):
                raise
            command.set_defaults(unavailable=True)  # not part of this copy (e.g. the handout)
    args = parser.parse_args(argv)
    if getattr(args, "unavailable", False):
        parser.error(f"'{args.command}' is not available in this copy of the autograder")
    return importlib.import_module(args.module).run(args)
