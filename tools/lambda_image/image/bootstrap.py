"""Start AWS's runtime interface client with the module search path Lambda gives a Python function.

Lambda's order: the function's code (``LAMBDA_TASK_ROOT``) first, then the layers' ``/opt/python`` folders, then the
runtime's own packages (boto3 and awslambdaric in ``/var/runtime``). A module found only on a developer's machine,
or a layer folder one level off, fails to import here as it would in Lambda.
"""

import os
import site
import sys


def main() -> None:
    task_root = os.environ.setdefault("LAMBDA_TASK_ROOT", "/var/task")
    layer_site = "/opt/python/lib/python{}.{}/site-packages".format(*sys.version_info[:2])
    user_pythonpath = "PYTHONPATH" in os.environ
    front = [task_root] + ([] if user_pythonpath else [layer_site, "/opt/python"])
    sys.path[:0] = [path for path in front if path not in sys.path]
    site.addsitedir(task_root)  # .pth files shipped with the function
    if not user_pythonpath:
        site.addsitedir(layer_site)
        site.addsitedir("/opt/python")
        os.environ["PYTHONPATH"] = os.environ.get("LAMBDA_RUNTIME_DIR", "/var/runtime")
    handler = os.environ.get("_HANDLER") or os.environ.get("AWS_LAMBDA_FUNCTION_HANDLER")
    if not handler:
        sys.exit("no handler: neither _HANDLER nor AWS_LAMBDA_FUNCTION_HANDLER is set")
    import awslambdaric.__main__ as ric

    ric.main([task_root, handler])


if __name__ == "__main__":
    main()
